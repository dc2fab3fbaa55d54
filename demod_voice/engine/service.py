"""The engine as a long-lived service: every front door submits jobs here.

One thread of its own talks to every worker (:mod:`demod_voice.engine.pool` keeps the rules);
clients on any other thread, or on an asyncio loop, only submit, cancel and read handles. Per
model a pool of workers stays loaded between jobs, is unloaded after ``engine.idle_timeout``,
and :mod:`demod_voice.engine.placement` decides which idle models to unload for a new one
(``engine.memory_budget_mb``, ``engine.max_loaded_models``). The executor (where workers run) is
chosen from ``engine.executor`` by :mod:`demod_voice.engine.executors.choose`.

:class:`EngineService` is the long-lived engine (``serve``); :class:`EngineRun` is one run of jobs
on an engine started for it and shut down after (``batch``, the one-shot commands).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Pipe, wait
from typing import Any, Optional

from demod_voice.audio.writer import Sink, open_sink
from demod_voice.config import EngineSettings
from demod_voice.engine.executors import Executor, WorkerHandle
from demod_voice.engine.executors.choose import choose_executor
from demod_voice.engine.handles import JobHandle, JobResult, Priority, StreamSink
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.placement import Budget, Placement
from demod_voice.engine.pool import Pool, Task
from demod_voice.engine.sizing import default_workers
from demod_voice.errors import DemodVoiceError, Interrupted, QueueFull, RuntimeFailure

log = logging.getLogger(__name__)

__all__ = ["EngineRun", "EngineService", "JobHandle", "JobResult", "PoolInfo", "Priority", "QueueFull", "run_one"]

TICK = 0.5
"""Seconds between timer checks (cancel deadlines, memory, idle models) while work is running."""
WINDOW = 256
"""At least this many jobs of one model queued at once by :meth:`EngineService.run` (the rest wait in the run)."""


@dataclass
class PoolInfo:
    """A model the engine has workers for."""

    spec: LoadSpec
    workers: int
    """Live worker processes."""
    busy: int
    """Jobs being made."""
    waiting: int
    """Jobs waiting for a worker of this model."""
    rss_bytes: int
    """Resident memory of its workers together."""
    last_used: float
    """``time.monotonic()`` of its last job."""
    ready: bool
    """At least one worker has loaded the model."""


class EngineService:
    """Runs jobs on isolated, model-resident workers; thread-safe; one dispatcher thread."""

    def __init__(self, settings: EngineSettings, workers: int = 1, log_level: int = logging.WARNING,
                 executor: Optional[Executor] = None, max_loaded_models: Optional[int] = None,
                 placement: Optional[Placement] = None) -> None:
        self.settings = settings
        self.max_loaded_models = settings.max_loaded_models if max_loaded_models is None else max_loaded_models
        """Models that may have workers at once (0: no limit)."""
        self.workers = max(0, workers)
        """Workers per model; 0: chosen per model from its size and the cores (:mod:`.sizing`)."""
        self.log_level = log_level
        self.executor: Executor = executor or choose_executor(settings, log_level)
        """Where workers run (``engine.executor`` unless one is given)."""
        self.placement: Placement = placement or Budget(settings.memory_budget_mb, self.max_loaded_models, self.warn_once)
        """Which models may have workers now (memory budget, model slots)."""
        self.on_worker_start: Callable[[WorkerHandle], None] = lambda worker: None
        """Called on the engine's thread with each new worker (progress displays; tests reach the process)."""
        self._pools: dict[LoadSpec, Pool] = {}
        self._newest: dict[LoadSpec, LoadSpec] = {}
        """Per model (its spec without a version, :meth:`LoadSpec.place`), the newest version seen."""
        self._tasks: dict[int, Task] = {}
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = Pipe(duplex=False)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._runs_stopping = 0
        self._warned: set[str] = set()
        self._wake_at: Optional[float] = None
        self._request_seconds: Optional[float] = None
        """How long the last requests (interactive jobs) took to make, averaged (for a full queue's ``Retry-After``)."""
        self._stats = {"submitted": 0, "completed": 0, "failed": 0, "cancelled": 0, "worker_starts": 0, "worker_restarts": 0}

    # --- client side (any thread) --------------------------------------------------------------

    def submit(self, job: SynthesisJob, sink: Optional[Sink] = None, priority: Priority = Priority.INTERACTIVE,
               bounded: bool = False, on_chunk: Optional[Callable[[Any], None]] = None) -> JobHandle:
        """Queue a job. Without a ``sink`` its chunks are kept for :meth:`JobHandle.chunks` / ``stream``
        (and passed to ``on_chunk`` on the engine's thread). ``bounded``: refuse with :class:`QueueFull`
        when ``engine.max_queued`` interactive jobs already wait."""
        return self.submit_many([(job, sink)], priority, bounded, on_chunk)[0]

    def submit_many(self, work: list[tuple[SynthesisJob, Optional[Sink]]], priority: Priority = Priority.BATCH,
                    bounded: bool = False, on_chunk: Optional[Callable[[Any], None]] = None) -> list[JobHandle]:
        """Queue several jobs at once, so that jobs that may be made together are seen together."""
        if self._closing:
            raise RuntimeFailure("the engine is shutting down; no new work is taken")
        tasks = []
        with self._lock:
            if bounded:
                waiting = sum(1 for t in self._tasks.values() if t.priority == Priority.INTERACTIVE and t.attempts == 0)
                if waiting + len(work) > self.settings.max_queued:
                    raise QueueFull(f"{waiting} requests are waiting (engine.max_queued); try again shortly",
                                    retry_after=self._retry_after(waiting))
            for job, sink in work:
                handle = JobHandle(job, priority, self._cancel, streaming=sink is None)
                sink = StreamSink(handle) if sink is None else sink
                task = Task(job, handle, _Tee(sink, on_chunk) if on_chunk else sink, priority)
                self._tasks[id(handle)] = task
                tasks.append(task)
            self._stats["submitted"] += len(tasks)
        self._post(("submit", tasks))
        return [task.handle for task in tasks]

    def run(self, jobs: Iterable[SynthesisJob], on_result: Callable[[JobResult], None] = lambda result: None,
            sink_factory: Callable[[SynthesisJob], Sink] = lambda job: open_sink(job.output),
            watch: Callable[[], None] = lambda: None, keep: bool = True) -> list[JobResult]:
        """Run jobs as batch work and wait for all; results in the order given. ``on_result`` runs on
        the calling thread as each job ends, ``watch`` about five times a second while it waits (a job's
        time budget: its jobs may make no audio for long); if either raises, the rest is cancelled and the
        error re-raised. Ctrl-C cancels everything (no partial outputs) and raises :class:`Interrupted`; every
        finished job reaches ``on_result`` first, and the one ``on_result`` was handling when Ctrl-C came is given
        to it again (so ``on_result`` must skip a job it has already recorded). ``keep=False``: each result reaches
        ``on_result`` alone and is let go after it, and none is returned (a batch of 50,000 rows kept every row's
        result, with a Piper row's word timings, until its end: its memory grew with every row)."""
        done: queue.SimpleQueue = queue.SimpleQueue()
        jobs = list(jobs)
        feed = _Feed(jobs, self._window(jobs), keep)
        current: Optional[JobResult] = None
        try:
            for spec in list(feed.waiting):
                feed.submit(self, spec, sink_factory, done)
            for _ in range(len(feed.jobs)):
                handle, current = _get(done, watch)
                feed.finished(handle)
                if not current.ok:  # the failure may be the run's (a Ray head gone), not the row's: asked before it counts
                    watch()
                on_result(current)
                current = None
                feed.submit(self, handle.job.spec, sink_factory, done)
        except KeyboardInterrupt:
            self.cancel_and_wait(list(feed.unfinished.values()))
            for result in _finished(current, feed.unfinished.values()):
                on_result(result)
            raise Interrupted("interrupted: finished outputs are intact, unfinished ones were removed") from None
        except BaseException:
            self.cancel_and_wait(list(feed.unfinished.values()))
            # The run's own end (a Ray head gone, --fail-fast): outputs finished meanwhile are recorded too, each on
            # its own (a server job's spent budget raises again after every one it records).
            for result in _finished(None, feed.unfinished.values()):
                try:
                    on_result(result)
                except Exception:  # noqa: BLE001 - recording it failed as well (a full disk): the first error is the one
                    log.debug("%s could not be recorded after the run failed", result.job.describe(), exc_info=True)
            raise
        return [handle.result() for handle in feed.kept if handle is not None]

    def _window(self, jobs: list[SynthesisJob]) -> int:
        """Jobs of one model that :meth:`run` keeps queued at once: enough for every worker's fullest hand-overs under
        guided scheduling (a ``1 / (2 x workers)`` share of what waits), at least :data:`WINDOW`."""
        together = max((job.together_limit for job in jobs), default=1)
        return max(WINDOW, 4 * (self.workers or os.cpu_count() or 1) * together)

    @property
    def stopping(self) -> bool:
        """A run of this engine is being stopped as a whole (:meth:`run`'s Ctrl-C or error): its kills are asked for."""
        return self._runs_stopping > 0

    def cancel_and_wait(self, handles: list[JobHandle]) -> None:
        """Stop a run as a whole (Ctrl-C, its own error): cancel ``handles`` and wait for them, a worker that does not stop
        in time killed as asked for (:attr:`stopping`), not warned of."""
        self._runs_stopping += 1
        try:
            for handle in handles:
                handle.cancel()
            deadline = time.monotonic() + self.settings.cancel_kill_after + 10
            for handle in handles:
                try:
                    handle.result(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    # A worker still loading its model stops the job once loaded (the pool's rule): the run's own error,
                    # the one being raised, is what its caller must see, not this wait's.
                    log.info("%s was cancelled; it ends once its worker is ready", handle.job.describe())
        finally:
            self._runs_stopping -= 1

    def preload(self, spec: LoadSpec, keep: bool = True) -> None:
        """Start the model's workers now; ``keep``: keep them loaded (no idle unloading), else they are only a head start
        for jobs soon to come, unloaded when idle, and a failure to load is told by the first job, not logged."""
        self._post(("preload", (spec, keep)))

    def is_ready(self, spec: LoadSpec) -> bool:
        """True once a worker of ``spec`` has loaded its model (of its newest version once its files were replaced)."""
        pool = self._current(spec)
        return bool(pool and pool.ever_ready and pool.live_workers())

    def load_failed(self, spec: LoadSpec) -> bool:
        """True while the last try to load ``spec`` failed and no worker has loaded it since."""
        pool = self._current(spec)
        return bool(pool and pool.load_failed and not pool.live_workers())

    def crash_looping(self, spec: LoadSpec) -> bool:
        """True while the workers of the preloaded ``spec`` keep dying soon after loading (each is started again after a
        growing wait), and none has stayed up since."""
        pool = self._current(spec)
        return bool(pool and pool.crash_looping())

    def over_memory_cap(self, spec: LoadSpec) -> bool:
        """True while every loaded worker of ``spec`` used more than ``engine.worker_memory_cap_mb`` once loaded, before
        any text: each of its jobs is ended for the cap (the log said to raise it)."""
        pool = self._current(spec)
        return bool(pool and pool.over_cap())

    def pools(self) -> list[PoolInfo]:
        """The models with workers or work, as seen now."""
        return [PoolInfo(p.spec, len(p.live_workers()), p.running(), p.waiting(), p.rss(), p.last_used, self.is_ready(p.spec))
                for p in list(self._pools.values())]

    def stats(self) -> dict[str, int]:
        """Counters since start: submitted, completed, failed, cancelled, worker starts and restarts,
        and now: queued, running, loaded models."""
        pools = list(self._pools.values())
        return {**self._stats, "queued": sum(p.waiting() for p in pools), "running": sum(p.running() for p in pools),
                "loaded_models": sum(1 for p in pools if p.live_workers())}

    def shutdown(self, grace: float = 0.0) -> None:
        """Take no new work; give running jobs up to ``grace`` seconds; cancel the rest; stop workers."""
        self._closing = True
        deadline = time.monotonic() + grace
        while grace and self._tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        self._post(("shutdown", None))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.executor.close()

    def __enter__(self) -> EngineService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def warn_once(self, message: str) -> None:
        """Log a warning the first time it is seen."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _cancel(self, handle: JobHandle) -> None:
        self._post(("cancel", handle))

    def _post(self, message: tuple) -> None:
        self._inbox.put(message)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="demod-voice-engine", daemon=True)
                self._thread.start()
        try:
            self._wake_w.send_bytes(b"!")
        except OSError:
            pass

    def _retry_after(self, waiting: int) -> float:
        """Seconds until the ``waiting`` requests have been handed to the workers, at the time the last ones took (1 s
        a request before any ended: a fixed 1 s a request told an app's client to retry after 1 s while the requests
        it had let through took 17 and 26 s, so the client's retries were spent at once). Without a configured number,
        a model's workers are as many as its pool was given (one per core for a light voice: they were counted as one)."""
        workers = self.workers or max((len(pool.slots) for pool in list(self._pools.values())), default=1)
        return max(1.0, round(waiting * (self._request_seconds or 1.0) / max(1, workers)))

    # --- engine side (its own thread) -----------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._drain():
                for pool in list(self._pools.values()):
                    pool.assign()
                conns: dict[Any, tuple[Pool, Any]] = {}
                for pool in self._pools.values():
                    conns.update({conn: (pool, slot) for conn, slot in pool.conns().items()})
                timeout = TICK if conns or self._tasks else None
                if self._wake_at is not None:
                    timeout = max(0.0, min(timeout or TICK, self._wake_at - time.perf_counter()))
                    self._wake_at = None
                for conn in wait([self._wake_r, *conns], timeout=timeout):
                    if conn is self._wake_r:
                        while self._wake_r.poll():
                            self._wake_r.recv_bytes()
                        continue
                    pool, slot = conns[conn]
                    if slot.worker is not None and slot.worker.conn is conn:  # a message may have ended others
                        pool.receive(slot)
                self._tick()
        except BaseException:  # noqa: BLE001 - a bug here must not leave clients waiting forever
            log.exception("the engine's thread failed")
            self._abandon(RuntimeFailure("internal error in the engine; rerun with -vv and report it"))

    def _drain(self) -> bool:
        """Take the inbox; False once the engine should stop."""
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                return True
            if kind == "submit":
                for task in item:
                    self._pool(task.job.spec).add(task)
            elif kind == "cancel":
                task = self._tasks.get(id(item))
                if task is not None:
                    self._pool(task.job.spec).cancel(task)
            elif kind == "preload":
                spec, keep = item
                pool = self._pool(spec)
                pool = self._current(spec) or pool  # files replaced since it was resolved: preload them as they are now
                pool.pinned = pool.pinned or keep
                self._preload(pool)
            elif kind == "shutdown":
                self._abandon(None)
                return False

    def _preload(self, pool: Pool) -> None:
        for slot in pool.slots:
            if slot.worker is None and not pool.start_worker(slot):
                break

    def _pool(self, spec: LoadSpec) -> Pool:
        pool = self._pools.get(spec)
        if pool is None:
            pool = self._pools[spec] = Pool(self, spec, self.workers or default_workers(spec))
            self._supersede(pool)
        return pool

    def _supersede(self, pool: Pool) -> None:
        """A model's files replaced at the same path (a newer ``LoadSpec.version``): its older pools take no new work and
        are unloaded once idle (:meth:`Pool.tick`), and a preloaded one's place passes to the newest. A pool for an older
        version than one already seen (an answer resolved before the files were replaced, whose old workers are gone) is
        superseded from the start."""
        place = pool.spec.place()
        newest = self._newest.get(place)
        if not pool.spec.version or newest == pool.spec:
            return
        if newest is not None and newest.version > pool.spec.version:
            pool.superseded = True
            return
        self._newest[place] = pool.spec
        older = [p for p in self._pools.values() if p is not pool and p.spec.place() == place and not p.superseded]
        for old in older:
            old.superseded = True
            log.info("the files of %s were replaced: new requests load them; its workers are unloaded once idle", old.spec.model)
            if old.pinned:
                old.pinned = False
                pool.pinned = True
                self._preload(pool)

    def _current(self, spec: LoadSpec) -> Optional[Pool]:
        """The pool that serves ``spec``'s model now: the newest version's once its files were replaced."""
        newest = self._newest.get(spec.place()) if spec.version else None
        return self._pools.get(newest if newest is not None and newest.version > spec.version else spec)

    def _tick(self) -> None:
        now = time.monotonic()
        for pool in list(self._pools.values()):
            pool.tick(now)
            if not pool.busy() and not pool.live_workers() and not pool.pinned:
                del self._pools[pool.spec]
        for pool in list(self._pools.values()):  # after every unloading of this tick: the room it left is seen now
            pool.reload()

    def _abandon(self, error: Optional[DemodVoiceError]) -> None:
        """Shut down: waiting jobs fail (or are cancelled), running ones are cancelled, workers stop."""
        for pool in list(self._pools.values()):
            pool.fail_waiting(error)
            pool.stop(kill=True)
        self._pools.clear()

    def make_room(self, pool: Pool, evict: bool = True) -> bool:
        """Whether ``pool`` may start a worker now (the placement may unload idle models to make room, if ``evict``)."""
        return self.placement.admit(pool, list(self._pools.values()), evict)

    def wake_in(self, seconds: float) -> None:
        """Have the engine's thread look again after ``seconds`` at the latest (engine thread only)."""
        at = time.perf_counter() + seconds
        self._wake_at = at if self._wake_at is None else min(self._wake_at, at)

    def note_worker_start(self, worker: WorkerHandle) -> None:
        self._stats["worker_starts"] += 1
        self.on_worker_start(worker)

    def note_restart(self) -> None:
        self._stats["worker_restarts"] += 1

    def note_result(self, task: Task, error: Optional[DemodVoiceError]) -> None:
        with self._lock:
            self._tasks.pop(id(task.handle), None)
            key = "completed" if error is None else "cancelled" if task.cancelled else "failed"
            self._stats[key] += 1
            if error is None and task.priority == Priority.INTERACTIVE:
                took = time.perf_counter() - task.started
                self._request_seconds = took if self._request_seconds is None else 0.7 * self._request_seconds + 0.3 * took


class _Tee:
    """A sink that also hands each chunk to a callback."""

    def __init__(self, sink: Sink, on_chunk: Callable[[Any], None]) -> None:
        self._sink = sink
        self._on_chunk = on_chunk

    @property
    def retryable(self) -> bool:
        return self._sink.retryable

    def write(self, chunk: Any) -> None:
        self._sink.write(chunk)
        self._on_chunk(chunk)

    def commit(self) -> float:
        return self._sink.commit()

    def abort(self) -> None:
        self._sink.abort()


class _Feed:
    """A run's jobs, handed to the engine a window at a time per model: a batch of 50,000 rows made a task, a handle
    and a sink for every row up front (290 MB in the parent before the first row), and each hand-over read the whole
    queue. Per model, so that models take their turns as they did with every job queued (``engine.max_loaded_models``:
    one model's rows, then the next's, not a model swap every window); in the order given within a model."""

    def __init__(self, jobs: list[SynthesisJob], window: int, keep: bool) -> None:
        self.jobs = jobs
        self.window = window
        self.waiting: dict[LoadSpec, deque[int]] = {}
        for position, job in enumerate(jobs):
            self.waiting.setdefault(job.spec, deque()).append(position)
        self.queued: Counter[LoadSpec] = Counter()
        self.unfinished: dict[int, JobHandle] = {}
        self.kept: list[Optional[JobHandle]] = [None] * len(jobs) if keep else []
        """Every job's handle by position (``keep``), for the results in the order given."""

    def submit(self, service: EngineService, spec: LoadSpec, sink_factory: Callable[[SynthesisJob], Sink],
               done: queue.SimpleQueue) -> None:
        """Queue more of ``spec``'s jobs once fewer than half the window wait, up to the window (the dispatcher sees
        many at once, as it groups them for workers); each reports to ``done`` as it ends."""
        waiting = self.waiting.get(spec)
        if not waiting or self.queued[spec] > self.window // 2:
            return
        positions = [waiting.popleft() for _ in range(min(len(waiting), self.window - self.queued[spec]))]
        self.queued[spec] += len(positions)
        handles = service.submit_many([(self.jobs[i], sink_factory(self.jobs[i])) for i in positions], Priority.BATCH)
        for position, handle in zip(positions, handles, strict=True):
            self.unfinished[id(handle)] = handle
            handle.add_done_callback(lambda result, handle=handle: done.put((handle, result)))
            if self.kept:
                self.kept[position] = handle

    def finished(self, handle: JobHandle) -> None:
        self.unfinished.pop(id(handle), None)
        self.queued[handle.job.spec] -= 1


def _get(done: queue.SimpleQueue, watch: Callable[[], None] = lambda: None) -> tuple[JobHandle, JobResult]:
    # A timed wait, so Ctrl-C reaches the main thread promptly, and ``watch`` may end the run.
    while True:
        try:
            return done.get(timeout=0.2)
        except queue.Empty:
            watch()


def _finished(current: Optional[JobResult], handles: Iterable[JobHandle]) -> list[JobResult]:
    """After Ctrl-C (or the run's own failure, ``current`` then ``None``): the jobs that ended well and are still to
    reach ``on_result``. The one ``on_result`` had when Ctrl-C came is given again (batch and book skip what they
    recorded). The others are found by their handles, not by the ``done`` queue: the signal's handler runs just after a
    wait returns, so a result the wait had just taken off the queue was lost with it (its output stayed on disk, missing
    from the batch's manifest and report, once in three interrupted runs; a Ray head's death lost one the same way)."""
    results = [current] if current is not None and current.ok else []
    for handle in handles:
        result = handle.result() if handle.done() else None
        if result is not None and result.ok and result is not current:
            results.append(result)
    return results


class EngineRun:
    """One run of jobs (``batch``, one-shot commands) on an engine started for it and shut down after."""

    def __init__(self, settings: EngineSettings, workers: int = 1, log_level: int = logging.WARNING,
                 sink_factory: Callable[[SynthesisJob], Sink] = lambda job: open_sink(job.output),
                 executor: Optional[Executor] = None) -> None:
        self.settings = settings
        self.workers = workers
        self.log_level = log_level
        self.sink_factory = sink_factory
        self.executor = executor
        self.on_worker_start: Callable[[WorkerHandle], None] = lambda worker: None

    def run(self, jobs: Iterable[SynthesisJob], on_result: Callable[[JobResult], None] = lambda result: None,
            keep: bool = True) -> list[JobResult]:
        """Run every job; return results in the order given (``keep=False``: none, each let go after ``on_result``).
        Ctrl-C raises :class:`Interrupted`."""
        # One model after another, as the rows of a batch come (memory stays that of one model),
        # unless the config allows more.
        service = EngineService(self.settings, self.workers, self.log_level, self.executor,
                                max_loaded_models=self.settings.max_loaded_models or 1)
        service.on_worker_start = self.on_worker_start
        try:
            return service.run(jobs, on_result, self.sink_factory, watch=service.executor.check, keep=keep)
        finally:
            service.shutdown()


def run_one(job: SynthesisJob, settings: EngineSettings, log_level: int) -> JobResult:
    """Run a single job through the same engine a batch uses; raise its error if it failed."""
    result = EngineRun(settings, workers=1, log_level=log_level).run([job])[0]
    if result.error is not None:
        raise result.error
    log.info("wrote %s: %.2f s of audio in %.2f s", job.describe(), result.audio_seconds, result.seconds)
    return result
