"""An isolated subprocess that loads one backend once and serves many jobs over a pipe.

Protocol (parent -> worker): a :class:`SynthesisJob`, a list of them (jobs with one
``together`` key, which the backend may make as one batch), or ``None`` to stop.
Worker -> parent, first: ``("ready", LoadInfo)`` or ``("failed", kind, message)``;
then per job, in the order given: any number of ``("chunk", samples, rate)`` and one
``("done",)`` or ``("error", kind, message)``. A worker that dies shows as EOF on the pipe.

Each worker is a fresh interpreter started with ``subprocess`` (not multiprocessing's
``spawn``, which re-runs the caller's main script): a crash, a leak or a CUDA context
never reaches the parent, and the parent never needs the engine's imports.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, Optional

from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import DemodVoiceError, RuntimeFailure, to_wire

log = logging.getLogger(__name__)


class WorkerDied(Exception):
    """The worker process ended without answering; ``str()`` says how it ended."""


def serve(conn: Any, spec: LoadSpec, log_level: int) -> None:
    """Worker main loop (runs in the child process)."""
    sys.stdout = sys.stderr  # belt and braces: fd 1 is already the parent's stderr
    # Ctrl-C reaches the whole process group; the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from demod_voice.logs import configure_logging

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
        _run_jobs(conn, backend, job if isinstance(job, list) else [job])


def _load(conn: Any, spec: LoadSpec) -> Any:
    from demod_voice.backends.registry import create_backend

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


def _run_jobs(conn: Any, backend: Any, jobs: list[SynthesisJob]) -> None:
    """Answer every job in order. Once one fails the rest fail with the same error (the batch
    they were being made in is gone); the parent decides what to do with them."""
    failure: Optional[tuple] = None
    spoken = backend.synthesize_together(jobs)
    for _ in jobs:
        if failure is None:
            failure = _run_job(conn, spoken)
        conn.send(failure or ("done",))


def _run_job(conn: Any, spoken: Iterator[Iterator[Any]]) -> Optional[tuple]:
    """Send the next job's chunks; return its error message, or ``None`` when it is done."""
    try:
        for chunk in next(spoken):
            conn.send(("chunk", chunk.samples, chunk.sample_rate))
    except DemodVoiceError as err:
        return ("error", *to_wire(err))
    except Exception as err:  # noqa: BLE001 - reported to the parent, which decides
        log.debug("job failed:\n%s", traceback.format_exc())
        return ("error", "RuntimeFailure", f"synthesis failed: {type(err).__name__}: {err}")
    return None


def main() -> None:
    """Worker entry point: ``python -c '...main()' FD`` with FD one end of a socket pair."""
    conn = Connection(int(sys.argv[1]))
    spec, log_level, parent_path, threads = conn.recv()
    # The parent's import path, so backends named as module:Class resolve the same way here.
    sys.path[:] = list(dict.fromkeys(sys.path + parent_path))
    if threads:
        # Several workers share the cores: each engine gets its share, not all of them (set before
        # any engine is imported, which is when OpenMP and torch read it).
        os.environ["OMP_NUM_THREADS"] = str(threads)
        from demod_voice import devices

        devices.THREADS = threads
    serve(conn, spec, log_level)


def death_error(job: SynthesisJob, reason: str) -> DemodVoiceError:
    """The error a job gets when its worker died and no retry is left."""
    return RuntimeFailure(f"{reason} while synthesising {job.describe()}; that job failed (other jobs are unaffected)")
