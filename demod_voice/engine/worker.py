"""The worker side of the engine: load one backend once, then answer jobs with messages.

The messages are :mod:`demod_voice.engine.protocol`'s: a hand-over of jobs in; each job's chunks
(and ``value`` for a job whose result is not audio, such as an enrollment) and its end out,
tagged with the job's place in the hand-over. A backend answers jobs one after another
(``synthesize_together``), or, when it has ``interleaved(jobs)`` and that gives an iterator,
makes them together and their chunks come interleaved as they are made. A worker that dies
shows as EOF.

:func:`load_backend` and :func:`answer` are the whole protocol, independent of transport:
the local executor runs them in a subprocess over a socket pair (:func:`main`), the Ray
executor in an actor. This module imports no engine at import time.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Optional

from demod_voice.audio.chunks import AudioChunk
from demod_voice.engine import protocol
from demod_voice.engine.jobs import JobValue, LoadSpec, SynthesisJob
from demod_voice.errors import DemodVoiceError, RuntimeFailure, to_wire

log = logging.getLogger(__name__)

Send = Callable[[tuple], None]

IDLE_SECONDS = 0.5
"""A worker with no job for this long calls its backend's ``idle()`` (where it has one) once, then waits on: memory a
busy backend keeps for its next job goes back while none comes (:meth:`Backend.idle`)."""


def load_backend(spec: LoadSpec) -> tuple[Any, tuple]:
    """Load the backend for ``spec``: ``(backend, ("ready", info))`` or ``(None, ("failed", kind, message))``. A backend's
    ``sys.exit`` (here and in :func:`answer`) is its failure too: the worker lives on and the message says what it said."""
    from demod_voice.backends.registry import create_backend

    try:
        backend = create_backend(spec.backend)
        info = backend.load(spec)
    except DemodVoiceError as err:
        return None, ("failed", *to_wire(err))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any engine failure must reach the parent as a message
        log.debug("load failed:\n%s", traceback.format_exc())
        return None, ("failed", "RuntimeFailure", f"could not load {spec.model} ({spec.backend} backend): {type(err).__name__}: {err}")
    return backend, ("ready", info)


def answer(send: Send, backend: Any, jobs: list[SynthesisJob], cancelled: Callable[[int], bool] = lambda index: False,
           joined: Optional[Callable[[], list[tuple[int, list[SynthesisJob]]]]] = None) -> None:
    """Answer every job of a hand-over. Once one fails the rest fail with the same error (the batch
    they were being made in is gone); the parent decides what to do with them. A job for which
    ``cancelled(index)`` turns true between two chunks stops there and is answered ``Cancelled``.

    Jobs that say ``joins`` are made by the backend's ``interleaved(jobs, more)``, even alone, and ``more()`` gives it
    the jobs that joined since (``joined()``: ``(offset, jobs)`` as the parent sent them); jobs that joined too late for
    it are left in ``joined`` for the caller (:func:`answer_joined`)."""
    waiting = set(range(len(jobs)))
    try:
        pieces = _interleaved(backend, jobs, None if joined is None else functools.partial(_take_joined, joined, waiting))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a backend that fails to start the batch fails its jobs
        for index in range(len(jobs)):
            send(protocol.tagged(_failure(err, jobs[0].spec.backend), index))
        return
    if pieces is not None:
        _answer_interleaved(send, pieces, waiting, cancelled, jobs[0].spec.backend)
        return
    failure: Optional[tuple] = None
    try:
        spoken = backend.synthesize_together(jobs)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a backend that fails to start the batch fails its jobs
        failure = _failure(err, jobs[0].spec.backend)
    for index in range(len(jobs)):
        tag = functools.partial(_send_tagged, send, index)
        if failure is not None:
            tag(failure)
            continue
        if all(cancelled(later) for later in range(index, len(jobs))):  # Ctrl-C, a DELETE of their batch job: stop here
            _close(spoken)  # (the next job's turn made the rest of each job it took off the run: seconds of a hand-over)
            for later in range(index, len(jobs)):
                _send_tagged(send, later, ("error", "Cancelled", "cancelled"))
            return
        failure = _answer_one(tag, spoken, functools.partial(cancelled, index), jobs[index].spec.backend)
        if failure is not None and failure[1] == "Cancelled":
            tag(failure)
            failure = None
            continue
        tag(failure or ("done",))


def _take_joined(joined: Callable[[], list[tuple[int, list[SynthesisJob]]]], waiting: set[int]) -> list[SynthesisJob]:
    """The jobs that joined since the last call, their places added to those ``waiting`` for an answer."""
    taken: list[SynthesisJob] = []
    for offset, extra in joined():
        waiting.update(range(offset, offset + len(extra)))
        taken += extra
    return taken


def _interleaved(backend: Any, jobs: list[SynthesisJob], more: Optional[Callable[[], list[SynthesisJob]]]) -> Optional[Iterator]:
    """The backend's interleaved answer to ``jobs`` (``None``: it makes them in turn): jobs that may be joined go there
    even alone, with ``more``."""
    together = getattr(backend, "interleaved", None)
    if together is None:
        return None
    if more is not None and jobs[0].joins:
        return together(jobs, more)
    return together(jobs) if len(jobs) > 1 else None


def _drop_cancelled(send: Send, waiting: set[int], cancelled: Callable[[int], bool]) -> None:
    for index in sorted(waiting):
        if cancelled(index):
            send(protocol.error("Cancelled", "cancelled", index))
            waiting.discard(index)


def _send_tagged(send: Send, index: int, message: tuple) -> None:
    send(protocol.tagged(message, index))


def _answer_interleaved(send: Send, pieces: Iterator[tuple[int, Any]], waiting: set[int], cancelled: Callable[[int], bool],
                        backend: str) -> None:
    """Send ``(index, chunk)`` pieces as they come (``(index, None)``: that job is complete; ``(index, error)``: that job
    failed alone, as one that joined with a reference that cannot be read); a job cancelled meanwhile is answered
    ``Cancelled`` and its later pieces dropped. ``waiting`` holds the places not yet answered (jobs that join are added
    to it). Once every job is answered the generator is closed (work for cancelled jobs alone stops there)."""
    rates: dict[int, int] = {}
    try:
        for index, chunk in pieces:
            _drop_cancelled(send, waiting, cancelled)
            if index in waiting:
                if chunk is None:
                    send(protocol.done(index))
                    waiting.discard(index)
                elif isinstance(chunk, BaseException):
                    send(protocol.tagged(_failure(chunk, backend), index))
                    waiting.discard(index)
                elif len(samples := checked_chunk(chunk, backend, rates, index)[0]):  # see _answer_one
                    send(protocol.chunk(samples, rates[index], index))
            if not waiting:
                break
    except (Exception, SystemExit) as err:  # noqa: BLE001 - reported to the parent, which decides
        failure = _failure(err, backend)
        for index in sorted(waiting):
            send(protocol.tagged(failure, index))
        return
    finally:
        _close(pieces)
    for index in sorted(waiting):
        send(protocol.done(index))


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close:
        close()


def _answer_one(send: Send, spoken: Iterator[Iterator[Any]], cancelled: Callable[[], bool], backend: str) -> Optional[tuple]:
    """Send the next job's chunks; return its error message, or ``None`` when it is done."""
    rates: dict[int, int] = {}
    try:
        chunks = next(spoken)
        for chunk in chunks:
            if cancelled():
                _close(chunks)
                return ("error", "Cancelled", "cancelled")
            if isinstance(chunk, JobValue):
                send(("value", chunk.data))
                continue
            samples, rate = checked_chunk(chunk, backend, rates, 0)
            if len(samples):  # an empty chunk carries nothing: a job of only those made "no audio", not an empty file
                send(("chunk", samples, rate))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - reported to the parent, which decides
        return _failure(err, backend)
    return None


def checked_chunk(chunk: Any, backend: str, rates: dict[int, int], index: int) -> tuple[Any, int]:
    """``(samples, rate)`` of a chunk a backend yielded for job ``index``, as the parent takes them: 1-D float32 and a
    positive int that stays the same for the whole job (``rates`` remembers it). Anything else fails the job with a
    :class:`RuntimeFailure` naming the backend and what to fix: a plugin's int16, stereo, NaN or rate-less audio would
    otherwise reach an output as noise, or fail in the parent far from its cause."""
    import numpy as np

    contract = "a backend yields AudioChunk(samples, sample_rate) with mono float32 samples in [-1, 1]"
    if not isinstance(chunk, AudioChunk):
        raise RuntimeFailure(f"the {backend} backend yielded a {type(chunk).__name__}; {contract}")
    try:
        samples = np.asarray(chunk.samples)
    except Exception as err:  # noqa: BLE001 - whatever the plugin put there, the job fails with one line
        raise RuntimeFailure(f"the {backend} backend yielded samples numpy cannot read ({type(err).__name__}); {contract}") from None
    if samples.dtype.kind != "f" or samples.ndim != 1:
        raise RuntimeFailure(f"the {backend} backend yielded {samples.dtype} samples of shape {samples.shape}; {contract}")
    if not np.isfinite(samples).all():  # NaN became 0 or -32768 in a 16-bit file, NaN in a float one: noise or clicks
        raise RuntimeFailure(f"the {backend} backend yielded samples that are not numbers (NaN or infinite); {contract}")
    rate = chunk.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise RuntimeFailure(f"the {backend} backend yielded a chunk with sample rate {rate!r}; {contract}, sample_rate a positive int")
    if rates.setdefault(index, int(rate)) != rate:
        raise RuntimeFailure(f"the {backend} backend changed its sample rate within one job ({rates[index]}, then {rate}); "
                             "resample to one rate per job")
    return samples.astype(np.float32, copy=False), int(rate)


def _failure(err: BaseException, backend: str) -> tuple:
    if isinstance(err, DemodVoiceError):
        return ("error", *to_wire(err))
    log.debug("job failed:\n%s", traceback.format_exc())
    return ("error", "RuntimeFailure", f"synthesis failed ({backend} backend): {type(err).__name__}: {err}")


class _Control:
    """Messages the parent may send while a job runs: ``("cancel", index)`` or ``None`` (stop)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.stop = False
        self.cancelled: set[int] = set()
        self.joined: list[tuple[int, list[SynthesisJob]]] = []
        """Jobs that joined the running hand-over, ``(offset, jobs)``, not yet taken."""
        self.next: Optional[list] = None
        """A hand-over read while looking for the others (the parent sends one only once the last is answered, so this
        stays ``None``; kept, not dropped, if the order ever changes)."""

    def check(self, index: int) -> bool:
        """True when the job at ``index`` of the current hand-over should stop now."""
        try:
            while not self.stop and self.next is None and self.conn.poll(0):
                self.note(self.conn.recv())
        except (EOFError, OSError):
            self.stop = True
        return self.stop or index in self.cancelled

    def note(self, message: Any) -> None:
        """Keep what a message of the parent says about the running hand-over."""
        if message is None:
            self.stop = True
        elif isinstance(message, list):
            self.next = message
        elif isinstance(message, tuple) and message[:1] == ("cancel",):
            self.cancelled.add(message[1])
        elif isinstance(message, tuple) and message[:1] == ("join",):
            self.joined.append((message[1], message[2]))

    def take_joined(self) -> list[tuple[int, list[SynthesisJob]]]:
        """The jobs that joined since the last call, the parent's messages read first: only while a job of the
        hand-over is unanswered (then no next hand-over can come)."""
        self.check(-1)
        return self.taken()

    def taken(self) -> list[tuple[int, list[SynthesisJob]]]:
        """The jobs that joined and were read, not yet taken."""
        taken, self.joined = self.joined, []
        return taken

    def receive(self, wait: Optional[float]) -> Any:
        """The parent's next message: a hand-over read meanwhile first; ``False`` when none came within ``wait``
        seconds (``None``: wait for it)."""
        if self.next is not None:
            message, self.next = self.next, None
            return message
        if wait is not None and not self.conn.poll(wait):
            return False
        return self.conn.recv()


def answer_joined(send: Send, backend: Any, control: _Control) -> None:
    """Jobs that joined a hand-over too late for it (the backend had made its last round, or made the jobs in turn) are
    answered now, each group as a hand-over of its own whose messages keep their places in the first one. What was read
    is taken, not polled for: the hand-over is answered, so the parent's next message may be a new one (the loop reads
    it); joins read while these are answered are taken in turn."""
    while not control.stop and (pending := control.taken()):
        for offset, jobs in pending:
            answer(lambda message, offset=offset: send(protocol.shifted(message, offset)), backend, jobs,
                   lambda index, offset=offset: control.check(index + offset))


def serve(conn: Any, spec: LoadSpec) -> None:
    """Subprocess worker loop: load, then answer job lists until ``None`` or EOF."""
    backend, message = load_backend(spec)
    conn.send(message)
    if backend is None:
        return
    control = _Control(conn)
    idle = getattr(backend, "idle", None)
    while not control.stop:
        try:
            jobs = control.receive(IDLE_SECONDS if idle is not None else None)
            if jobs is False:
                _idle(idle)
                jobs = control.receive(None)
        except (EOFError, OSError):
            return
        if jobs is None:
            return
        if isinstance(jobs, tuple):  # a cancel that arrived after its job was answered, or jobs that joined it then
            control.note(jobs)
        else:
            control.cancelled.clear()
            answer(conn.send, backend, jobs if isinstance(jobs, list) else [jobs], control.check, control.take_joined)
        answer_joined(conn.send, backend, control)


def _idle(idle: Callable[[], None]) -> None:
    """A backend's ``idle()``: an optimisation, so its failure is logged and the worker waits on for jobs."""
    try:
        idle()
    except Exception:  # noqa: BLE001 - a plugin's idle() must not end a resident worker
        log.debug("idle() failed:\n%s", traceback.format_exc())


def prepare(log_level: int, threads: int, parent_path: Optional[list[str]] = None) -> None:
    """Process set-up shared by every transport: logging, import path, thread share."""
    from demod_voice.logs import configure_logging

    configure_logging(log_level)
    if parent_path:
        # The parent's import path, so backends named as module:Class resolve the same way here.
        sys.path[:] = list(dict.fromkeys(sys.path + parent_path))
    if threads:
        # Several workers share the cores: each engine gets its share, not all of them (set before
        # any engine is imported, which is when OpenMP and torch read it).
        os.environ["OMP_NUM_THREADS"] = str(threads)
        from demod_voice import devices

        devices.THREADS = threads


def main() -> None:
    """Subprocess entry point: ``python -c '...main()' FD`` with FD one end of a socket pair."""
    sys.stdout = sys.stderr  # belt and braces: fd 1 is already the parent's stderr
    # The engine owns the worker's fate: Ctrl-C, SIGTERM and SIGHUP go to the parent, which stops us (by a message, or
    # SIGKILL; and the kernel kills us when it ends). systemd's default stop (KillMode=control-group) sends SIGTERM to
    # every process of the service at once: a worker that ended on it cut the answers the server was draining.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    conn = Connection(int(sys.argv[1]))
    try:
        spec, log_level, parent_path, threads = conn.recv()
    except (EOFError, OSError):
        return
    prepare(log_level, threads, parent_path)
    serve(conn, spec)
