"""Long jobs a key leaves with the server (``/v1/batch``, ``/v1/books``): owned, bounded, deletable, expiring.

Each kind of job (:class:`JobKind`) keeps its jobs in a folder of its own under the server's data
folder, one folder per job with ``job.json`` (its state and its owner). What every kind shares
lives here: ids, the state file, ownership (another key gets 404: ids of other keys' jobs are not
revealed), the per-key cap on unfinished jobs, expiry of finished ones, delete (which stops a
running job first), and the budget a running job spends its audio and time from, counted as the
engine writes, so a job is stopped mid-way rather than after the fact.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError
from demod_voice.paths import atomic_path
from demod_voice.serve.core import PRIVATE_DIR
from demod_voice.serve.errors import ApiError, quoted

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{24}")
"""A job id (checked with ``fullmatch``)."""
ACTIVE = ("queued", "running", "interrupted")
"""States of an unfinished job."""
CHECKING = "checking"
"""A job whose request is still being read and checked: it holds its key's place (:func:`reserve`)."""
STAMP = "%Y-%m-%dT%H:%M:%SZ"
STORAGE_SETTING = "serve.limits.max_storage_mb_per_key"
"""The disk space one key's jobs of every kind may take together."""
STORAGE_ADVICE = ("delete those whose results it has downloaded (GET /v1/batch and GET /v1/books list them; DELETE "
                  "/v1/batch/ID, DELETE /v1/books/ID); finished ones are deleted anyway once their keep time is over")
_KINDS: dict[str, JobKind] = {}
"""Every kind of job made, by folder: a key's disk space is counted over all of them."""
_THREADS: dict[str, threading.Thread] = {}
_BUDGETS: dict[str, Budget] = {}


@dataclass(frozen=True)
class JobKind:
    """One kind of long job: where its jobs live and which settings bound them."""

    name: str
    """The folder under the data folder, and the word messages use (``batch``, ``book``)."""
    folder: str
    """Folder name under ``ctx.data_dir``."""
    per_key: Callable[[Any], int]
    """Unfinished jobs one key may have, from the context."""
    per_key_setting: str
    """The config key of :attr:`per_key`, named in the 429."""
    keep_hours: Callable[[Any], float]
    """Hours a finished job is kept (0: kept), from the context."""
    keep_setting: str
    """The config key of :attr:`keep_hours`, named in the log."""
    kept_per_key: Callable[[Any], int] = lambda ctx: 0
    """Jobs one key may have at all, finished ones kept for download included (0: no limit), from the context."""
    kept_setting: str = ""
    """The config key of :attr:`kept_per_key`, named in the 403."""

    def __post_init__(self) -> None:
        _KINDS[self.folder] = self


def jobs_dir(ctx: Any, kind: JobKind) -> Path:
    """Where jobs of ``kind`` live."""
    return ctx.data_dir / kind.folder


def job_dir(ctx: Any, kind: JobKind, job_id: str, owner: str) -> Path:
    """The folder of job ``job_id`` if ``owner`` made it: 400 for a malformed id, 404 for a job that does not exist
    or belongs to another key (the same answer)."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ApiError(400, f"'{quoted(job_id, 40)}' is not a {kind.name} job id", code="bad_job_id")
    folder = jobs_dir(ctx, kind) / job_id
    try:
        state = read_state(folder)
    except (OSError, ValueError):
        state = None
    if state is None or state.get("owner", "") != owner:
        raise ApiError(404, f"there is no {kind.name} job '{job_id}'", code="unknown_job")
    return folder


def owned(ctx: Any, kind: JobKind, owner: str, show: Callable[[Path], dict]) -> list[dict]:
    """``owner``'s jobs of ``kind`` as ``show`` shows each, newest first (requests still being checked, and jobs deleted
    while the list is made, left out): what ``GET /v1/batch`` and ``GET /v1/books`` list, so that an app that lost a
    job's id can find it again. Another key's jobs are never among them."""
    found = []
    for state_file in jobs_dir(ctx, kind).glob("*/job.json"):
        try:
            state = read_state(state_file.parent)
            if JOB_ID.fullmatch(state_file.parent.name) and state.get("owner", "") == owner and state.get("state") != CHECKING:
                found.append((str(state.get("created") or ""), state_file.parent.name, show(state_file.parent)))
        except (OSError, ValueError):
            continue
    return [shown for _, _, shown in sorted(found, key=lambda item: item[:2], reverse=True)]


_UNSAVED: dict[Path, dict] = {}
"""Final states that could not be written (a full disk), by job folder: read as if written, and written at a later read
once there is room. A book that failed for a full disk stayed "running" for as long as the server ran, and counted
against its key's cap."""


def read_state(folder: Path) -> dict:
    """``job.json``, with a final state not yet written (:data:`_UNSAVED`) over it."""
    state = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    unsaved = _UNSAVED.get(folder)
    if unsaved is not None:
        state.update(unsaved)
        with contextlib.suppress(OSError):
            write_state(folder, **unsaved)
            _UNSAVED.pop(folder, None)
    return state


def write_state(folder: Path, **changes: Any) -> dict:
    """Merge ``changes`` into ``job.json`` (atomically)."""
    from demod_voice.paths import write_text_atomic

    path = folder / "job.json"
    state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    state.update(changes)
    write_text_atomic(path, json.dumps(state, indent=1))
    return state


def leave_state(folder: Path, **state: Any) -> None:
    """A job's final state, unless it was deleted meanwhile."""
    if (folder / "job.json").is_file():
        try:
            write_state(folder, **state)
        except OSError as err:
            if folder.is_dir():  # not deleted while it ended: kept until it can be written
                told = folder in _UNSAVED
                _UNSAVED[folder] = {**_UNSAVED.get(folder, {}), **state}
                if not told:  # once: progress is left here every second
                    log.warning("job %s: its state could not be saved (%s); it is kept in memory until it can be", folder.name,
                                err.strerror or err)


def client_text(message: str, folder: Path) -> str:
    """A message with the job's folder taken out: the engine names a job by its output path, which a client must not
    see (its outputs are named relative to the job)."""
    for prefix in (str(folder / "out") + "/", str(folder) + "/", str(folder)):
        message = message.replace(prefix, "")
    return message


def result_zip(folder: Path, report: Path, report_name: str, client_report: Callable[[Path], str]) -> Path:
    """A finished job's ``result.zip`` (made once, atomically): every file under ``out/`` by its name inside the job (no
    link, no dot file), then ``report`` (when there is one) as ``report_name``, as its client may see it (no server path)."""
    target = folder / "result.zip"
    if target.is_file():
        return target
    out = folder / "out"
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(out.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                archive.write(path, str(path.relative_to(out)))
        if report.is_file():
            archive.writestr(report_name, client_report(folder))
    return target


def now() -> str:
    """UTC now, as job states write it."""
    return time.strftime(STAMP, time.gmtime())


def check_quota(ctx: Any, kind: JobKind, owner: str) -> None:
    """429 when ``owner`` already has as many unfinished jobs of ``kind`` as a key may; 403 when it has as many jobs at all
    (finished ones kept for download included) as a key may keep: finished jobs were bounded only by their keep time, and
    one key could fill the server's disk with them, one job after another."""
    limit, kept_limit = kind.per_key(ctx), kind.kept_per_key(ctx)
    active, finished = 0, []
    for state_file in jobs_dir(ctx, kind).glob("*/job.json"):
        try:
            state = read_state(state_file.parent)
        except (OSError, ValueError):
            continue
        if state.get("owner", "") != owner:
            continue
        if state.get("state") in (*ACTIVE, CHECKING):
            active += 1
        else:
            finished.append((str(state.get("finished") or ""), state_file.parent.name))
    if active >= limit:
        raise ApiError(429, f"this key has {active} {kind.name} jobs queued or running; at most {limit} at once "
                            f"({kind.per_key_setting}): wait for one to finish, or delete one", "rate_limit_error",
                       "too_many_jobs", {"Retry-After": "10"})
    if kept_limit and active + len(finished) >= kept_limit:
        oldest = ", ".join(job_id for _, job_id in sorted(finished)[:3])
        raise ApiError(403, f"this key has {active + len(finished)} {kind.name} jobs on the server, as many as one key may keep "
                            f"({kind.kept_setting}): delete those whose results it has downloaded (DELETE /v1/{kind.folder}/ID; "
                            f"its oldest: {oldest or 'none finished yet'}); finished ones are deleted anyway once their keep "
                            "time is over", code="too_many_kept_jobs")


def storage_used(ctx: Any, owner: str) -> int:
    """Bytes on disk of every job of ``owner``, of every kind (uploads, takes and outputs; finished ones included)."""
    total = 0
    for kind in _KINDS.values():
        for state_file in jobs_dir(ctx, kind).glob("*/job.json"):
            try:
                if read_state(state_file.parent).get("owner", "") != owner:
                    continue
            except (OSError, ValueError):
                continue
            total += _folder_bytes(state_file.parent)
    return total


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (a link counts as itself, never what it points to)."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def storage_room(ctx: Any, owner: str) -> Optional[int]:
    """Bytes ``owner``'s jobs may still take (``serve.limits.max_storage_mb_per_key``); ``None``: no limit."""
    quota = ctx.settings.limits.max_storage_mb_per_key
    if not quota:
        return None
    return max(0, int(quota * 1_000_000) - storage_used(ctx, owner))


def check_storage(ctx: Any, owner: str) -> None:
    """403 when ``owner``'s jobs take as much disk space as one key's may: the caps count jobs, and a few large ones
    (a book may make 4 GB) could still fill the server's disk. It stats every file of the key's jobs: called in a
    thread, before :func:`reserve` (requests sent at once may pass it together; each job's budget is then cut to
    what is left, :meth:`Budget.within`)."""
    room = storage_room(ctx, owner)
    if room == 0:
        quota = ctx.settings.limits.max_storage_mb_per_key
        raise ApiError(403, f"this key's batch jobs and books take {quota:g} MB or more of the server's disk, as much as one "
                            f"key's jobs may ({STORAGE_SETTING}): {STORAGE_ADVICE}", code="storage_quota_exceeded")


def reserve(ctx: Any, kind: JobKind, owner: str) -> Path:
    """Check ``owner``'s cap and take a place for a new job of ``kind`` in one step, before the request's body is read
    (nothing awaited between the two, so requests sent at once cannot all pass the cap): its folder, with a job.json
    in state ``checking``. The caller fills it in, or removes the folder when the request is refused."""
    check_quota(ctx, kind, owner)
    job_id = secrets.token_hex(12)
    folder = jobs_dir(ctx, kind) / job_id
    folder.parent.mkdir(parents=True, exist_ok=True)
    # A job holds people's texts, recordings and audio: its folder is the server's alone, whatever the umask and the
    # data folder's mode (every job was readable by every local user under the usual umask 022).
    folder.mkdir(mode=PRIVATE_DIR)
    try:
        write_state(folder, id=job_id, owner=owner, state=CHECKING, created=now(), finished=None)
    except BaseException:  # a full disk left an empty job folder for every request refused
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def expire_jobs(ctx: Any, kind: JobKind, at: Optional[float] = None) -> list[str]:
    """Delete finished jobs of ``kind`` older than their keep time (0: never); return their ids."""
    hours = kind.keep_hours(ctx)
    if not hours:
        return []
    at = time.time() if at is None else at
    gone = []
    for state_file in sorted(jobs_dir(ctx, kind).glob("*/job.json")):
        try:
            state = read_state(state_file.parent)
            finished = calendar.timegm(time.strptime(state["finished"], STAMP))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if state.get("state") not in ACTIVE and at - finished > hours * 3600:
            shutil.rmtree(state_file.parent, ignore_errors=True)
            _UNSAVED.pop(state_file.parent, None)
            gone.append(state_file.parent.name)
    if gone:
        log.info("deleted %d finished %s job(s) older than %g h (%s)", len(gone), kind.name, hours, kind.keep_setting)
    return gone


def expiry_interval(hours: float) -> float:
    """Seconds between looks for expired jobs while the server runs: a tenth of the keep time, from 1 s to 10 min."""
    return min(600.0, max(1.0, hours * 360.0))


async def expire_while_running(ctx: Any, kinds: tuple[JobKind, ...], stop: asyncio.Event) -> None:
    """Delete expired jobs of ``kinds`` every :func:`expiry_interval` until ``stop`` is set (a server that runs for
    weeks and makes no new job still frees the disk its finished jobs held)."""
    while True:
        hours = [kind.keep_hours(ctx) for kind in kinds if kind.keep_hours(ctx)]
        try:
            await asyncio.wait_for(stop.wait(), expiry_interval(min(hours)) if hours else 600.0)
            return
        except asyncio.TimeoutError:
            pass
        for kind in kinds:
            if jobs_dir(ctx, kind).is_dir():
                await asyncio.to_thread(expire_jobs, ctx, kind)


def unfinished(ctx: Any, kind: JobKind) -> list[str]:
    """Ids of jobs of ``kind`` left queued, running or interrupted (by the last run of the server); requests it was
    still checking when it stopped are deleted."""
    found = []
    for state_file in sorted(jobs_dir(ctx, kind).glob("*/job.json")):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if state.get("state") == CHECKING:
            shutil.rmtree(state_file.parent, ignore_errors=True)
            continue
        if JOB_ID.fullmatch(state_file.parent.name) and state.get("state") in ACTIVE:
            found.append(state_file.parent.name)
    return found


# --- running ------------------------------------------------------------------------------------


def start_thread(job_id: str, budget: Budget, target: Callable[[], None], name: str) -> None:
    """Run a job's ``target`` in its own thread, known to :func:`delete_job` (which stops it) and :func:`stop_jobs`."""
    _BUDGETS[job_id] = budget
    thread = threading.Thread(target=_running(job_id, target), name=name, daemon=True)
    _THREADS[job_id] = thread
    thread.start()


def _running(job_id: str, target: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        finally:
            _BUDGETS.pop(job_id, None)

    return run


def delete_job(folder: Path, wait: float = 15.0) -> None:
    """Stop the job if it runs (its work is cancelled at its next chunk) and delete its folder."""
    job_id = folder.name
    budget = _BUDGETS.get(job_id)
    if budget is not None:
        budget.cancel()
    thread = _THREADS.get(job_id)
    if thread is not None and thread.is_alive():
        thread.join(wait)
    shutil.rmtree(folder, ignore_errors=True)
    _UNSAVED.pop(folder, None)


def stop_jobs(timeout: float = 5.0) -> None:
    """At shutdown: job threads end when the engine cancels their work."""
    for thread in list(_THREADS.values()):
        thread.join(timeout=0 if not thread.is_alive() else timeout / max(1, len(_THREADS)))


class BudgetExceeded(InputError):
    """A job passed its output or time budget, or was deleted: the rest of its work is not done."""


class Budget:
    """What one job may still write and for how long; shared by its sinks (the engine's thread) and its own thread."""

    def __init__(self, max_bytes: int, max_seconds: float, bytes_setting: str = "serve.limits.max_batch_output_mb",
                 seconds_setting: str = "serve.limits.max_batch_seconds", advice: str = "split the batch",
                 rest: str = "rows") -> None:
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.written = 0
        self.settings = (bytes_setting, seconds_setting)
        self.advice = advice
        self.rest = rest
        self.over = ""
        """What a job stopped past :attr:`max_bytes` is told, when that is not its own budget (:meth:`within`)."""
        self._lock = threading.Lock()
        self._stop: Optional[BudgetExceeded] = None

    def within(self, room: Optional[int]) -> Budget:
        """This budget, cut to ``room`` (:func:`storage_room`: what its key's jobs may still take on disk) where that is
        less: a job that would pass its key's disk space is stopped as it writes, like one past its own budget."""
        if room is not None and room < self.max_bytes:
            self.max_bytes = room
            self.over = (f"this key's jobs passed the disk space one key's jobs may take ({STORAGE_SETTING}); the job's remaining "
                         f"{self.rest} were not made: {STORAGE_ADVICE}")
        return self

    def cancel(self) -> None:
        """The job was deleted."""
        self._stop = BudgetExceeded("the job was deleted")

    def spend(self, samples: int) -> None:
        """Count ``samples`` (16-bit); raise :class:`BudgetExceeded` past the budget, the deadline, or a cancel."""
        with self._lock:
            self.written += 2 * samples
            if self._stop is None and self.written > self.max_bytes:
                self._stop = BudgetExceeded(self.over or f"the job's audio passed {self.max_bytes / 1e6:g} MB ({self.settings[0]}); "
                                            f"its remaining {self.rest} were not made: {self.advice}")
        self.check()

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if the job must stop."""
        if self._stop is None and time.monotonic() > self.deadline:
            self._stop = BudgetExceeded(f"the job ran past {self.max_seconds:g} s ({self.settings[1]}); its "
                                        f"remaining {self.rest} were cancelled: {self.advice}")
        if self._stop is not None:
            raise self._stop


class _BudgetSink:
    """A job's sink that counts what it writes against the budget."""

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
    """The server's engine as one job's work sees it: every job's audio is counted against the budget, and the run
    ends (the rest cancelled) once it is spent."""

    def __init__(self, engine: Any, budget: Budget) -> None:
        self.engine = engine
        self.budget = budget

    def run(self, jobs: Any, on_result: Callable[[Any], None] = lambda result: None,
            sink_factory: Optional[Callable[[Any], Any]] = None, keep: bool = True) -> list:
        """The engine's ``run``; ``sink_factory`` and ``keep`` as there (default: the job's output file)."""
        from demod_voice.audio.writer import open_sink

        make = sink_factory or (lambda job: open_sink(job.output))

        def checked(result: Any) -> None:
            on_result(result)
            self.budget.check()

        self.budget.check()
        # watch: the budget is also checked while no job writes (a row still making its first audio, a recogniser's
        # job that makes none), so a run is cut at its time budget or a delete, not when its current job ends.
        return self.engine.run(jobs, on_result=checked, sink_factory=lambda job: _BudgetSink(make(job), self.budget),
                               watch=self.budget.check, keep=keep)
