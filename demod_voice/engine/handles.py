"""What a client holds for a submitted job: its result, its stream of chunks, and a way to cancel.

The engine's own thread fills a handle; any other thread (a CLI waiting, a thread pool) or an
asyncio task (the server) reads it. Nothing here blocks the engine. A streamed job whose reader
falls :data:`BUFFER_SECONDS` of audio behind is *paused*: the engine stops reading its worker
(which then blocks on its pipe, making nothing more) until the reader catches up or cancels it.
So a client that never reads holds at most that much audio in the server, not the whole text's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Optional

from demod_voice.audio.chunks import AudioChunk
from demod_voice.audio.writer import StreamedSink
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import DemodVoiceError


class Priority(IntEnum):
    """Interactive requests are handed to workers before batch rows of the same model."""

    INTERACTIVE = 0
    BATCH = 1


@dataclass
class JobResult:
    """The outcome of one job."""

    job: SynthesisJob
    """The job."""
    error: Optional[DemodVoiceError] = None
    """Why it failed; ``None`` on success."""
    audio_seconds: float = 0.0
    """Duration of the audio made."""
    seconds: float = 0.0
    """Wall time of its last attempt (for a job that never reached a worker: the time it waited)."""
    attempts: int = 1
    """How many workers it took."""
    first_chunk_seconds: Optional[float] = None
    """From submission to the first chunk of audio (time to first audio); ``None`` when none came."""
    where: str = ""
    """Where it was made (``local``, a Ray node)."""
    value: Optional[dict] = None
    """What a job that returns something other than audio gave back (:class:`~demod_voice.engine.jobs.JobValue`'s data)."""

    @property
    def ok(self) -> bool:
        """True when the output was made."""
        return self.error is None


_END = object()

BUFFER_SECONDS = 20.0
"""Audio a streamed job may make ahead of its reader before it is paused (about 2 MB at 24 kHz)."""
MAX_PAUSE = 300.0
"""Seconds a job may stay paused, its reader taking nothing, before it is cancelled: a backstop for readers that
stopped for good (the server's front doors cancel at their own deadlines long before)."""


def _seconds(item: Any) -> float:
    rate = getattr(item, "sample_rate", 0)
    return len(item.samples) / rate if rate else 0.0


class _Feed:
    """A thread-safe queue of chunks that both threads and asyncio tasks can wait on; it knows how much
    audio it holds."""

    def __init__(self, limit: Optional[float] = None) -> None:
        self._items: deque = deque()
        self._lock = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.limit = BUFFER_SECONDS if limit is None else limit
        """Seconds of audio it may hold before :meth:`full` says so."""
        self.held = 0.0
        """Seconds of audio it holds."""

    def full(self) -> bool:
        """True while the reader is :attr:`limit` seconds of audio behind."""
        return self.held >= self.limit

    def _pop(self) -> Any:
        item = self._items.popleft()
        self.held = max(0.0, self.held - _seconds(item)) if item is not _END else self.held
        return item

    def put(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            if item is not _END:
                self.held += _seconds(item)
            self._lock.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)

    def get(self, timeout: Optional[float] = None) -> Any:
        with self._lock:
            if not self._lock.wait_for(lambda: self._items, timeout):
                raise TimeoutError("no audio within the time allowed")
            return self._pop()

    async def aget(self) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._items:
                    return self._pop()
                future = loop.create_future()
                self._waiters.append((loop, future))
            await future


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class JobHandle:
    """A submitted job: stream it (:meth:`chunks`, :meth:`stream`), wait for it, or cancel it."""

    def __init__(self, job: SynthesisJob, priority: Priority, cancel: Callable[[JobHandle], None], streaming: bool) -> None:
        self.job = job
        """The job."""
        self.priority = priority
        """Its priority in the queue."""
        self.submitted = time.perf_counter()
        """When it was submitted (``perf_counter``)."""
        self._cancel = cancel
        self._feed = _Feed() if streaming else None
        self._stopping = False
        self._paused_at: Optional[float] = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._result: Optional[JobResult] = None
        self._callbacks: list[Callable[[JobResult], None]] = []

    # --- engine side -------------------------------------------------------------------------

    def _chunk(self, chunk: AudioChunk) -> None:
        if self._feed is not None:
            self._feed.put(chunk)

    def _finish(self, result: JobResult) -> None:
        with self._lock:
            self._result = result
            callbacks = list(self._callbacks)
        for callback in callbacks:  # before waiters wake: whoever waits sees the callbacks' effects
            callback(result)
        self._done.set()
        if self._feed is not None:
            self._feed.put(_END)

    # --- client side -------------------------------------------------------------------------

    def add_done_callback(self, callback: Callable[[JobResult], None]) -> None:
        """Call ``callback(result)`` when the job ends (at once if it has); it runs on the engine's thread."""
        with self._lock:
            if self._result is None:
                self._callbacks.append(callback)
                return
        callback(self._result)

    def done(self) -> bool:
        """True once the job has ended (made, failed or cancelled)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Stop the job: a waiting job leaves the queue, a running one stops at its next chunk and
        frees its worker. Its result is :class:`~demod_voice.errors.Cancelled` unless it had already ended."""
        if not self.done():
            self._stopping = True
            self._cancel(self)

    def paused(self) -> bool:
        """True while the job's reader is :data:`BUFFER_SECONDS` of audio behind: the engine leaves its worker
        waiting (blocked on its pipe) until the reader catches up. A cancelled job is never paused; one paused for
        :data:`MAX_PAUSE` seconds is cancelled (asked on the engine's thread, every turn of its loop)."""
        if self._feed is None or self._stopping or not self._feed.full():
            self._paused_at = None
            return False
        now = time.monotonic()
        if self._paused_at is None:
            self._paused_at = now
        elif now - self._paused_at > MAX_PAUSE:
            self.cancel()
            return False
        return True

    def result(self, timeout: Optional[float] = None) -> JobResult:
        """Wait for the job to end and return its result (``TimeoutError`` after ``timeout`` seconds)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.job.describe()} did not finish within {timeout} s")
        return self._result

    async def wait(self) -> JobResult:
        """Await the result without blocking the event loop."""
        if self._feed is not None:
            async for _ in self.stream():
                pass
            return self._result
        return await asyncio.get_running_loop().run_in_executor(None, self.result)

    def chunks(self, timeout: Optional[float] = None) -> Iterator[AudioChunk]:
        """The job's audio as it is made; raises the job's error if it fails. ``timeout`` bounds each wait."""
        if self._feed is None:
            raise ValueError("this job writes to a sink; its chunks are not kept")
        while True:
            item = self._feed.get(timeout)
            if item is _END:
                self._raise()
                return
            yield item

    async def stream(self) -> AsyncIterator[AudioChunk]:
        """:meth:`chunks` for asyncio: awaits each chunk without blocking the event loop."""
        if self._feed is None:
            raise ValueError("this job writes to a sink; its chunks are not kept")
        while True:
            item = await self._feed.aget()
            if item is _END:
                self._raise()
                return
            yield item

    def _raise(self) -> None:
        if self._result is not None and self._result.error is not None:
            raise self._result.error


class StreamSink(StreamedSink):
    """The sink of a streamed job: chunks go to its handle's readers."""

    def __init__(self, handle: JobHandle) -> None:
        super().__init__()
        self._handle = handle

    def write(self, chunk: AudioChunk) -> None:
        self._sent(chunk)
        self._handle._chunk(chunk)
