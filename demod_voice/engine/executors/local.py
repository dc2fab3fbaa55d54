"""Local executor: each worker is a fresh ``python`` subprocess joined to the parent by a socket
pair (not multiprocessing's ``spawn``, which re-runs the caller's main script): a crash, a
leak or a CUDA context never reaches the parent, and the parent never needs engine imports.

Workers start in their own session (a terminal's Ctrl-C reaches only the parent, which owns
their fate) and ask the kernel to kill them when the parent dies, so no worker outlives its
engine however the engine ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Optional

from demod_voice.engine.executors import WorkerDied, describe_exit
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.sandbox import python_child

_BOOT = (
    "import ctypes, os, signal, sys\n"
    # PR_SET_PDEATHSIG: SIGKILL when the parent goes, then make sure it had not gone already.
    "try:\n ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\nexcept Exception:\n pass\n"
    "if os.getppid() != int(sys.argv[2]): sys.exit(0)\n"
    "from demod_voice.engine.worker import main; main()"
)


class LocalExecutor:
    """Workers as subprocesses of this machine."""

    name = "local"

    def start_worker(self, spec: LoadSpec, log_level: int, threads: int) -> WorkerProcess:
        return WorkerProcess(spec, log_level, threads)

    def check(self) -> None:
        """Local workers need nothing outside this machine."""

    def close(self) -> None:
        """Nothing is held between workers."""


class WorkerProcess:
    """Parent-side handle of one worker: a ``python`` subprocess joined to us by a socket pair."""

    where = "local"
    joins = True  # (the worker reads the parent's messages while it answers: engine.worker.answer_joined)

    def __init__(self, spec: LoadSpec, log_level: int, threads: int = 0) -> None:
        self.spec = spec
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with theirs:
            # stdout=2: whatever an engine prints lands on stderr; stdout may be carrying our audio.
            self.process = subprocess.Popen(
                [*python_child(_BOOT), str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=2, env=env, start_new_session=True,
            )
        self.conn = Connection(ours.detach())
        self.conn.send((spec, log_level, list(sys.path), threads))

    @property
    def pid(self) -> int:
        """OS process id of the worker."""
        return self.process.pid

    def send(self, jobs: Optional[list[SynthesisJob]]) -> None:
        """Hand the worker jobs, or ``None`` to stop; raises :class:`WorkerDied` if it is gone."""
        try:
            self.conn.send(jobs)
        except OSError as err:
            raise WorkerDied(self._death()) from err

    def recv(self) -> tuple:
        """Next message; raises :class:`WorkerDied` when the worker has ended."""
        try:
            return self.conn.recv()
        except (EOFError, OSError) as err:
            raise WorkerDied(self._death()) from err

    def _death(self) -> str:
        try:
            return describe_exit(self.process.wait(timeout=2))
        except subprocess.TimeoutExpired:
            return describe_exit(None)

    def rss_bytes(self) -> Optional[int]:
        """Resident memory from ``/proc`` (Linux); ``None`` elsewhere or once the worker is gone."""
        try:
            with open(f"/proc/{self.process.pid}/statm", encoding="ascii") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        """End the worker at once."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()
