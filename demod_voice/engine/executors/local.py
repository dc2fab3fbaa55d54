"""Local executor: each worker is a fresh ``python`` subprocess joined to the parent by a socket
pair (not multiprocessing's ``spawn``, which re-runs the caller's main script): a crash, a
leak or a CUDA context never reaches the parent, and the parent never needs engine imports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Union

from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.worker import WorkerDied


class WorkerProcess:
    """Parent-side handle of one worker: a ``python`` subprocess joined to us by a socket pair."""

    def __init__(self, spec: LoadSpec, log_level: int, threads: int = 0) -> None:
        self.spec = spec
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with theirs:
            # stdout=2: whatever an engine prints lands on stderr; stdout may be carrying our audio.
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from demod_voice.engine.worker import main; main()", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=2, env=env,
            )
        self.conn = Connection(ours.detach())
        self.conn.send((spec, log_level, list(sys.path), threads))
        self.jobs_served = 0

    @property
    def pid(self) -> int:
        """OS process id of the worker."""
        return self.process.pid

    def send(self, job: Union[SynthesisJob, list[SynthesisJob], None]) -> None:
        """Hand the worker a job, jobs to make together, or ``None`` to stop; raises :class:`WorkerDied` if it is gone."""
        try:
            self.conn.send(job)
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
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
            return f"the worker was killed by {name}{hint}"
        return f"the worker exited with code {code}"

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


