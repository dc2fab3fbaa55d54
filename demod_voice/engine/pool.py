"""One model's workers and the jobs waiting for them.

A pool belongs to one :class:`LoadSpec`. Its methods run only on the engine's thread, so it
needs no locks. The rules it keeps:

- a worker that dies before it said "ready" is a *load* failure, never a job's: the job goes
  back to the queue uncharged; after ``engine.load_attempts`` such deaths in a row, every job of
  the model fails once with "could not load MODEL" and no further load is tried;
- a worker that dies while making a job costs that job an attempt (retried while its sink allows
  and ``engine.retries`` last); jobs handed over with it go back uncharged, in smaller groups;
- a load error the backend reports fails the model's waiting jobs at once, unless another worker
  of the model has loaded (then it was this worker's trouble: it is retired, the others go on);
- a worker that dies while idle is simply replaced when next needed;
- a preloaded model is kept loaded: a worker of it that ends is replaced at once (after a growing wait when they keep
  dying soon after loading), and one that failed to load is tried again after a wait that doubles from
  ``RETRY_FIRST`` up to ``BACKOFF_MOST`` seconds, until it loads.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Protocol

from demod_voice.audio.chunks import AudioChunk
from demod_voice.config import EngineSettings
from demod_voice.engine import protocol
from demod_voice.engine.executors import Executor, WorkerDied, WorkerHandle
from demod_voice.engine.handles import JobHandle, JobResult, Priority
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import Cancelled, DemodVoiceError, InputError, ModelMissing, RuntimeFailure, from_wire

log = logging.getLogger(__name__)

STEADY_SECONDS = 60.0
"""A preloaded model's worker that dies sooner than this after it loaded counts toward a crash loop; one that lives longer
ends it."""
SUPERSEDED_IDLE = 5.0
"""Seconds a model's workers stay loaded, idle, after its files were replaced: an answer begun on them may still send
sentences (Wyoming speaks a streamed text sentence by sentence); a worker started after them would load the new files."""
BACKOFF_FIRST = 1.0
"""Seconds before a preloaded model's worker is started again after its second quick death in a row; each further one
doubles it."""
BACKOFF_MOST = 60.0
"""The longest wait between starts of a preloaded model's worker that keeps dying, and between tries to load a preloaded
model that failed to load."""
RETRY_FIRST = 5.0
"""Seconds before a preloaded model that failed to load is tried again; each further failure in a row doubles it."""


class PoolHost(Protocol):
    """What a pool needs from the engine that owns it (:class:`~demod_voice.engine.service.EngineService`):
    a protocol, so that the pool never imports the service that imports it."""

    settings: EngineSettings
    executor: Executor
    log_level: int

    @property
    def stopping(self) -> bool:
        """A run is being stopped as a whole (Ctrl-C, SIGTERM, its own error): a worker killed part way is asked for."""

    def make_room(self, pool: Pool, evict: bool = True) -> bool:
        """Whether ``pool`` may start a worker now (placement; may unload idle models if ``evict``)."""

    def note_worker_start(self, worker: WorkerHandle) -> None:
        """A worker started (counters, progress displays)."""

    def note_restart(self) -> None:
        """A worker was replaced after it died or grew past its memory cap."""

    def note_result(self, task: Task, error: Optional[DemodVoiceError]) -> None:
        """A job ended (``error`` ``None``: it succeeded)."""

    def warn_once(self, message: str) -> None:
        """Log a warning the first time it is seen."""

    def wake_in(self, seconds: float) -> None:
        """Have the engine's thread look again after ``seconds`` at the latest."""


@dataclass(eq=False)
class Task:
    """A job inside the engine."""

    job: SynthesisJob
    handle: JobHandle
    sink: Any
    priority: Priority
    attempts: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_chunk: Optional[float] = None
    cancelled: bool = False
    error: Optional[DemodVoiceError] = None
    """An error already decided (a write failure) while the worker finishes the job's answer."""
    group_limit: int = 0
    """After a hand-over died: the most jobs handed over with this one next time (0: the job's own limit)."""
    queued: float = field(default_factory=time.perf_counter)
    """When it entered the queue."""
    value: Optional[dict] = None
    """What the worker gave back besides audio (``("value", data)``), for the result."""


@dataclass(eq=False)
class Slot:
    """One worker place of a pool: its worker (if started) and the hand-over it is answering."""

    worker: Optional[WorkerHandle] = None
    ready: bool = False
    tasks: deque = field(default_factory=deque)
    """The hand-over being answered, current job first."""
    index: int = 0
    """Position of the current job within its hand-over (the worker counts the same way)."""
    handover: list = field(default_factory=list)
    """Every job of the hand-over by position, answered or not: a worker that makes them together
    (:mod:`.protocol`) tags each message with the position it is about."""
    cancel_deadline: Optional[float] = None
    jobs_served: int = 0
    retired: bool = False
    ready_at: float = 0.0
    """When its worker said it had loaded (``time.monotonic``)."""
    loaded_rss: int = 0
    """Its worker's resident memory when it said it had loaded (bytes): the model's own, before any text."""


class Pool:
    """The workers of one model and its queue (interactive jobs before batch jobs)."""

    def __init__(self, host: PoolHost, spec: LoadSpec, workers: int) -> None:
        self.host = host
        self.settings = host.settings
        self.spec = spec
        self.queues: dict[Priority, deque] = {p: deque() for p in Priority}
        self.slots = [Slot() for _ in range(max(1, workers))]
        shared = max(1, (os.cpu_count() or 1) // len(self.slots)) if len(self.slots) > 1 else 0
        self.threads = self.settings.threads_per_worker or shared
        """Threads each worker's engine runs (0: all the cores); ``engine.threads_per_worker`` or the cores shared out."""
        self.load_deaths = 0
        self.ever_ready = False
        self.load_failed = False
        """The last try to load the model failed, and no worker has loaded it since."""
        self.pinned = False
        self.superseded = False
        """Its model's files were replaced at the same path (a newer ``LoadSpec.version`` has a pool): it finishes what
        it has and is unloaded once idle."""
        self.last_used = time.monotonic()
        self.rss_seen = 0
        self.quick_deaths = 0
        """Workers of a preloaded model that died in a row, each within ``STEADY_SECONDS`` of loading."""
        self.quick_death_at = 0.0
        """When the last of those died: only a worker loaded after it ends the crash loop by staying up."""
        self.backoff = 0.0
        """The wait before such a worker is started again, as last logged (0: at once)."""
        self.restart_at: Optional[float] = None
        """When the preloaded model's workers are started again (``time.monotonic``; ``None``: none is waiting)."""
        self.load_failures = 0
        """Tries in a row to load the preloaded model that failed (each tried again after a growing wait)."""
        self.retry_said = ""
        """The wait and the error last logged for it (logged again only when either changes)."""

    # --- state ----------------------------------------------------------------------------------

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def running(self) -> int:
        return sum(len(slot.tasks) for slot in self.slots)

    def busy(self) -> bool:
        return bool(self.waiting() or self.running())

    def live_workers(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.worker is not None]

    def rss(self) -> int:
        return sum(slot.worker.rss_bytes() or 0 for slot in self.live_workers())

    def conns(self) -> dict[Any, Slot]:
        """The connections to read now: a worker whose job's reader is far behind (``JobHandle.paused``) is left
        unread, so it blocks on its pipe instead of its audio piling up here (backpressure)."""
        return {slot.worker.conn: slot for slot in self.live_workers() if not (slot.tasks and slot.tasks[0].handle.paused())}

    # --- work in -----------------------------------------------------------------------------

    def add(self, task: Task, front: bool = False) -> None:
        if not front:
            task.queued = time.perf_counter()
        queue = self.queues[task.priority]
        queue.appendleft(task) if front else queue.append(task)
        self.last_used = time.monotonic()

    def assign(self) -> None:
        """Give waiting jobs to idle slots, starting workers as the memory budget allows."""
        for slot in self.slots:
            if slot.tasks or slot.retired or not self.waiting() or self._gathering():
                continue
            if slot.worker is None and not self.start_worker(slot):
                return
            tasks = self._take(slot)
            for task in tasks:
                task.attempts += 1
            slot.tasks.extend(tasks)
            slot.handover = list(tasks)
            slot.index = 0
            self._begin(slot)
            # jobs left in the queue that no other free slot takes at once (each takes at least one)
            behind = max(0, self.waiting() - sum(1 for other in self.slots if other is not slot and not other.tasks and not other.retired))
            try:
                slot.worker.send([replace(t.job, waiting=behind) if behind else t.job for t in tasks])
            except WorkerDied as died:
                self._send_failed(slot, died)
        self._join()

    def _join(self) -> None:
        """Jobs that wait while every worker is busy join a running hand-over that takes them (``SynthesisJob.joins``: an
        XTTS stream takes them in at its next round, a sentence of each job), up to its limit. A request that came
        while a long one streamed waited for all of it: a 40-word answer on the one XTTS worker of a server held every
        other request for its whole length; now they wait for the sentence being made."""
        if not self.waiting() or any(not slot.tasks and not slot.retired for slot in self.slots):
            return
        for slot in self.slots:
            if not self.waiting():
                return
            if slot.retired or slot.worker is None or not slot.handover or not getattr(slot.worker, "joins", False):
                continue
            head = slot.handover[0]
            if not head.job.joins or head.group_limit:  # (a group retried after a crash stays as small as it was cut)
                continue
            priority, queue = next((p, q) for p, q in self.queues.items() if q)
            room = head.job.together_limit - len(slot.tasks)
            taken = [task for task in queue if task.job.together == head.job.together and task.job.joins
                     and not task.cancelled and not task.group_limit][:max(0, room)]
            if not taken:
                continue
            self._dequeue(priority, taken)
            offset = len(slot.handover)
            for task in taken:
                task.attempts += 1
                task.started = time.perf_counter()
            slot.tasks.extend(taken)
            slot.handover.extend(taken)
            log.debug("%d job(s) joined the hand-over of worker %s at place %d", len(taken), slot.worker.pid, offset)
            try:
                slot.worker.send(protocol.join(offset, [task.job for task in taken]))
            except WorkerDied as died:
                self._send_failed(slot, died)

    def start_worker(self, slot: Slot, evict: bool = True) -> bool:
        if not self.host.make_room(self, evict):
            return False
        try:
            slot.worker = self.host.executor.start_worker(self.spec, self.host.log_level, self.threads)
        except DemodVoiceError as err:  # the executor cannot start one (a cluster gone): the model's jobs fail
            self.fail_waiting(err)
            return False
        except OSError as err:
            self.fail_waiting(RuntimeFailure(f"could not start a worker for {self.spec.model}: {err}"))
            return False
        slot.ready = False
        slot.jobs_served = 0
        self.host.note_worker_start(slot.worker)
        return True

    def _gathering(self) -> bool:
        """True while the next job may be made together with others and waits a moment
        (``engine.together_wait_ms``) for requests arriving just after it, as they do under load."""
        wait = self.settings.together_wait_ms / 1000
        queue = next(q for q in self.queues.values() if q)
        first = queue[0]
        if not wait or first.job.together is None or (first.group_limit or first.job.together_limit) <= 1:
            return False
        left = first.queued + wait - time.perf_counter()
        if left <= 0 or sum(1 for t in queue if t.job.together == first.job.together) >= first.job.together_limit:
            return False
        self.host.wake_in(left)
        return True

    def _take(self, slot: Slot) -> list[Task]:
        """The next job, with later ones that may be made together with it: up to its limit, and
        no more than an even share among idle slots so that each of them gets some.

        Batch work on several workers also takes no more than a ``1 / (2 x workers)`` share of what waits, so its
        hand-overs shrink as the queue empties and the workers run out of work together (guided scheduling). With
        whole hand-overs to the end, one worker ran its last one alone: 120 bench rows on 2 workers, one idled the
        last 0.84-1.26 s of a 17-22 s run, and 0.08-0.35 s with these shares (CPU time sampled every 20 ms, ``docs/performance.md``)."""
        queue = next(q for q in self.queues.values() if q)
        first = queue.popleft()
        key = first.job.together
        limit = first.group_limit or first.job.together_limit
        if key is None or limit <= 1:
            return [first]
        same = [task for task in queue if task.job.together == key and not task.cancelled]
        idle = sum(1 for s in self.slots if not s.tasks and not s.retired)
        share = -(-(len(same) + 1) // max(1, idle))
        workers = sum(1 for s in self.slots if not s.retired)
        if first.priority == Priority.BATCH and workers > 1:
            share = min(share, -(-(len(same) + 1) // (2 * workers)))
        taken = [first] + same[: min(limit, share) - 1]
        self._dequeue(first.priority, taken)
        return taken

    def _dequeue(self, priority: Priority, taken: list[Task]) -> None:
        """Take ``taken`` out of the ``priority`` queue."""
        chosen = {id(task) for task in taken}  # by identity: jobs may hold arrays, which == cannot compare
        self.queues[priority] = deque(task for task in self.queues[priority] if id(task) not in chosen)

    def _begin(self, slot: Slot) -> None:
        task = slot.tasks[0]
        task.started = time.perf_counter()
        if task.cancelled:
            self._send_cancel(slot)

    # --- messages ----------------------------------------------------------------------------

    def receive(self, slot: Slot) -> None:
        """Handle the next message of ``slot``'s worker."""
        try:
            message = slot.worker.recv()
        except WorkerDied as died:
            self._died(slot, str(died))
            return
        kind = message[0]
        if kind == "ready":
            self._ready(slot, message[1])
            return
        if kind == "failed":
            self._load_failed(slot, from_wire(message[1], message[2]))
            return
        task = self._task(slot, protocol.job_index(message))
        if task is None:
            log.debug("worker %s: %s with no job in hand; ignored", slot.worker.pid, kind)
        elif kind == "chunk":
            self._chunk(slot, AudioChunk(message[1], message[2]), task)
        elif kind == "value":
            task.value = message[1]
        elif kind == "done":
            self._done(slot, task)
        elif kind == "error":
            self._answered(slot, from_wire(message[1], message[2]), task=task)

    @staticmethod
    def _task(slot: Slot, index: Optional[int]) -> Optional[Task]:
        """The job a message is about: at ``index`` of the hand-over (``None``: the current one), if not yet answered."""
        if index is None:
            return slot.tasks[0] if slot.tasks else None
        task = slot.handover[index] if 0 <= index < len(slot.handover) else None
        return task if task is not None and any(t is task for t in slot.tasks) else None

    def _ready(self, slot: Slot, info: Any) -> None:
        slot.ready = True
        slot.ready_at = time.monotonic()
        slot.loaded_rss = slot.worker.rss_bytes() or 0
        if self._loaded_over_cap(slot):
            cap = self.settings.worker_memory_cap_mb
            self.host.warn_once(f"a worker of {self.spec.model} uses {slot.loaded_rss >> 20} MB with the model loaded, before "
                                f"any text: more than engine.worker_memory_cap_mb ({cap} MB), so every job of it is ended; "
                                f"raise the cap well above {slot.loaded_rss >> 20} MB (0: no cap)")
        if self.load_failures:  # said before ever_ready: whoever sees the model ready (is_ready) finds the line in the log
            log.warning("%s, a preloaded model, has loaded after %d failed %s", self.spec.model, self.load_failures,
                        "try" if self.load_failures == 1 else "tries")
            self.load_failures = 0
            self.retry_said = ""
        self.ever_ready = True
        self.load_failed = False
        self.load_deaths = 0
        if slot.tasks and (slot.tasks[0].cancelled or slot.tasks[0].error is not None):
            slot.cancel_deadline = time.monotonic() + self.settings.cancel_kill_after
        for warning in info.warnings:
            self.host.warn_once(warning)
        log.info("worker %s: %s on %s (%s)", slot.worker.pid, self.spec.model, info.device, info.detail)

    def _chunk(self, slot: Slot, chunk: AudioChunk, task: Task) -> None:
        if task.cancelled or task.error is not None:
            return
        if task.first_chunk is None:
            task.first_chunk = time.perf_counter()
        try:
            task.sink.write(chunk)
        except DemodVoiceError as err:
            task.error = err
        except (OSError, ValueError) as err:
            task.error = RuntimeFailure(f"could not write {task.job.describe()}: {err}")
        else:
            return
        self._send_cancel(slot, task)  # the worker stops making audio nobody can keep

    def _done(self, slot: Slot, task: Task) -> None:
        if task.cancelled or task.error is not None or (task.value is not None and task.first_chunk is None):
            self._answered(slot, None, task=task)  # (a job whose result is a value and no audio has nothing to commit)
            return
        try:
            audio_seconds = task.sink.commit()
        except DemodVoiceError as err:
            self._answered(slot, err, task=task)
            return
        except OSError as err:
            self._answered(slot, RuntimeFailure(f"could not write {task.job.describe()}: {err}"), task=task)
            return
        self._answered(slot, None, audio_seconds, task)

    def _answered(self, slot: Slot, error: Optional[DemodVoiceError], audio_seconds: float = 0.0,
                  task: Optional[Task] = None) -> None:
        """The worker finished a job (the current one unless ``task`` says which); move on to the next of its hand-over."""
        head = slot.tasks[0]
        task = task or head
        slot.tasks.remove(task)
        if task is head:
            slot.index = next((i for i, t in enumerate(slot.handover) if t is slot.tasks[0]), 0) if slot.tasks else len(slot.handover)
            slot.cancel_deadline = None
        slot.jobs_served += 1
        self.finish(task, error, audio_seconds, slot.worker.where)
        if slot.tasks:
            if task is head:
                self._begin(slot)
        elif slot.jobs_served >= self.settings.max_jobs_per_worker:
            log.debug("recycling worker %s after %d jobs", slot.worker.pid, slot.jobs_served)
            self._drop_worker(slot, stop=True)
            self._keep_loaded(slot)

    def finish(self, task: Task, error: Optional[DemodVoiceError], audio_seconds: float = 0.0, where: str = "") -> None:
        """End a task: commit or abort its sink's state, report the result to its handle."""
        if task.cancelled and error is None and task.error is None:
            error = Cancelled(f"{task.job.describe()}: cancelled")
        error = task.error or error
        if error is not None:
            task.sink.abort()
            audio_seconds = 0.0
        now = time.perf_counter()
        first = None if task.first_chunk is None else task.first_chunk - task.handle.submitted
        self.last_used = time.monotonic()
        self.host.note_result(task, error)
        task.handle._finish(JobResult(task.job, error, audio_seconds, now - task.started, max(1, task.attempts), first, where,
                                      None if error is not None else task.value))

    # --- failures ----------------------------------------------------------------------------

    def _send_failed(self, slot: Slot, died: WorkerDied) -> None:
        """A hand-over found the worker gone: what it said before it went is read first. A worker that could not load
        its model says so and exits; when the jobs came after its exit, the broken pipe was taken for a death while
        loading, the model was loaded again, and a book whose voice file was cut short printed a warning ('the worker
        exited with code 0 while loading') before its one error, in 1 of 1980 tests of a CI run."""
        worker = slot.worker
        while slot.worker is worker and worker.conn.poll():
            self.receive(slot)  # (the worker's end closed: ends in its last message, or in EOF, which calls _died)
        if slot.worker is worker:
            self._died(slot, str(died))

    def _died(self, slot: Slot, reason: str) -> None:
        if not slot.ready:
            self._died_loading(slot, reason)
            return
        self.host.note_restart()
        handover = len(slot.tasks)
        task = slot.tasks.popleft() if slot.tasks else None
        looping = task is None and self._count_death(slot, reason)  # (a job that kills its worker is that job's doing)
        self._drop_worker(slot, stop=False)
        self._requeue(slot, max(1, handover // 2) if handover > 1 else 0)
        self._keep_loaded(slot)
        if task is None:
            if not looping:  # (in a crash loop the back-off's line says it, once per change, not once per death)
                log.warning("%s while idle (a worker of %s); %s", reason, self.spec.model,
                            "another one is loading it" if slot.worker is not None else "another one starts with the next job")
            return
        if task.cancelled or task.error is not None:
            self.finish(task, None)
        elif task.sink.retryable and task.attempts <= self.settings.retries:
            task.sink.abort()
            task.first_chunk = None
            if handover > 1:
                task.group_limit = max(1, handover // 2)
                log.warning("%s while making %d jobs together; retrying them in groups of %d", reason, handover, task.group_limit)
            else:
                log.warning("%s while synthesising %s; retrying it on a fresh worker", reason, task.job.describe())
            self.add(task, front=True)
        else:
            self.finish(task, RuntimeFailure(f"{reason} while synthesising {task.job.describe()}; that job failed "
                                             "(other jobs are unaffected)"))

    def _keep_loaded(self, slot: Slot) -> None:
        """A preloaded model keeps its workers: one recycled or dead is replaced now, not at the next job (``/readyz``
        reads them, and a load balancer sends no job to a server that says it is not ready). In a crash loop the
        replacement waits (:meth:`_count_death`), and :meth:`tick` starts it."""
        if not self.pinned or slot.worker is not None or slot.retired or self.host.stopping:
            return
        if self.backoff:
            if self.restart_at is None:
                self.restart_at = time.monotonic() + self.backoff
                self.host.wake_in(self.backoff)
            return
        self.start_worker(slot)

    def _count_death(self, slot: Slot, reason: str) -> bool:
        """Count the death of a preloaded model's loaded, idle worker; whether the model is in a crash loop (its workers
        die soon after loading, again and again). Each was started again at once: a model that loads and then dies burnt a
        core and wrote a warning a second, for ever. From the second quick death in a row the next start waits, twice as
        long each time up to ``BACKOFF_MOST``; the wait is logged when it changes."""
        if not self.pinned:
            return False
        quick = time.monotonic() - slot.ready_at < STEADY_SECONDS
        self.quick_deaths = self.quick_deaths + 1 if quick else 1
        self.quick_death_at = time.monotonic()
        if self.quick_deaths < 2:
            self.backoff = 0.0
            return False
        wait = min(BACKOFF_MOST, BACKOFF_FIRST * 2 ** (self.quick_deaths - 2))
        if wait != self.backoff:
            self.backoff = wait
            log.warning("the workers of %s, a preloaded model, keep dying soon after loading (%d in a row; the last: %s); "
                        "starting the next in %g s%s", self.spec.model, self.quick_deaths, reason, wait,
                        "" if wait < BACKOFF_MOST else f", then every {wait:g} s until one stays up {STEADY_SECONDS:g} s")
        return True

    def reload(self) -> None:
        """A preloaded model unloaded to make room for another (``engine.max_loaded_models``, ``engine.memory_budget_mb``)
        is loaded again as soon as that needs no other model unloaded: it stayed unloaded, and ``/readyz`` said 'loading',
        until a request for it came. Unloading nothing, two preloaded models that do not fit together do not take turns.
        One that failed to load is tried here too once its wait is over (``load_failures``): a retry refused room by
        another model's running job was dropped, and the model was never tried again."""
        if not self.pinned or self.live_workers() or self.busy() or self.restart_at is not None or self.host.stopping:
            return
        if self.load_failed and not self.load_failures:
            return
        for slot in self.slots:
            if slot.worker is None and not slot.retired and not self.start_worker(slot, evict=False):
                return

    def crash_looping(self) -> bool:
        """Whether the model's workers keep dying soon after loading, and none has stayed up since."""
        return self.quick_deaths >= 2

    def over_cap(self) -> bool:
        """Whether every loaded worker of the model used more than ``engine.worker_memory_cap_mb`` when it had loaded,
        before any text: each of its jobs is ended, whatever the text (at least one worker loaded)."""
        loaded = [slot for slot in self.slots if slot.worker is not None and slot.ready]
        return bool(loaded) and all(self._loaded_over_cap(slot) for slot in loaded)

    def _loaded_over_cap(self, slot: Slot) -> bool:
        """Whether ``slot``'s worker used more than ``engine.worker_memory_cap_mb`` once loaded, before any text."""
        cap = self.settings.worker_memory_cap_mb
        return bool(cap) and slot.loaded_rss > cap * 2**20

    def _steady(self, now: float) -> None:
        """End a crash loop once a worker has stayed up ``STEADY_SECONDS``; start the workers whose wait is over."""
        if self.restart_at is not None:
            if self.host.stopping or now >= self.restart_at:
                self.restart_at = None
                if not self.host.stopping:
                    for slot in self.slots:
                        if slot.worker is None and not slot.retired and not self.start_worker(slot):
                            break
            else:
                self.host.wake_in(self.restart_at - now)
        # a worker that was up before the deaths says nothing of the model's new ones: with two workers, one healthy since
        # the start ended the loop of the other at every tick, which was then started again at once, for ever
        if self.quick_deaths and any(s.ready and s.worker is not None and s.ready_at > self.quick_death_at
                                     and now - s.ready_at >= STEADY_SECONDS for s in self.slots):
            if self.backoff:
                log.warning("a worker of %s has stayed up %g s: its crash loop is over", self.spec.model, STEADY_SECONDS)
            self.quick_deaths = 0
            self.backoff = 0.0

    def _died_loading(self, slot: Slot, reason: str) -> None:
        self._drop_worker(slot, stop=False)
        self._requeue(slot, 0)
        self.load_deaths += 1
        if self.load_deaths < self.settings.load_attempts:
            # (while a preloaded model is tried again after waits, its own line says each change, not each death)
            (log.info if self.load_failures else log.warning)(
                "%s while loading %s; trying again (%d of %d)", reason, self.spec.model, self.load_deaths + 1,
                self.settings.load_attempts)
            self._keep_loaded(slot)  # (a job waiting starts it anyway; a preloaded model may have none)
            return
        error = RuntimeFailure(f"could not load {self.spec.model}: the worker died while loading it ({reason}); "
                               "check the model file and free memory (engine.load_attempts)")
        self._give_up(slot, error)

    def _load_failed(self, slot: Slot, error: DemodVoiceError) -> None:
        self._drop_worker(slot, stop=True)
        self._requeue(slot, 0)
        self._give_up(slot, unloadable(self.spec, error))

    def _give_up(self, slot: Slot, error: DemodVoiceError) -> None:
        """This worker cannot load the model: if another one has, retire this place and let the
        others go on; otherwise fail every waiting job of the model once."""
        if any(s.ready and s.worker is not None for s in self.slots):
            log.warning("a worker of %s could not load it (%s); going on with the others", self.spec.model, error)
            slot.retired = True
            return
        self.load_failed = True
        self.fail_waiting(error)
        self.load_deaths = 0
        if self.pinned and not self.live_workers():  # (another worker still loading it decides when it ends)
            self._retry_later(error)

    def _retry_later(self, error: DemodVoiceError) -> None:
        """A preloaded model that failed to load is tried again after a wait: it stayed unloaded, and ``/readyz`` said
        'failed', until a request came, though the cause had often passed (its file being copied or restored at start,
        memory short for a moment). No job of it may be waiting to carry the error: the server's log is where it is read,
        once per change of the wait or of the error."""
        self.load_failures += 1
        wait = min(BACKOFF_MOST, RETRY_FIRST * 2 ** (self.load_failures - 1))
        self.restart_at = time.monotonic() + wait
        self.host.wake_in(wait)
        said = f"{wait:g} {error}"
        if said == self.retry_said:
            return
        self.retry_said = said
        log.warning("could not load %s, a preloaded model: %s; /readyz says 'failed' until it loads: fix the cause (the "
                    "server need not restart), it is tried again in %g s%s", self.spec.model, error, wait,
                    f", then every {wait:g} s" if wait == BACKOFF_MOST else f", then after waits doubling up to {BACKOFF_MOST:g} s")

    def _requeue(self, slot: Slot, group_limit: int) -> None:
        """Jobs of the slot's hand-over go back to the front of the queue in order, uncharged:
        their worker is gone before it got to them."""
        while slot.tasks:
            task = slot.tasks.pop()
            task.attempts -= 1
            if task.cancelled:
                self.finish(task, None)
                continue
            if task.first_chunk is not None:  # made together with the one that died: some of its audio is out
                if not task.sink.retryable:
                    self.finish(task, RuntimeFailure(f"its worker died while synthesising {task.job.describe()}; that job "
                                                     "failed (other jobs are unaffected)"))
                    continue
                task.sink.abort()
                task.first_chunk = None
            if group_limit:
                task.group_limit = group_limit
            self.add(task, front=True)
        slot.index = 0
        slot.handover = []

    def _drop_worker(self, slot: Slot, stop: bool) -> None:
        if slot.worker is not None:
            slot.worker.stop() if stop else slot.worker.kill()
        slot.worker = None
        slot.ready = False
        slot.cancel_deadline = None

    # --- cancelling, timers, shutting down ---------------------------------------------------

    def cancel(self, task: Task) -> None:
        """Cancel a task wherever it is."""
        if task.cancelled:
            return
        task.cancelled = True
        for queue in self.queues.values():
            if any(t is task for t in queue):
                queue.remove(task)
                self.finish(task, None)
                return
        for slot in self.slots:
            if any(t is task for t in slot.tasks):
                self._send_cancel(slot, task)

    def _send_cancel(self, slot: Slot, task: Optional[Task] = None) -> None:
        # The worker reads the cancel at its next chunk; a worker still loading its model gets its time
        # from when it is ready, so that a cancel never costs a model that was about to be loaded. A job
        # behind the current one is told now (a worker making them together drops it at once; one making
        # them in turn stops it at its first chunk), with no deadline until it is the current one.
        current = task is None or task is slot.tasks[0]
        index = slot.index if current else next(i for i, t in enumerate(slot.handover) if t is task)
        if slot.ready and current:
            slot.cancel_deadline = time.monotonic() + self.settings.cancel_kill_after
        try:
            slot.worker.send(("cancel", index))
        except WorkerDied as died:
            self._send_failed(slot, died)

    def tick(self, now: float) -> None:
        """Timers: cancelled jobs whose worker does not stop, workers over the memory cap, idle pools."""
        cap = self.settings.worker_memory_cap_mb * 2**20
        for slot in self.slots:
            if slot.worker is None:
                continue
            if slot.cancel_deadline is not None and now > slot.cancel_deadline and slot.tasks:
                # stopping the whole run (Ctrl-C): asked for, and no worker is started again; a warning told people
                # their own Ctrl-C of a conversion was something to worry about
                (log.info if self.host.stopping else log.warning)(
                    "worker %s did not stop a cancelled job in time; killing it", slot.worker.pid)
                self._died(slot, "cancelled")
                continue
            rss = slot.worker.rss_bytes() or 0
            self.rss_seen = max(self.rss_seen, rss)
            if cap and rss > cap and slot.tasks:
                task = slot.tasks[0]
                task.error = RuntimeFailure(f"{task.job.describe()}: {self._over_cap(slot)}")
                self.host.note_restart()
                self._drop_worker(slot, stop=False)
                self.finish(slot.tasks.popleft(), None)
                self._requeue(slot, 0)
                self._keep_loaded(slot)
        if self.pinned:
            self._steady(now)
        if self.superseded and not self.busy() and self.live_workers() and now - self.last_used > SUPERSEDED_IDLE:
            log.info("unloading %s as it was before its files were replaced", self.spec.model)
            self.stop()
        idle = self.settings.idle_timeout
        if idle and not self.pinned and not self.busy() and self.live_workers() and now - self.last_used > idle:
            log.info("unloading %s after %.0f s idle", self.spec.model, idle)
            self.stop()

    def _over_cap(self, slot: Slot) -> str:
        """Why ``slot``'s worker passed ``engine.worker_memory_cap_mb``, and what to do. "Use a shorter text" was said to
        every request when the model alone, loaded, used more than the cap: no text could pass."""
        cap = self.settings.worker_memory_cap_mb
        if not slot.ready or self._loaded_over_cap(slot):
            return (f"the voice itself needs more than {cap} MB (engine.worker_memory_cap_mb) "
                    f"{'to load' if not slot.ready else 'loaded, before any text'}; the cap must be raised")
        return f"the model needed more than {cap} MB (engine.worker_memory_cap_mb); use a shorter text or raise the cap"

    def fail_waiting(self, error: Optional[DemodVoiceError]) -> None:
        """End every job still waiting for a worker with ``error`` (``None``: as cancelled)."""
        for queue in self.queues.values():
            while queue:
                task = queue.popleft()
                task.cancelled = task.cancelled or error is None
                self.finish(task, error)

    def stop(self, kill: bool = False) -> None:
        """Stop every worker; jobs they were making end as cancelled."""
        for slot in self.slots:
            while slot.tasks:
                task = slot.tasks.popleft()
                task.cancelled = True
                self.finish(task, None)
            self._drop_worker(slot, stop=not kill)


def unloadable(spec: LoadSpec, error: DemodVoiceError) -> DemodVoiceError:
    """A worker's refusal to load ``spec`` as a server's client may read it. An :class:`InputError` (a model file
    damaged or not a model) names the file; as a :class:`ModelMissing` the command line still reads that, and a client
    of the server reads the voice's name (a truncated Piper voice answered every Wyoming request with the server's path)."""
    if not isinstance(error, InputError) or isinstance(error, ModelMissing):
        return error
    name = Path(spec.model).name.removesuffix(".onnx")
    return ModelMissing(str(error), f"the voice '{name}' cannot be loaded on this server (its model file is damaged): "
                        "install it again", "damaged_voice")
