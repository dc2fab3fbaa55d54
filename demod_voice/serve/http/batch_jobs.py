"""The server's batch jobs on disk and while they run: owned by a key, bounded, deletable, expiring.

A job is a folder ``<data_dir>/batch/<id>/`` holding ``job.json`` (its state and its owner),
``input.csv`` (the checked rows), ``refs/`` (decoded references), ``srcs/`` (decoded source recordings of
conversion rows), ``out/`` (the audio) and
``report.jsonl``. It runs in a thread as a client of the server's engine (batch priority), within
a budget: ``serve.limits.max_batch_output_mb`` of audio (counted as 16-bit samples while they are
written, so a row is stopped mid-way, not after a 375 MB file exists) and
``serve.limits.max_batch_seconds``; passing either, or a ``DELETE``, ends it. A key may have
``serve.limits.max_batch_jobs_per_key`` jobs queued or running; finished jobs are deleted
``serve.batch_keep_hours`` after they end (checked at start, whenever a job is made, and on a timer). What batch
jobs share with the other kinds of long job (ownership, caps, expiry, delete, budgets) lives in
:mod:`demod_voice.serve.http.job_store`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import DemodVoiceError
from demod_voice.serve.http import job_store
from demod_voice.serve.http.job_store import (
    ACTIVE,
    JOB_ID,
    STAMP,
    Budget,
    BudgetedEngine,
    BudgetExceeded,
    JobKind,
    client_text,
    leave_state,
    now,
    read_state,
    write_state,
)
from demod_voice.serve.lexicons import SPOKEN_GROWTH
from demod_voice.voices.profiles import REENROLL_HTTP, reenroll_advice

log = logging.getLogger(__name__)

BATCH = JobKind("batch", "batch", lambda ctx: ctx.settings.limits.max_batch_jobs_per_key, "serve.limits.max_batch_jobs_per_key",
                lambda ctx: ctx.settings.batch_keep_hours, "serve.batch_keep_hours",
                lambda ctx: ctx.settings.limits.max_batch_jobs_kept_per_key, "serve.limits.max_batch_jobs_kept_per_key")
"""Batch jobs, kept and bounded by :mod:`demod_voice.serve.http.job_store`."""

__all__ = ["ACTIVE", "BATCH", "JOB_ID", "STAMP", "Budget", "BudgetExceeded", "BudgetedEngine", "check_quota", "delete_job",
           "expire_jobs", "job_dir", "jobs_dir", "now", "progress", "read_state", "resume_jobs", "start_job", "stop_jobs",
           "write_state"]


def jobs_dir(ctx: Any) -> Path:
    """Where batch jobs live."""
    return job_store.jobs_dir(ctx, BATCH)


def job_dir(ctx: Any, job_id: str, owner: str) -> Path:
    """The folder of job ``job_id`` if ``owner`` made it (400 malformed id, 404 unknown or another key's)."""
    return job_store.job_dir(ctx, BATCH, job_id, owner)


def progress(folder: Path) -> dict:
    """The job's state for its owner, with rows finished so far (from the manifest while it runs)."""
    state = read_state(folder)
    if state.get("state") in ACTIVE:
        state["done"] = rows_made(folder)
    return {k: state.get(k) for k in ("id", "state", "total", "done", "failed", "skipped", "error", "created", "finished")}


def rows_made(folder: Path) -> int:
    """Rows the job has made so far (its manifest's lines)."""
    manifest = folder / "out" / ".demod-voice-manifest.jsonl"
    try:
        return sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        return 0


def check_quota(ctx: Any, owner: str) -> None:
    """429 when ``owner`` already has as many unfinished jobs as a key may."""
    job_store.check_quota(ctx, BATCH, owner)


def expire_jobs(ctx: Any, at: Optional[float] = None) -> list[str]:
    """Delete finished jobs older than ``serve.batch_keep_hours`` (0: never); return their ids."""
    return job_store.expire_jobs(ctx, BATCH, at)


def delete_job(ctx: Any, folder: Path, wait: float = 15.0) -> None:
    """Stop the job if it runs (its rows are cancelled at their next chunk) and delete its folder."""
    job_store.delete_job(folder, wait)


# --- running ------------------------------------------------------------------------------------


def start_job(ctx: Any, job_id: str) -> None:
    """Run (or resume) a job in its own thread."""
    limits = ctx.settings.limits
    owner = read_state(jobs_dir(ctx) / job_id).get("owner", "")
    budget = Budget(int(limits.max_batch_output_mb * 1_000_000), limits.max_batch_seconds).within(job_store.storage_room(ctx, owner))
    job_store.start_thread(job_id, budget, lambda: _run(ctx, job_id, budget), f"batch-{job_id[:8]}")


def _run(ctx: Any, job_id: str, budget: Budget) -> None:
    from demod_voice.batch import BatchRequest, run_batch

    folder = jobs_dir(ctx) / job_id
    try:
        # taken up again (a restart): what the last run ended with is no longer the job's state
        state = write_state(folder, state="running", failed=0, error=None, finished=None)
        request = BatchRequest(csv_path=folder / "input.csv", output_dir=folder / "out", config=ctx.config,
                               workers=ctx.settings.workers, model=state.get("model"), report=folder / "report.jsonl",
                               progress=False, log_level=ctx.log_level, on_progress=_logged(job_id), engine=BudgetedEngine(ctx.engine, budget),
                               server_lexicons=tuple(str(name) for name in ctx.settings.lexicons or ()), key_id=state.get("owner") or None,
                               max_spoken=SPOKEN_GROWTH * ctx.settings.limits.max_input_chars)
        with reenroll_advice(REENROLL_HTTP):  # its clients enroll over HTTP or on the page, not with the command line
            _finish(ctx, folder, run_batch(request))
    except DemodVoiceError as err:
        if isinstance(err, BudgetExceeded):  # the log said "28 not run" and not why: a limit its administrator set
            log.info("batch job %s stopped: %s", job_id, err)
        final = "interrupted" if ctx.draining.is_set() and not isinstance(err, BudgetExceeded) else "failed"
        # a job stopped mid-way (its budget, its key's disk space) said "done": 0 of the rows its result holds
        leave_state(folder, state=final, done=rows_made(folder), error=client_text(str(err), folder), finished=now())
    except Exception as err:  # noqa: BLE001 - a job thread must leave a state behind, whatever happened
        log.exception("batch job %s failed", job_id)
        leave_state(folder, state="failed", error=client_text(f"{type(err).__name__}: {err}", folder), finished=now())


def _logged(job_id: str) -> Any:
    """A job's progress, in the server's log (failed rows at info: the job's state says the rest)."""

    def progress(event: Any) -> None:
        if event.message and event.kind in ("status", "row", "end"):
            log.info("batch job %s: %s", job_id, event.message)

    return progress


def _finish(ctx: Any, folder: Path, outcome: Any) -> None:
    # Rows cancelled by a shutdown are neither done nor failed: the job is taken up again at the next start.
    final = "interrupted" if ctx.draining.is_set() and (outcome.not_run or outcome.failed) else "done"
    leave_state(folder, state=final, done=outcome.done + outcome.skipped, failed=outcome.failed, skipped=outcome.skipped,
           error=client_text("; ".join(outcome.errors[:3]), folder) or None, finished=now())


def resume_jobs(ctx: Any) -> list[str]:
    """Start again every job left queued, running or interrupted by the last run of the server (and forget old ones)."""
    if not jobs_dir(ctx).is_dir():
        return []
    expire_jobs(ctx)
    resumed = job_store.unfinished(ctx, BATCH)
    for job_id in resumed:
        log.info("resuming batch job %s", job_id)
        start_job(ctx, job_id)
    return resumed


def stop_jobs(ctx: Any, timeout: float = 5.0) -> None:
    """At shutdown: job threads end when the engine cancels their rows; their state says 'interrupted'."""
    job_store.stop_jobs(timeout)
