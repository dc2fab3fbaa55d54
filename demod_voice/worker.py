"""An isolated subprocess that loads one backend once and serves many jobs over a pipe.

Protocol (parent -> worker): a :class:`SynthesisJob`, or ``None`` to stop.
Worker -> parent, first: ``("ready", LoadInfo)`` or ``("failed", kind, message)``;
then per job: any number of ``("chunk", samples, rate)`` and one ``("done",)`` or
``("error", kind, message)``. A worker that dies shows as EOF on the pipe.

Workers are started with the ``spawn`` method: a fresh interpreter, so a crash, a
leak or a CUDA context never reaches the parent, and the parent never needs the
engine's imports.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import traceback
from typing import Any, Optional

from .errors import DemodVoiceError, RuntimeFailure, to_wire
from .jobs import LoadSpec, SynthesisJob

log = logging.getLogger(__name__)


class WorkerDied(Exception):
    """The worker process ended without answering; ``str()`` says how it ended."""


def serve(conn: Any, spec: LoadSpec, log_level: int) -> None:
    """Worker main loop (runs in the child process)."""
    # stdout may carry raw audio in the parent: anything an engine prints goes to stderr instead.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Ctrl-C reaches the whole process group; the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .cli import configure_logging

    configure_logging(log_level)
    backend = _load(conn, spec)
    if backend is None:
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        _run_job(conn, backend, job)


def _load(conn: Any, spec: LoadSpec) -> Any:
    from .backends import create_backend

    try:
        backend = create_backend(spec.backend)
        info = backend.load(spec)
    except DemodVoiceError as err:
        conn.send(("failed", *to_wire(err)))
        return None
    except Exception as err:  # noqa: BLE001 - any engine failure must reach the parent as a message
        log.debug("load failed:\n%s", traceback.format_exc())
        conn.send(("failed", "RuntimeFailure", f"could not load {spec.model}: {type(err).__name__}: {err}"))
        return None
    conn.send(("ready", info))
    return backend


def _run_job(conn: Any, backend: Any, job: SynthesisJob) -> None:
    try:
        for chunk in backend.synthesize(job):
            conn.send(("chunk", chunk.samples, chunk.sample_rate))
    except DemodVoiceError as err:
        conn.send(("error", *to_wire(err)))
        return
    except Exception as err:  # noqa: BLE001 - reported to the parent, which decides
        log.debug("job failed:\n%s", traceback.format_exc())
        conn.send(("error", "RuntimeFailure", f"synthesis failed: {type(err).__name__}: {err}"))
        return
    conn.send(("done",))


class WorkerProcess:
    """Parent-side handle of one worker."""

    def __init__(self, spec: LoadSpec, log_level: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.spec = spec
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=serve, args=(child, spec, log_level), daemon=True, name="demod-voice-worker")
        self.process.start()
        child.close()
        self.jobs_served = 0

    @property
    def pid(self) -> Optional[int]:
        """OS process id of the worker."""
        return self.process.pid

    def send(self, job: Optional[SynthesisJob]) -> None:
        """Hand the worker a job (or ``None`` to stop); raises :class:`WorkerDied` if it is gone."""
        try:
            self.conn.send(job)
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            raise WorkerDied(self._death()) from err

    def recv(self) -> tuple:
        """Next message; raises :class:`WorkerDied` when the worker has ended."""
        try:
            return self.conn.recv()
        except (EOFError, ConnectionResetError, OSError) as err:
            raise WorkerDied(self._death()) from err

    def _death(self) -> str:
        self.process.join(timeout=2)
        code = self.process.exitcode
        if code is None:
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
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        """End the worker at once."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


def death_error(job: SynthesisJob, reason: str) -> DemodVoiceError:
    """The error a job gets when its worker died and no retry is left."""
    return RuntimeFailure(f"{reason} while synthesising {job.describe()}; that job failed (other jobs are unaffected)")
