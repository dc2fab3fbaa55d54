"""From jobs to finished outputs: group by model, run each group on a pool of workers.

The pool is the seam for scaling out: :class:`Engine` only needs something that can
start a worker for a :class:`LoadSpec`, hand it a job, and report its messages.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Optional

from demod_voice.audio.chunks import AudioChunk
from demod_voice.audio.writer import Sink, open_sink
from demod_voice.config import EngineSettings
from demod_voice.engine.executors.local import WorkerProcess
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.worker import WorkerDied, death_error
from demod_voice.errors import DemodVoiceError, Interrupted, RuntimeFailure, from_wire

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """The outcome of one job."""

    job: SynthesisJob
    """The job."""
    error: Optional[DemodVoiceError] = None
    """Why it failed; ``None`` on success."""
    audio_seconds: float = 0.0
    """Duration of the audio written."""
    seconds: float = 0.0
    """Wall time spent on the job (its last attempt)."""
    attempts: int = 1
    """How many workers it took."""

    @property
    def ok(self) -> bool:
        """True when the output was written."""
        return self.error is None


@dataclass
class _Task:
    job: SynthesisJob
    index: int
    attempts: int = 0
    sink: Optional[Sink] = None
    started: float = 0.0


@dataclass
class _Slot:
    worker: Optional[WorkerProcess] = None
    task: Optional[_Task] = None
    """The job whose answer comes next."""
    queued: deque = field(default_factory=deque)
    """The rest of the jobs handed over with it (a batch), answered after it in this order."""
    ready: bool = False
    notes: list[str] = field(default_factory=list)


class Engine:
    """Runs jobs on isolated workers; one model load per worker, workers reused across jobs."""

    def __init__(
        self,
        settings: EngineSettings,
        workers: int = 1,
        log_level: int = logging.WARNING,
        sink_factory: Callable[[SynthesisJob], Sink] = lambda job: open_sink(job.output),
    ) -> None:
        self.settings = settings
        self.workers = max(1, workers)
        self.log_level = log_level
        self.sink_factory = sink_factory
        self._warned: set[str] = set()
        self.on_worker_start: Callable[[WorkerProcess], None] = lambda worker: None
        """Called with each new worker (progress displays; tests use it to reach the process)."""

    def run(self, jobs: Iterable[SynthesisJob], on_result: Callable[[JobResult], None] = lambda r: None) -> list[JobResult]:
        """Run every job; return results in the order given. Ctrl-C raises :class:`Interrupted`."""
        jobs = list(jobs)
        results: list[Optional[JobResult]] = [None] * len(jobs)
        groups: dict[LoadSpec, list[_Task]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.spec, []).append(_Task(job, index))
        for spec, tasks in groups.items():
            _GroupRun(self, spec, tasks, results, on_result).run()
        return [r for r in results if r is not None]

    def warn_once(self, message: str) -> None:
        """Log a warning the first time it is seen in this run."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)


class _GroupRun:
    """All jobs of one :class:`LoadSpec` on up to ``engine.workers`` workers."""

    def __init__(self, engine: Engine, spec: LoadSpec, tasks: list[_Task], results: list, on_result: Callable) -> None:
        self.engine = engine
        self.spec = spec
        self.pending = deque(tasks)
        self.results = results
        self.on_result = on_result
        self.slots = [_Slot() for _ in range(min(engine.workers, len(tasks)))]

    def run(self) -> None:
        try:
            while self.pending or any(slot.task for slot in self.slots):
                self._assign()
                busy = {slot.worker.conn: slot for slot in self.slots if slot.task and slot.worker}
                if not busy:
                    continue
                for conn in wait(list(busy)):
                    slot = busy[conn]
                    # Handling one message can end other workers (a failed load ends the group).
                    if slot.task and slot.worker and slot.worker.conn is conn:
                        self._receive(slot)
        except KeyboardInterrupt:
            self._abort_all()
            raise Interrupted("interrupted: finished outputs are intact, unfinished ones were removed") from None
        except BaseException:
            # on_result may stop the run (fail-fast): jobs in flight leave no partial output.
            self._abort_all()
            raise
        finally:
            for slot in self.slots:
                if slot.worker:
                    slot.worker.stop()

    def _assign(self) -> None:
        for slot in self.slots:
            if slot.task or not self.pending:
                continue
            if slot.worker is None:
                slot.worker = WorkerProcess(self.spec, self.engine.log_level, self._threads())
                slot.ready = False
                self.engine.on_worker_start(slot.worker)
            tasks = self._take()
            for task in tasks:
                task.attempts += 1
            slot.queued.extend(tasks[1:])
            self._begin(slot, tasks[0])
            try:
                slot.worker.send([t.job for t in tasks] if len(tasks) > 1 else tasks[0].job)
            except WorkerDied as died:
                self._worker_died(slot, str(died))

    def _take(self) -> list[_Task]:
        """The next pending job, with the later ones that may be made together with it: up to its
        limit, and no more than an even share among the idle workers so that each of them gets some."""
        first = self.pending.popleft()
        key = first.job.together
        if key is None or first.job.together_limit <= 1:
            return [first]
        same = [task for task in self.pending if task.job.together == key]
        idle = sum(1 for slot in self.slots if slot.task is None)  # the slot being given work is one of them
        share = -(-(len(same) + 1) // max(1, idle))
        taken = [first] + same[: min(first.job.together_limit, share) - 1]
        chosen = {id(task) for task in taken}  # by identity: jobs may hold arrays, which == cannot compare
        self.pending = deque(task for task in self.pending if id(task) not in chosen)
        return taken

    def _begin(self, slot: _Slot, task: _Task) -> None:
        task.sink = self.engine.sink_factory(task.job)
        task.started = time.perf_counter()
        slot.task = task

    def _threads(self) -> int:
        """Each worker's share of the cores when several run at once (0: the engine's own default)."""
        if len(self.slots) <= 1:
            return 0
        return max(1, (os.cpu_count() or 1) // len(self.slots))

    def _receive(self, slot: _Slot) -> None:
        try:
            message = slot.worker.recv()
        except WorkerDied as died:
            self._worker_died(slot, str(died))
            return
        kind = message[0]
        if kind == "ready":
            self._ready(slot, message[1])
        elif kind == "chunk":
            self._write(slot, AudioChunk(message[1], message[2]))
        elif kind == "done":
            self._done(slot)
        elif kind == "error":
            self._finish(slot, from_wire(message[1], message[2]))
        elif kind == "failed":
            self._load_failed(slot, from_wire(message[1], message[2]))

    def _write(self, slot: _Slot, chunk: AudioChunk) -> None:
        try:
            slot.task.sink.write(chunk)
        except (OSError, ValueError) as err:
            # The worker goes on sending this job's chunks; a fresh worker is simpler than draining them.
            slot.worker.kill()
            slot.worker = None
            self._requeue(slot)
            self._finish(slot, RuntimeFailure(f"could not write {slot.task.job.describe()}: {err}"))

    def _ready(self, slot: _Slot, info) -> None:
        slot.ready = True
        for warning in info.warnings:
            self.engine.warn_once(warning)
        log.info("worker %s: %s on %s (%s)", slot.worker.pid, self.spec.model, info.device, info.detail)

    def _done(self, slot: _Slot) -> None:
        task = slot.task
        try:
            audio_seconds = task.sink.commit()
        except DemodVoiceError as err:
            self._finish(slot, err)
            return
        except OSError as err:
            self._finish(slot, RuntimeFailure(f"could not write {task.job.describe()}: {err}"))
            return
        self._finish(slot, None, audio_seconds)

    def _finish(self, slot: _Slot, error: Optional[DemodVoiceError], audio_seconds: float = 0.0) -> None:
        task = slot.task
        if error is not None:
            task.sink.abort()
        slot.task = None
        result = JobResult(task.job, error, audio_seconds, time.perf_counter() - task.started, task.attempts)
        self.results[task.index] = result
        self.on_result(result)
        if slot.queued:
            self._begin(slot, slot.queued.popleft())
        if slot.worker is not None:
            slot.worker.jobs_served += 1
            if slot.worker.jobs_served >= self.engine.settings.max_jobs_per_worker and slot.task is None:
                log.debug("recycling worker %s after %d jobs", slot.worker.pid, slot.worker.jobs_served)
                slot.worker.stop()
                slot.worker = None

    def _worker_died(self, slot: _Slot, reason: str) -> None:
        task = slot.task
        slot.worker.kill()
        slot.worker = None
        self._requeue(slot)
        if task.sink.retryable and task.attempts <= self.engine.settings.retries:
            task.sink.abort()
            slot.task = None
            log.warning("%s while synthesising %s; retrying it on a fresh worker", reason, task.job.describe())
            self.pending.appendleft(task)
            return
        self._finish(slot, death_error(task.job, reason))

    def _requeue(self, slot: _Slot) -> None:
        """Jobs handed over with the current one go back to the front of the queue, in order: their
        worker is gone before it got to them, so this does not count as an attempt."""
        while slot.queued:
            task = slot.queued.pop()
            task.attempts -= 1
            self.pending.appendleft(task)

    def _load_failed(self, slot: _Slot, error: DemodVoiceError) -> None:
        """The model cannot load: every job of this group fails with the same reason, no retries."""
        slot.worker.stop()
        slot.worker = None
        self._requeue(slot)
        self._finish(slot, error)
        for other in self.slots:
            if other.task is not None:
                other.worker.kill()
                other.worker = None
                self._requeue(other)
                self._finish(other, error)
        while self.pending:
            task = self.pending.popleft()
            task.sink = self.engine.sink_factory(task.job)
            slot.task = task
            self._finish(slot, error)

    def _abort_all(self) -> None:
        for slot in self.slots:
            if slot.task is not None:
                slot.task.sink.abort()
            if slot.worker is not None:
                slot.worker.kill()
                slot.worker = None


def run_one(job: SynthesisJob, settings: EngineSettings, log_level: int) -> JobResult:
    """Run a single job through the same engine a batch uses; raise its error if it failed."""
    result = Engine(settings, workers=1, log_level=log_level).run([job])[0]
    if result.error is not None:
        raise result.error
    log.info("wrote %s: %.2f s of audio in %.2f s", job.describe(), result.audio_seconds, result.seconds)
    return result
