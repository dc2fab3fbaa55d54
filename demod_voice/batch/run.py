"""``batch``: a CSV of rows to audio files, every row checked before any work, resumable, reported.

Columns (header required, UTF-8 with or without BOM, quoted fields may hold commas and newlines):
``text`` and ``output`` always; ``reference`` (one or more paths joined by ``|``) for XTTS clones;
``voice`` for a saved XTTS voice profile; ``model`` for Piper voices (a path or an installed name, or
``--model``); optional ``language``, ``speaker``, ``backend``; ``source`` instead of ``text`` converts that
recording into the row's ``reference`` or ``voice`` (voice conversion, docs/conversion.md). Each row becomes a job through its
backend's request side (:mod:`demod_voice.backends.registry`): the one its ``backend`` column names,
else the first that claims it (XTTS: a row with a reference or a voice; else ``piper.backend``).

Resume: each finished row appends a line to ``.demod-voice-manifest.jsonl`` in the output folder,
holding a fingerprint of everything that shapes its audio and the file's size. A rerun skips a row
only when its fingerprint matches and its file is still there with that size. One run at a time
holds the folder (``.demod-voice.lock``, an ``flock`` the kernel drops when its process ends, so a
crashed run never leaves it stuck); a last manifest line cut short by a crash is dropped on resume.
A full disk stops the run at the row that met it: nothing half-written, the manifest intact.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput, WouldFetch
from demod_voice.batch.rows import OutputPlaces, Row, check_shape, output_name, read_rows, row_text
from demod_voice.config import Config, cache_root
from demod_voice.engine.executors.choose import check_executor, choose_executor, workers_per_model
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.engine.service import EngineRun
from demod_voice.errors import Cancelled, DemodVoiceError, InputError, Interrupted, OutputFull, RuntimeFailure
from demod_voice.paths import LOCK, OutputLock, confined_output, os_error, sweep_partials
from demod_voice.resume import MANIFEST, Manifest, Report, fingerprint, signals_held
from demod_voice.speech_text import scopes
from demod_voice.speech_text.prepare import TextOptions

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Progress:
    """One thing a run reports: ``status`` (a line for people: rows already complete, the summary, a dry run's findings,
    the cluster), ``start`` (``total`` rows to make), ``row`` (one row ended; ``message`` says why it failed, if it
    did and the run goes on), ``end`` (no more rows; ``message``: a line for each error more rows than one failed with,
    with all their lines)."""

    kind: str
    """``status``, ``start``, ``row`` or ``end``."""
    message: str = ""
    """The line (``status``), or a failed row's error (``row``)."""
    total: int = 0
    """Rows to make (``start``)."""
    failed: int = 0
    """Rows failed so far (``row``)."""


@dataclass(frozen=True)
class BatchRequest:
    """A ``batch`` request as typed values, built by the CLI."""

    csv_path: Path
    """The CSV file (with ``stdin``: ``stdin`` in the current folder, where its rows' relative paths start)."""
    output_dir: Path
    """Where relative outputs land; nothing is written outside it."""
    config: Config
    """Effective configuration."""
    workers: int = 1
    """Worker processes per model (with ``engine.executor: ray``, 0: as many actors as the cluster holds)."""
    model: Optional[str] = None
    """Default Piper voice for rows without a ``model``."""
    fail_fast: bool = False
    """Stop at the first failed row."""
    dry_run: bool = False
    """Validate only."""
    stdin: bool = False
    """The batch file is read from standard input (``batch -``, a CSV made by another program)."""
    report: Optional[Path] = None
    """JSON-lines report path."""
    progress: bool = True
    """Show a voice download's progress bar on stderr (rows are reported through ``on_progress``)."""
    log_level: int = logging.WARNING
    """Log level for workers."""
    on_progress: Optional[Callable[[Progress], None]] = None
    """Called on the running thread as the run goes (:class:`Progress`); the batch module itself prints nothing.
    The CLI draws a bar and prints status lines; ``None``: a silent run (the server's jobs)."""
    allow_outside: bool = False
    """Accept absolute outputs outside ``output_dir`` (``--allow-outside-output-dir``; never for remote clients)."""
    engine: Any = None
    """A running :class:`~demod_voice.engine.service.EngineService` to submit the rows to (the server's,
    so rows share its loaded models and yield to its interactive requests); ``None``: an engine for this run."""
    normalize: bool = True
    """Spell out numbers, money, dates, abbreviations and URLs in the rows' text (``--no-normalize``: leave them to the engine)."""
    lexicons: tuple[str, ...] = ()
    """Lexicons (names or files) read over ``default`` and each row's voice's own (``--lexicon``)."""
    server_lexicons: tuple[str, ...] = ()
    """The server's ``serve.lexicons``: read after ``default`` and under each row's voice's own, as a speech request reads them."""
    key_id: Optional[str] = None
    """The API key a server's job was made with: its own lexicon (``key.ID``) is read over the voice's."""
    max_spoken: int = 0
    """Characters a row's text may grow to when read (:attr:`TextOptions.max_spoken`): a server's bound, as on a speech
    request; 0: none."""


@dataclass
class Outcome:
    """Counts for the summary and the exit code."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0
    errors: list[str] = field(default_factory=list)
    row_faults: int = 0
    """Failed rows whose own text or settings cannot be made (an :class:`InputError`): a rerun fails them again."""


SAY_CHECKING = 2000
"""Rows from which ``batch`` says it is checking them: every row is checked (and its text prepared) before any is
made, a silent wait otherwise (50,000 rows of ``bench/batch_piper.py``: a dry run 17 s, the first row made after
~20 s, on a quiet 2-core machine)."""


def build_jobs(rows: list[Row], request: BatchRequest, fetches: Optional[dict[str, list[int]]] = None,
               say_problems: bool = True) -> list[tuple[Row, SynthesisJob]]:
    """Validate every row; raise one :class:`RowProblems` listing every problem with its line number (each said in the
    log too, unless ``say_problems`` is false: a server's client is told them in its answer).

    In a dry run, rows whose voice would be downloaded first are valid but get no job; ``fetches``
    collects them (``backend:name`` -> lines).
    """
    problems: dict[str, list[int]] = {}  # message -> the lines it is about (a bad lexicon is every row's: said once)
    jobs: list[tuple[Row, SynthesisJob]] = []
    places = OutputPlaces()
    readings: dict[Optional[str], TextOptions] = {}
    for row in rows:
        try:
            job = _row_job(row, request, readings)
        except WouldFetch as fetch:
            if fetches is not None:
                fetches.setdefault(f"{fetch.kind}:{fetch}", []).append(row.line)
            continue
        except DemodVoiceError as err:
            problems.setdefault(str(err), []).append(row.line)
            continue
        clash = places.clash(Path(job.output), row.values["output"], row.line)
        if clash:
            problems.setdefault(clash, []).append(row.line)
            continue
        jobs.append((row, job))
    if problems:
        said = [f"{request.csv_path.name}:{_lines(lines)}: {message}" for message, lines in problems.items()]
        for line in said:
            log.log(logging.ERROR if say_problems else logging.DEBUG, "%s", line)
        rows = sum(len(lines) for lines in problems.values())
        first = said[0] if len(said) == 1 else f"{said[0]} (and {len(said) - 1} more, listed above)"
        raise RowProblems(f"{rows} row(s) of {request.csv_path.name} have problems; nothing was synthesised: {first}",
                          [(message, lines) for message, lines in problems.items()])
    return jobs


class RowProblems(InputError):
    """Rows that cannot be made, all of them: :attr:`problems` holds each message with the lines it is about."""

    def __init__(self, message: str, problems: list[tuple[str, list[int]]]) -> None:
        super().__init__(message)
        self.problems = problems


def _lines(lines: list[int]) -> str:
    """``7``, or ``2, 3, 5`` for rows with one problem, ``2, 3, 4, 5, 6, ... (40 rows)`` for many."""
    shown = ", ".join(map(str, lines[:5]))
    return shown if len(lines) <= 5 else f"{shown}, ... ({len(lines)} rows)"


def _row_job(row: Row, request: BatchRequest, readings: dict[Optional[str], TextOptions]) -> SynthesisJob:
    """``readings``: how each voice's rows are read, kept for the run (its lexicons read once per voice, not per row)."""
    check_shape(row)
    v = row.values
    side = _row_side(v, request.config)
    # the text as written: '-' reads stdin only as a command-line argument (a converter's rows have none)
    text = row_text(v.get("text", "")) if side.takes_text else ""
    name = output_name(v.get("output", ""), remote=False, ids="id" in v)
    output = _free_place(confined_output(request.output_dir, name, request.allow_outside), name)
    # the voice whose lexicons read the row: --model (or the default voice) only for rows that speak with it
    voice = v.get("model") or v.get("voice") or (request.model if side.row_models else None)
    if voice not in readings:
        readings[voice] = scopes.reading(scopes.store(cache_root(request.config)), request.normalize, server=request.server_lexicons,
                                         voice=voice, key_id=request.key_id, extra=request.lexicons, max_spoken=request.max_spoken)
    row_input = RowInput(v, text, output, request.csv_path.parent, request.config, cache_root(request.config), request.model,
                         request.dry_run, request.progress, reading=readings[voice])
    try:
        job = side.row_job(row_input)
    except WouldFetch as fetch:
        fetch.kind = side.name
        raise
    return dataclasses.replace(job, label=f"{request.csv_path.name}:{row.line}")


def _free_place(output: Path, name: str) -> Path:
    """``output``, unless a folder (or a device, a pipe) stands there: its row failed at write time ("Is a directory"),
    and the last line said to rerun, which failed it again every time."""
    if output.is_dir():
        raise InputError(f"output '{name[:80]}' is a folder; give the row another file name")
    if output.exists() and not output.is_file():
        raise InputError(f"output '{name[:80]}' is not a regular file (a device, a pipe or a socket); give the row another file name")
    return output


def _row_side(values: dict[str, str], config: Config) -> Any:
    """The request side a row names in its ``backend`` column, else the first that claims the row (XTTS:
    a row with a reference or a voice), else ``piper.backend`` (a Piper voice in ``model`` or ``--model``)."""
    named = values.get("backend", "").lower()
    if named:
        if named not in registry.names():
            raise InputError(registry.missing(named))
        return registry.request_side(named)
    for side in sorted(registry.request_sides(), key=lambda side: -side.claim_priority):  # stable: registry order within one
        if side.claims_row(values, config):
            return side
    return registry.request_side(config.piper.backend)


# --- running ----------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised from a result to end the run: ``--fail-fast``, or a full disk (every later row would fail too)."""

    def __init__(self, error: Optional[DemodVoiceError] = None) -> None:
        super().__init__(str(error or ""))
        self.error = error


def run_batch(request: BatchRequest) -> Outcome:
    """Validate, then synthesise every row not already complete. Raises on bad rows, a full disk or interruption."""
    rows = read_rows(request.csv_path, stdin=request.stdin)
    if not rows:
        raise InputError(f"batch file {'on stdin' if request.stdin else request.csv_path} has a header but no rows")
    fetches: dict[str, list[int]] = {}
    if len(rows) >= SAY_CHECKING:
        _say(request, f"checking {len(rows):,} rows before any is made")
    jobs = build_jobs(rows, request, fetches)
    _check_report(request, jobs)
    if request.dry_run:
        return _dry_run(request, jobs, fetches)
    if request.engine is None:
        check_executor(request.config.engine)
    _make_output_dir(request.output_dir)
    with OutputLock(request.output_dir):
        # the report's own temporary too, where the lock covers it (a kill -9 left one per killed run)
        report = [request.report] if request.report and request.report.is_relative_to(request.output_dir) else []
        swept = sweep_partials([*(Path(job.output) for _, job in jobs), *report])
        if swept:
            log.info("removed %d half-written file(s) left by an interrupted run", swept)
        manifest = Manifest(request.output_dir)
        try:
            return _run_locked(request, jobs, manifest)
        except Interrupted as err:  # an overnight run's log ends here: its last line says how to go on
            raise Interrupted(f"{err}; rerun the same command to make the rest (finished rows are skipped)") from None
        finally:
            manifest.close()


def _check_report(request: BatchRequest, jobs: list[tuple[Row, SynthesisJob]]) -> None:
    """:class:`InputError` for a report that names a file the run reads or keeps: the report is renamed over it at the end
    (``--report jobs.csv`` replaced the batch file with the report, the manifest lost every finished row)."""
    if request.report is None:
        return
    kept = {request.output_dir / MANIFEST: "the output folder's manifest", request.output_dir / LOCK: "the output folder's lock"}
    if not request.stdin:
        kept[request.csv_path] = "the batch file itself"
    kept.update((Path(job.output), f"the output of line {row.line}") for row, job in jobs)
    report = os.path.realpath(request.report)
    for path, what in kept.items():
        # the same place however written (through a linked folder); a link of another name is replaced, not its file
        if path.name == request.report.name and os.path.realpath(path) == report:
            raise InputError(f"--report {request.report} is {what}, which the report would replace; give another file, "
                             f"such as {request.output_dir / 'report.jsonl'}")


def _run_locked(request: BatchRequest, jobs: list[tuple[Row, SynthesisJob]], manifest: Manifest) -> Outcome:
    outcome = Outcome()
    if request.report is not None:
        _make_output_dir(request.report.parent)
    report = Report(request.report)
    todo: list[tuple[Row, SynthesisJob, str]] = []
    for row, job in jobs:
        key = fingerprint(job)
        if manifest.complete(job, key):
            outcome.skipped += 1
            report.add(row.line, "skipped", job.output)
        else:
            todo.append((row, job, key))
    if outcome.skipped:
        _say(request, f"{outcome.skipped:,} of {len(jobs):,} rows are already complete (manifest); {len(todo):,} to do")
    started = time.perf_counter()
    try:
        for _, job, _ in todo:
            _make_output_dir(Path(job.output).parent, job.describe())
        _synthesise(todo, request, manifest, report, outcome)
    finally:
        outcome.not_run = len(todo) - outcome.done - outcome.failed
        written = False
        try:
            report.close()
            written = True
        finally:  # a report that cannot be written (a full disk) still leaves the run's summary, which names none
            _summary(request, outcome, time.perf_counter() - started, request.report if written else None)
    return outcome


def _make_output_dir(folder: Path, label: str = "") -> None:
    """Create a missing output folder (said at -v); a folder that cannot be made is one line naming it."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = f"{label}: " if label else ""
        raise os_error(f"{where}cannot create the output directory {folder}", err) from None
    log.info("created the output directory %s", folder)


def _dry_run(request: BatchRequest, jobs: list[tuple[Row, SynthesisJob]], fetches: dict[str, list[int]]) -> Outcome:
    """Say what a run would do, including what it would download; nothing is fetched or written."""
    counts: dict[str, int] = {}
    for _, job in jobs:
        counts[job.spec.backend] = counts.get(job.spec.backend, 0) + 1
    for key, lines in fetches.items():
        kind = key.partition(":")[0]
        counts[kind] = counts.get(kind, 0) + len(lines)
    kinds = ", ".join(f"{n:,} {b}" for b, n in counts.items() if n)
    valid = len(jobs) + sum(map(len, fetches.values()))
    _say(request, f"{valid:,} rows are valid ({kinds}); dry run, nothing synthesised")
    for key, lines in sorted(fetches.items()):
        name = key.partition(":")[2]
        _say(request, f"a run would first download the voice {name} (models.auto_download is on; used by {len(lines)} row(s))")
    for fetch in sorted({job.spec.fetch for _, job in jobs if job.spec.fetch}):
        _say(request, f"a run would first download {fetch} (its licence accepted)")
    return Outcome(not_run=valid)


def _synthesise(todo, request: BatchRequest, manifest: Manifest, report: Report, outcome: Outcome) -> None:
    by_output = {job.output: (row, key) for row, job, key in todo}
    _tell(request, Progress("start", total=len(todo)))

    recorded: set[str] = set()
    said: dict[str, list[int]] = {}
    """A failed row's error -> the lines that failed with it: said as it happens the first time, then once with all its
    lines when the run ends (a voice that would not load wrote one line per row: 25,000 of them for 25,000 rows)."""

    def finished(result) -> None:
        row, key = by_output[result.job.output]
        if result.job.output in recorded:
            return  # given again: Ctrl-C or SIGTERM came while it was being recorded (EngineService.run)
        if result.ok:
            with signals_held():  # all of the row's record or none of it: given again, it is not written twice
                manifest.record(result.job, key)
                outcome.done += 1
                report.add(row.line, "ok", result.job.output, result.audio_seconds, result.seconds, where=result.where)
                recorded.add(result.job.output)
            _tell(request, Progress("row", failed=outcome.failed))
            return
        if isinstance(result.error, Cancelled):  # stopped (a server's drain), not failed: not run, made by the next run
            return
        with signals_held():  # counted and reported together, as a finished row is
            outcome.failed += 1
            outcome.row_faults += isinstance(result.error, InputError)
            outcome.errors.append(f"{result.job.describe()}: {result.error}")
            report.add(row.line, "failed", result.job.output, 0.0, result.seconds, str(result.error), where=result.where)
        if isinstance(result.error, OutputFull):
            _tell(request, Progress("row", failed=outcome.failed))
            raise _Stop(OutputFull(f"{result.job.describe()}: {result.error}"))
        lines = said.setdefault(str(result.error), [])
        lines.append(row.line)
        _tell(request, Progress("row", f"{result.job.describe()}: {result.error}" if len(lines) == 1 else "", failed=outcome.failed))
        if request.fail_fast:
            raise _Stop()

    if request.engine is not None:
        engine = request.engine
    else:
        executor, workers = _executor(request, todo) if todo else (None, 1)
        engine = EngineRun(request.config.engine, workers=workers, log_level=request.log_level, executor=executor)
    try:
        engine.run([job for _, job, _ in todo], on_result=finished, keep=False)
    except _Stop as stop:
        _tell(request, Progress("end"))
        if stop.error is not None:
            raise stop.error from None  # the disk is full: every later row would fail the same way
        log.error("stopping at the first failure (--fail-fast)")
    finally:
        _tell(request, Progress("end", "\n".join(f"{request.csv_path.name}:{_lines(sorted(lines))}: {error}"
                                                 for error, lines in said.items() if len(lines) > 1)))


def _executor(request: BatchRequest, todo: list) -> tuple[Any, int]:
    """The executor ``engine.executor`` names and the workers per model (on Ray, ``--workers 0``: as many
    actors as the cluster's CPUs hold, ``engine.ray_num_cpus`` each), no more than the rows of the model with most."""
    settings = request.config.engine
    executor = choose_executor(settings, request.log_level)
    most_rows = max(Counter(job.spec for _, job, _ in todo).values())
    workers = workers_per_model(executor, settings, request.workers, most_rows)
    cluster = getattr(executor, "cluster", None)
    if cluster is not None:
        _say(request, f"Ray cluster at {cluster.address}: {cluster.nodes} node(s), "
                      f"{cluster.cpus:g} CPU(s), {cluster.gpus:g} GPU(s); {workers} worker(s) per model")
    return executor, workers


def _say(request: BatchRequest, message: str) -> None:
    """A status line for people (not a warning)."""
    _tell(request, Progress("status", message))


def _tell(request: BatchRequest, event: Progress) -> None:
    if request.on_progress is not None:
        request.on_progress(event)


def _summary(request: BatchRequest, outcome: Outcome, seconds: float, report: Optional[Path]) -> None:
    parts = [f"{outcome.done:,} done", f"{outcome.failed:,} failed", f"{outcome.skipped:,} already complete"]
    if outcome.not_run:
        parts.append(f"{outcome.not_run:,} not run")
    where = f"; report: {report}" if report else ""
    _say(request, f"batch: {', '.join(parts)} in {seconds:.1f} s{where}")


def outcome_error(outcome: Outcome) -> Optional[DemodVoiceError]:
    """The error to exit with: none only when every row is complete."""
    if not (outcome.failed or outcome.not_run):
        return None
    retried = outcome.failed - outcome.row_faults + outcome.not_run
    if not outcome.row_faults:
        return RuntimeFailure(f"{outcome.failed} row(s) failed, {outcome.not_run} not run; rerun the same command to retry them")
    # a row whose text cannot be said fails the same way on every rerun: "rerun to retry" alone sent people round
    change = f"{outcome.row_faults} of them because of the row itself (its line above or in the report): change those rows"
    again = f", then rerun the same command ({retried} other row(s) are retried, finished ones skipped)" if retried else \
        " and rerun the same command (finished rows are skipped)"
    return RuntimeFailure(f"{outcome.failed} row(s) failed, {outcome.not_run} not run; {change}{again}")
