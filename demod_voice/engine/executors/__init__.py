"""The executor seam: where the engine's workers run.

An executor starts workers; a worker handle carries the protocol of
:mod:`demod_voice.engine.worker` over some transport. The engine waits on every handle's
``conn`` at once (:func:`multiprocessing.connection.wait`), so a handle exposes a real
:class:`~multiprocessing.connection.Connection`, whatever stands behind it: a subprocess
(:mod:`.local`) or a Ray actor fed by a pump thread (:mod:`.ray`).
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection
from typing import Optional, Protocol

from demod_voice.engine.jobs import LoadSpec, SynthesisJob


class WorkerDied(Exception):
    """The worker ended without answering; ``str()`` says how it ended."""


class WorkerHandle(Protocol):
    """Parent-side handle of one worker."""

    conn: Connection
    """Readable when the worker has a message (the engine waits on it)."""
    pid: int
    """Process id of the worker (on its node)."""
    where: str
    """Where the worker runs, for reports (``local``, a Ray node id)."""
    joins: bool
    """Whether jobs may join a running hand-over (``("join", offset, jobs)``, :mod:`~demod_voice.engine.protocol`)."""

    def send(self, jobs: Optional[list[SynthesisJob]]) -> None:
        """Hand over jobs (or ``None``: stop); raise :class:`WorkerDied` if the worker is gone."""

    def recv(self) -> tuple:
        """The next message; raise :class:`WorkerDied` when the worker has ended."""

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within ``timeout``."""

    def kill(self) -> None:
        """End the worker at once (its model is lost)."""

    def rss_bytes(self) -> Optional[int]:
        """Resident memory of the worker, when the executor can tell."""


class Executor(Protocol):
    """Starts workers for load specs."""

    name: str
    """``local`` or ``ray``."""

    def start_worker(self, spec: LoadSpec, log_level: int, threads: int) -> WorkerHandle:
        """A new worker that loads ``spec`` and then answers jobs (its first message says how loading went)."""

    def check(self) -> None:
        """Raise a :class:`~demod_voice.errors.DemodVoiceError` when workers can no longer run (a cluster gone);
        called a few times a second while a run waits."""

    def close(self) -> None:
        """Release what the executor holds (connections to a cluster)."""


def signal_name(code: int) -> str:
    """``SIGKILL`` for 9; real-time and unknown signals by number (``signal 34``)."""
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def describe_exit(code: Optional[int]) -> str:
    """How a worker ended, in words, from its exit status (negative: killed by that signal)."""
    if code is None:
        return "the worker stopped answering"
    if code < 0:
        name = signal_name(-code)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"the worker was killed by {name}{hint}"
    return f"the worker exited with code {code}"
