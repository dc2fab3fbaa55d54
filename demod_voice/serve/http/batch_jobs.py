"""The server's batch jobs on disk and while they run: owned by a key, bounded, deletable, expiring.

A job is a folder ``<data_dir>/batch/<id>/`` holding ``job.json`` (its state and its owner),
``input.csv`` (the checked rows), ``refs/`` (decoded references), ``out/`` (the audio) and
``report.jsonl``. It runs in a thread as a client of the server's engine (batch priority), within
a budget: ``serve.limits.max_batch_output_mb`` of audio (counted as 16-bit samples while they are
written, so a row is stopped mid-way, not after a 375 MB file exists) and
``serve.limits.max_batch_seconds``; passing either, or a ``DELETE``, ends it. A key may have
``serve.limits.max_batch_jobs_per_key`` jobs queued or running; finished jobs are deleted
``serve.batch_keep_hours`` after they end (checked at start and whenever a job is made).
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import DemodVoiceError, InputError
from demod_voice.serve.errors import ApiError

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{24}")
"""A job id (checked with ``fullmatch``)."""
ACTIVE = ("queued", "running", "interrupted")
STAMP = "%Y-%m-%dT%H:%M:%SZ"
_THREADS: dict[str, threading.Thread] = {}
_BUDGETS: dict[str, Budget] = {}


def jobs_dir(ctx: Any) -> Path:
    """Where batch jobs live."""
    return ctx.data_dir / "batch"


def job_dir(ctx: Any, job_id: str, owner: str) -> Path:
    """The folder of job ``job_id`` if ``owner`` made it: 400 for a malformed id, 404 for a job that does not exist
    or belongs to another key (the same answer: ids of other keys' jobs are not revealed)."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ApiError(400, f"'{''.join(c for c in str(job_id) if c.isprintable())[:40]}' is not a batch job id", code="bad_job_id")
    folder = jobs_dir(ctx) / job_id
    try:
        state = read_state(folder)
    except (OSError, ValueError):
        state = None
    if state is None or state.get("owner", "") != owner:
        raise ApiError(404, f"there is no batch job '{job_id}'", code="unknown_job")
    return folder


def read_state(folder: Path) -> dict:
    """``job.json``."""
    return json.loads((folder / "job.json").read_text(encoding="utf-8"))


def write_state(folder: Path, **changes: Any) -> dict:
    """Merge ``changes`` into ``job.json`` (atomically)."""
    from demod_voice.paths import write_text_atomic

    path = folder / "job.json"
    state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    state.update(changes)
    write_text_atomic(path, json.dumps(state, indent=1))
    return state


def now() -> str:
    """UTC now, as job states write it."""
    return time.strftime(STAMP, time.gmtime())


def progress(folder: Path) -> dict:
    """The job's state for its owner, with rows finished so far (from the manifest while it runs)."""
    state = read_state(folder)
    if state.get("state") in ACTIVE:
        manifest = folder / "out" / ".demod-voice-manifest.jsonl"
        try:
            state["done"] = sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())
        except OSError:
            state["done"] = 0
    return {k: state.get(k) for k in ("id", "state", "total", "done", "failed", "skipped", "error", "created", "finished")}


def check_quota(ctx: Any, owner: str) -> None:
    """429 when ``owner`` already has as many unfinished jobs as a key may."""
    limit = ctx.settings.limits.max_batch_jobs_per_key
    active = 0
    for state_file in jobs_dir(ctx).glob("*/job.json"):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        active += state.get("owner", "") == owner and state.get("state") in ACTIVE
    if active >= limit:
        raise ApiError(429, f"this key has {active} batch jobs queued or running; at most {limit} at once "
                            "(serve.limits.max_batch_jobs_per_key): wait for one to finish, or delete one", "rate_limit_error",
                       "too_many_jobs", {"Retry-After": "10"})


def expire_jobs(ctx: Any, at: Optional[float] = None) -> list[str]:
    """Delete finished jobs older than ``serve.batch_keep_hours`` (0: never); return their ids."""
    hours = ctx.settings.batch_keep_hours
    if not hours:
        return []
    at = time.time() if at is None else at
    gone = []
    for state_file in sorted(jobs_dir(ctx).glob("*/job.json")):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            finished = calendar.timegm(time.strptime(state["finished"], STAMP))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if state.get("state") not in ACTIVE and at - finished > hours * 3600:
            shutil.rmtree(state_file.parent, ignore_errors=True)
            gone.append(state_file.parent.name)
    if gone:
        log.info("deleted %d finished batch job(s) older than %g h (serve.batch_keep_hours)", len(gone), hours)
    return gone


def delete_job(ctx: Any, folder: Path, wait: float = 15.0) -> None:
    """Stop the job if it runs (its rows are cancelled at their next chunk) and delete its folder."""
    job_id = folder.name
    budget = _BUDGETS.get(job_id)
    if budget is not None:
        budget.cancel()
    thread = _THREADS.get(job_id)
    if thread is not None and thread.is_alive():
        thread.join(wait)
    shutil.rmtree(folder, ignore_errors=True)


# --- running ------------------------------------------------------------------------------------


class BudgetExceeded(InputError):
    """A batch job passed its output or time budget, or was deleted: its remaining rows are not made."""


class Budget:
    """What one job may still write and for how long; shared by its rows' sinks (the engine's thread) and its own thread."""

    def __init__(self, max_bytes: int, max_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.written = 0
        self._lock = threading.Lock()
        self._stop: Optional[BudgetExceeded] = None

    def cancel(self) -> None:
        """The job was deleted."""
        self._stop = BudgetExceeded("the job was deleted")

    def spend(self, samples: int) -> None:
        """Count ``samples`` (16-bit); raise :class:`BudgetExceeded` past the budget, the deadline, or a cancel."""
        with self._lock:
            self.written += 2 * samples
            if self._stop is None and self.written > self.max_bytes:
                self._stop = BudgetExceeded(f"the job's audio passed {self.max_bytes / 1e6:g} MB (serve.limits.max_batch_output_mb); "
                                            "its remaining rows were not made: split the batch")
        self.check()

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if the job must stop."""
        if self._stop is None and time.monotonic() > self.deadline:
            self._stop = BudgetExceeded(f"the job ran past {self.max_seconds:g} s (serve.limits.max_batch_seconds); its "
                                        "remaining rows were cancelled: split the batch")
        if self._stop is not None:
            raise self._stop


class _BudgetSink:
    """A row's sink that counts what it writes against the job's budget."""

    def __init__(self, sink: Any, budget: Budget) -> None:
        self._sink = sink
        self._budget = budget

    @property
    def retryable(self) -> bool:
        return self._sink.retryable

    def write(self, chunk: Any) -> None:
        self._budget.spend(len(chunk.samples))
        self._sink.write(chunk)

    def commit(self) -> float:
        return self._sink.commit()

    def abort(self) -> None:
        self._sink.abort()


class BudgetedEngine:
    """The server's engine as one job's rows see it: every row's audio is counted against the job's budget, and the
    run ends (the rest cancelled) once it is spent."""

    def __init__(self, engine: Any, budget: Budget) -> None:
        self.engine = engine
        self.budget = budget

    def run(self, jobs: Any, on_result: Callable[[Any], None] = lambda result: None) -> list:
        from demod_voice.audio.writer import open_sink

        def checked(result: Any) -> None:
            on_result(result)
            self.budget.check()

        self.budget.check()
        return self.engine.run(jobs, on_result=checked, sink_factory=lambda job: _BudgetSink(open_sink(job.output), self.budget))


def start_job(ctx: Any, job_id: str) -> None:
    """Run (or resume) a job in its own thread."""
    limits = ctx.settings.limits
    _BUDGETS[job_id] = Budget(int(limits.max_batch_output_mb * 1_000_000), limits.max_batch_seconds)
    thread = threading.Thread(target=_run, args=(ctx, job_id), name=f"batch-{job_id[:8]}", daemon=True)
    _THREADS[job_id] = thread
    thread.start()


def _run(ctx: Any, job_id: str) -> None:
    from demod_voice.batch import BatchRequest, run_batch

    folder = jobs_dir(ctx) / job_id
    budget = _BUDGETS[job_id]
    try:
        state = write_state(folder, state="running")
        request = BatchRequest(csv_path=folder / "input.csv", output_dir=folder / "out", config=ctx.config,
                               workers=ctx.settings.workers, model=state.get("model"), report=folder / "report.jsonl",
                               progress=False, log_level=ctx.log_level, on_progress=_logged(job_id), engine=BudgetedEngine(ctx.engine, budget),
                               lexicons=tuple(str(name) for name in ctx.settings.lexicons or ()))
        _finish(ctx, folder, run_batch(request))
    except DemodVoiceError as err:
        final = "interrupted" if ctx.draining.is_set() and not isinstance(err, BudgetExceeded) else "failed"
        _leave(folder, state=final, error=str(err), finished=now())
    except Exception as err:  # noqa: BLE001 - a job thread must leave a state behind, whatever happened
        log.exception("batch job %s failed", job_id)
        _leave(folder, state="failed", error=f"{type(err).__name__}: {err}", finished=now())
    finally:
        _BUDGETS.pop(job_id, None)


def _logged(job_id: str) -> Any:
    """A job's progress, in the server's log (failed rows at info: the job's state says the rest)."""

    def progress(event: Any) -> None:
        if event.message and event.kind in ("status", "row"):
            log.info("batch job %s: %s", job_id, event.message)

    return progress


def _finish(ctx: Any, folder: Path, outcome: Any) -> None:
    # Rows cancelled by a shutdown count as failed: the job is taken up again at the next start.
    final = "interrupted" if ctx.draining.is_set() and (outcome.not_run or outcome.failed) else "done"
    _leave(folder, state=final, done=outcome.done + outcome.skipped, failed=outcome.failed, skipped=outcome.skipped,
           error="; ".join(outcome.errors[:3]) or None, finished=now())


def _leave(folder: Path, **state: Any) -> None:
    """The job's final state, unless it was deleted meanwhile."""
    if (folder / "job.json").is_file():
        try:
            write_state(folder, **state)
        except OSError:
            pass  # deleted while it ended


def resume_jobs(ctx: Any) -> list[str]:
    """Start again every job left queued, running or interrupted by the last run of the server (and forget old ones)."""
    resumed: list[str] = []
    if not jobs_dir(ctx).is_dir():
        return resumed
    expire_jobs(ctx)
    for state_file in sorted(jobs_dir(ctx).glob("*/job.json")):
        job_id = state_file.parent.name
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if JOB_ID.fullmatch(job_id) and state.get("state") in ACTIVE:
            log.info("resuming batch job %s", job_id)
            start_job(ctx, job_id)
            resumed.append(job_id)
    return resumed


def stop_jobs(ctx: Any, timeout: float = 5.0) -> None:
    """At shutdown: job threads end when the engine cancels their rows; their state says 'interrupted'."""
    for thread in list(_THREADS.values()):
        thread.join(timeout=0 if not thread.is_alive() else timeout / max(1, len(_THREADS)))
