"""``batch``: a CSV of rows to audio files, every row checked before any work, resumable, reported.

Columns (header required, UTF-8 with or without BOM, quoted fields may hold commas and newlines):
``text`` and ``output`` always; ``reference`` (one or more paths joined by ``|``) for XTTS clones;
``voice`` for a saved XTTS voice profile; ``model`` for Piper voices (a path or an installed name, or
``--model``); optional ``language``, ``speaker``, ``backend``.

Resume: each finished row appends a line to ``.demod-voice-manifest.jsonl`` in the output folder,
holding a fingerprint of everything that shapes its audio and the file's size. A rerun skips a row
only when its fingerprint matches and its file is still there with that size.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import DemodVoiceError, InputError, Interrupted, RuntimeFailure
from demod_voice.paths import confined_output, temp_beside

log = logging.getLogger(__name__)

COLUMNS = ("reference", "text", "output", "language", "speaker", "backend", "model", "voice")
BACKENDS = ("xtts", "piper", "tinygrad")
MANIFEST = ".demod-voice-manifest.jsonl"


@dataclass(frozen=True)
class BatchRequest:
    """A ``batch`` request as typed values, built by the CLI."""

    csv_path: Path
    """The CSV file."""
    output_dir: Path
    """Where relative outputs land; nothing is written outside it."""
    config: Config
    """Effective configuration."""
    workers: int = 1
    """Worker processes per model."""
    model: Optional[str] = None
    """Default Piper voice for rows without a ``model``."""
    fail_fast: bool = False
    """Stop at the first failed row."""
    dry_run: bool = False
    """Validate only."""
    report: Optional[Path] = None
    """JSON-lines report path."""
    progress: bool = True
    """Show a progress bar on stderr."""
    log_level: int = logging.WARNING
    """Log level for workers."""


@dataclass
class Row:
    """One CSV row and the line it starts on."""

    line: int
    """1-based line of the row's first field."""
    values: dict[str, str]
    """Column -> stripped value."""


@dataclass
class Outcome:
    """Counts for the summary and the exit code."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0
    errors: list[str] = field(default_factory=list)


def read_rows(path: Path) -> list[Row]:
    """Parse the CSV; raise :class:`InputError` for an unreadable file, a missing header or unknown columns."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"batch file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise InputError(f"batch file {path} is not UTF-8 (byte {err.start}); save it as UTF-8") from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InputError(f"batch file {path} is empty; the first line must be a header such as 'reference,text,output'")
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in ("text", "output") if c not in header]
    if unknown or missing:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else f"missing column(s) {', '.join(missing)}"
        raise InputError(f"batch file {path}: {problem}; columns are {', '.join(COLUMNS)} (text and output required)")
    reader.fieldnames = header
    rows, start = [], 2
    for record in reader:
        values = {k: (v or "").strip() for k, v in record.items() if k is not None}
        if any(values.values()):
            rows.append(Row(start, values))
        start = reader.line_num + 1
    return rows


def build_jobs(rows: list[Row], request: BatchRequest) -> list[tuple[Row, SynthesisJob]]:
    """Validate every row; raise one :class:`InputError` listing every problem with its line number."""
    problems: list[str] = []
    jobs: list[tuple[Row, SynthesisJob]] = []
    seen: dict[Path, int] = {}
    for row in rows:
        try:
            job = _row_job(row, request)
        except DemodVoiceError as err:
            problems.append(f"{request.csv_path.name}:{row.line}: {err}")
            continue
        key = Path(job.output)
        if key in seen:
            problems.append(f"{request.csv_path.name}:{row.line}: output '{row.values['output']}' is also written by line {seen[key]}")
            continue
        seen[key] = row.line
        jobs.append((row, job))
    if problems:
        for problem in problems:
            log.error("%s", problem)
        raise InputError(f"{len(problems)} row(s) of {request.csv_path.name} have problems (listed above); nothing was synthesised")
    return jobs


def _row_job(row: Row, request: BatchRequest) -> SynthesisJob:
    from demod_voice.audio.text import load_text
    from demod_voice.audio.writer import FORMATS

    v = row.values
    backend = v.get("backend", "").lower() or ("xtts" if v.get("reference") or v.get("voice") else request.config.piper.backend)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{v['backend']}'; choose one of {', '.join(BACKENDS)}")
    text = load_text(v.get("text", ""))
    output = confined_output(request.output_dir, v.get("output", ""))
    if output.suffix.lower() not in FORMATS:
        raise InputError(f"output '{v['output']}' must end in {', '.join(FORMATS)}")
    label = f"{request.csv_path.name}:{row.line}"
    job = _xtts_job(v, text, output, request) if backend == "xtts" else _piper_job(v, text, output, request, backend)
    return dataclasses.replace(job, label=label)


def _xtts_job(v: dict[str, str], text: str, output: Path, request: BatchRequest) -> SynthesisJob:
    from demod_voice.backends.xtts.request import XttsRequest, make_job
    from demod_voice.voices.profiles import load_named

    references = tuple(r.strip() for r in v.get("reference", "").split("|") if r.strip())
    if not references and not v.get("voice"):
        raise InputError("an xtts row needs a reference recording in the 'reference' column, or a saved voice in 'voice'")
    if references and v.get("voice"):
        raise InputError("give either reference recordings or a saved voice, not both")
    cache = cache_root(request.config)
    profile = load_named(cache, v["voice"]) if v.get("voice") else None
    if v.get("speaker"):
        raise InputError("the speaker column is for Piper voices; XTTS takes the voice from the reference")
    settings = request.config.xtts
    if v.get("language"):
        settings = dataclasses.replace(settings, language=v["language"])
    if v.get("model"):
        settings = dataclasses.replace(settings, model_dir=str(_relative_to_csv(v["model"], request.csv_path)))
    resolved = tuple(str(_relative_to_csv(r, request.csv_path)) for r in references)
    return make_job(XttsRequest(resolved, text, str(output), settings, str(cache), request.config.device, profile))


def _piper_job(v: dict[str, str], text: str, output: Path, request: BatchRequest, backend: str) -> SynthesisJob:
    from demod_voice.backends.piper.request import PiperRequest, make_job
    from demod_voice.models.registry import looks_like_name, resolve_piper_model

    model = v.get("model") or request.model
    if not model:
        raise InputError("a piper row needs a voice: fill the 'model' column or pass --model")
    if v.get("language"):
        raise InputError("the language column is for XTTS rows; a Piper voice speaks its own language")
    config = request.config
    cache = cache_root(config)
    path = _relative_to_csv(model, request.csv_path)
    if not path.exists() and looks_like_name(model):
        path = Path(resolve_piper_model(model, config.models.catalog_url, cache, config.models.auto_download, request.progress))
    return make_job(PiperRequest(str(path), text, str(output), config.piper, config.device, str(cache),
                                 speaker=v.get("speaker") or None, backend=backend))


def _relative_to_csv(value: str, csv_path: Path) -> Path:
    """Input paths in a CSV are relative to the CSV's folder, so a batch folder can move as a whole."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else csv_path.parent.absolute() / path


# --- resume -----------------------------------------------------------------------------------


def fingerprint(job: SynthesisJob) -> str:
    """Everything that shapes a job's audio: backend, model file identity, text, options."""
    model = Path(job.spec.model)
    weights = model / "model.pth" if model.is_dir() else model
    stat = weights.stat() if weights.exists() else None
    identity = [job.spec.backend, str(weights), stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0]
    opts = job.options
    profile = getattr(opts, "profile", None)
    if profile is not None:
        # A profile stands for itself by its digest; copying and printing its arrays for every row would not.
        opts = dataclasses.replace(opts, profile=None)
    options = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else repr(opts)
    if profile is not None:
        options["profile"] = profile.digest
    payload = json.dumps({"model": identity, "text": job.text, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class Manifest:
    """Append-only record of finished outputs in the output folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["output"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash

    def complete(self, job: SynthesisJob, key: str) -> bool:
        """True when the output exists as recorded for exactly these inputs."""
        entry = self.entries.get(job.output)
        if not entry or entry.get("key") != key:
            return False
        try:
            return os.path.getsize(job.output) == entry.get("size")
        except OSError:
            return False

    def record(self, job: SynthesisJob, key: str) -> None:
        entry = {"output": job.output, "key": key, "size": os.path.getsize(job.output)}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.entries[job.output] = entry


# --- running ----------------------------------------------------------------------------------


class Report:
    """JSON lines, one per row, written as rows finish into a temporary file renamed at the end."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._handle = None
        if path is not None:
            self._tmp = temp_beside(path)
            self._handle = open(self._tmp, "w", encoding="utf-8")  # closed in close()

    def add(self, row: Row, status: str, output: str, duration: float = 0.0, seconds: float = 0.0, error: str = "") -> None:
        if self._handle is not None:
            entry = {"row": row.line, "status": status, "output": output, "duration": round(duration, 3),
                     "seconds": round(seconds, 3), "error": error or None}
            self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            os.replace(self._tmp, self.path)
            self._handle = None


class _FailFast(Exception):
    pass


def run_batch(request: BatchRequest) -> Outcome:
    """Validate, then synthesise every row not already complete. Raises on bad rows or interruption."""
    from demod_voice.engine.service import Engine

    if not request.output_dir.is_dir():
        raise InputError(f"output directory {request.output_dir} does not exist; create it or pass another --output-dir")
    rows = read_rows(request.csv_path)
    if not rows:
        raise InputError(f"batch file {request.csv_path} has a header but no rows")
    jobs = build_jobs(rows, request)
    outcome = Outcome()
    if request.dry_run:
        counts = {b: sum(1 for _, j in jobs if j.spec.backend == b) for b in BACKENDS}
        kinds = ", ".join(f"{n} {b}" for b, n in counts.items() if n)
        _say(request, f"{len(jobs)} rows are valid ({kinds}); dry run, nothing synthesised")
        outcome.not_run = len(jobs)
        return outcome
    manifest = Manifest(request.output_dir)
    report = Report(request.report)
    todo: list[tuple[Row, SynthesisJob, str]] = []
    for row, job in jobs:
        key = fingerprint(job)
        if manifest.complete(job, key):
            outcome.skipped += 1
            report.add(row, "skipped", job.output)
        else:
            Path(job.output).parent.mkdir(parents=True, exist_ok=True)
            todo.append((row, job, key))
    if outcome.skipped:
        _say(request, f"{outcome.skipped} of {len(jobs)} rows are already complete (manifest); {len(todo)} to do")
    started = time.perf_counter()
    try:
        _synthesise(todo, request, manifest, report, outcome, Engine)
    finally:
        outcome.not_run = len(todo) - outcome.done - outcome.failed
        report.close()
        _summary(request, outcome, time.perf_counter() - started)
    return outcome


def _synthesise(todo, request: BatchRequest, manifest: Manifest, report: Report, outcome: Outcome, engine_cls) -> None:
    from tqdm import tqdm

    by_output = {job.output: (row, key) for row, job, key in todo}
    bar = tqdm(total=len(todo), unit="row", disable=not request.progress or not todo, dynamic_ncols=True)

    def finished(result) -> None:
        row, key = by_output[result.job.output]
        if result.ok:
            manifest.record(result.job, key)
            outcome.done += 1
            report.add(row, "ok", result.job.output, result.audio_seconds, result.seconds)
        else:
            outcome.failed += 1
            outcome.errors.append(f"{result.job.describe()}: {result.error}")
            bar.write(f"demod-voice: error: {result.job.describe()}: {result.error}")
            report.add(row, "failed", result.job.output, 0.0, result.seconds, str(result.error))
        bar.update(1)
        bar.set_postfix(failed=outcome.failed, refresh=False)
        if request.fail_fast and not result.ok:
            raise _FailFast()

    engine = engine_cls(request.config.engine, workers=request.workers, log_level=request.log_level)
    try:
        engine.run([job for _, job, _ in todo], on_result=finished)
    except _FailFast:
        log.error("stopping at the first failure (--fail-fast)")
    except Interrupted:
        bar.close()
        raise
    finally:
        bar.close()


def _say(request: BatchRequest, message: str) -> None:
    """A status line on stderr (not a warning); silent with -q."""
    if request.progress:
        print(f"demod-voice: {message}", file=sys.stderr, flush=True)


def _summary(request: BatchRequest, outcome: Outcome, seconds: float) -> None:
    parts = [f"{outcome.done} done", f"{outcome.failed} failed", f"{outcome.skipped} already complete"]
    if outcome.not_run:
        parts.append(f"{outcome.not_run} not run")
    where = f"; report: {request.report}" if request.report else ""
    _say(request, f"batch: {', '.join(parts)} in {seconds:.1f} s{where}")


def outcome_error(outcome: Outcome) -> Optional[DemodVoiceError]:
    """The error to exit with: none only when every row is complete."""
    if outcome.failed or outcome.not_run:
        return RuntimeFailure(f"{outcome.failed} row(s) failed, {outcome.not_run} not run; rerun the same command to retry them")
    return None
