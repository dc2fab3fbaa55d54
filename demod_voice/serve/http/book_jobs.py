"""The server's books while they run: one thread per book, a client of the server's engine like ``demod-voice book``.

A book is a folder ``<data_dir>/books/<id>/`` holding ``job.json`` (state, owner, options and
progress), the uploaded book (``book.txt``, ``book.md`` or ``book.epub``), ``takes/`` (the folder
of takes: a book taken up again after a restart makes only what is missing) and ``out/`` (the
``.m4b`` or the chapter files, captions). Its budget is ``book.serve_max_output_mb`` of audio
(retakes included) and ``book.serve_max_seconds``; a key may have ``book.serve_max_jobs_per_key``
books unfinished; finished books are deleted ``book.serve_keep_hours`` after they end. Kept,
owned and bounded like batch jobs, by :mod:`demod_voice.serve.http.job_store`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from demod_voice.book.isolated import load_read
from demod_voice.book.master import MasterSettings
from demod_voice.book.plan import BookOutcome, BookRequest, Progress
from demod_voice.book.run import run_book
from demod_voice.book.voice import VoiceChoice
from demod_voice.errors import DemodVoiceError, OutputFull
from demod_voice.serve.errors import client_text as any_client_text
from demod_voice.serve.http import job_store
from demod_voice.serve.http.job_store import Budget, BudgetedEngine, BudgetExceeded, JobKind, leave_state, now, read_state, write_state
from demod_voice.serve.lexicons import reading_for
from demod_voice.serve.voices import UnknownVoice, find_voice, speak_with

log = logging.getLogger(__name__)

BOOK = JobKind("book", "books", lambda ctx: ctx.config.book.serve_max_jobs_per_key, "book.serve_max_jobs_per_key",
               lambda ctx: ctx.config.book.serve_keep_hours, "book.serve_keep_hours",
               lambda ctx: ctx.config.book.serve_max_kept_per_key, "book.serve_max_kept_per_key")
"""Books, kept and bounded by :mod:`demod_voice.serve.http.job_store`."""
SHOWN = ("id", "state", "stage", "done", "total", "chapter", "chapters", "takes", "audio_seconds", "failed_verification",
         "outputs", "error", "created", "finished")
"""What ``GET /v1/books/{id}`` shows of ``job.json``."""
READ = "read.json"
"""The book as the upload check read it in its child process; the job reads this, never the upload itself."""
WRITE_EVERY = 1.0
"""Seconds between progress writes to ``job.json``."""


def output_of(folder: Path, options: dict) -> Path:
    """The ``.m4b``, or the folder of chapter files."""
    return folder / "out" if options.get("format", "m4b") != "m4b" else folder / "out" / "book.m4b"


def start_book(ctx: Any, job_id: str) -> None:
    """Run (or take up again) a book in its own thread."""
    settings = ctx.config.book
    budget = Budget(int(settings.serve_max_output_mb * 1_000_000), settings.serve_max_seconds, "book.serve_max_output_mb",
                    "book.serve_max_seconds", "split the book", "takes")
    budget.within(job_store.storage_room(ctx, read_state(job_store.jobs_dir(ctx, BOOK) / job_id).get("owner", "")))
    job_store.start_thread(job_id, budget, lambda: _run(ctx, job_id, budget), f"book-{job_id[:8]}")


def resume_books(ctx: Any) -> list[str]:
    """Take up every book left unfinished by the last run of the server (and forget old finished ones)."""
    if not job_store.jobs_dir(ctx, BOOK).is_dir():
        return []
    job_store.expire_jobs(ctx, BOOK)
    resumed = job_store.unfinished(ctx, BOOK)
    for job_id in resumed:
        log.info("resuming book %s", job_id)
        start_book(ctx, job_id)
    return resumed


def book_request(ctx: Any, folder: Path, state: dict, budget: Budget) -> BookRequest:
    """The typed request of a book job, from what ``POST /v1/books`` checked and saved in its state."""
    options = state["options"]
    voice = options["voice"]
    choice = VoiceChoice(voice.get("path") or voice["name"], (), voice.get("speaker"), voice.get("language"))
    fmt = options.get("format", "m4b")
    read = folder / READ
    return BookRequest(
        source=folder / state["source"], output=output_of(folder, options), config=ctx.config, voice=choice,
        book=load_read(read) if read.is_file() else None,
        track_format="" if fmt == "m4b" else f".{fmt}", captions=options.get("captions", ""), verify=bool(options.get("verify")),
        retakes=int(options.get("retakes", 2)), master=MasterSettings(float(options.get("loudness", -18.0)),
                                                                     float(options.get("true_peak", -1.0))),
        reading=reading_for(ctx, voice["name"], _Owner(state.get("owner", "")), normalize=bool(options.get("normalize", True))),
        work_dir=folder / "takes", workers=ctx.settings.workers, log_level=ctx.log_level, engine=BudgetedEngine(ctx.engine, budget))


class _Owner:
    """The caller a book was made by (its key's own lexicon applies), as :func:`reading_for` takes it."""

    def __init__(self, owner: str) -> None:
        self.owner = owner


class _Reporter:
    """Progress into ``job.json``, at most once a second (and at each new stage)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.values: dict = {}
        self.written = 0.0

    def progress(self) -> Progress:
        return Progress(start=self.start, advance=self.advance)

    def start(self, stage: str, total: int) -> None:
        self.values.update(stage=stage, total=total, done=0)
        self._write(force=True)

    def advance(self, chars: int, chapter: str) -> None:
        self.values.update(done=self.values.get("done", 0) + chars, chapter=chapter)
        self._write()

    def _write(self, force: bool = False) -> None:
        if force or time.monotonic() - self.written >= WRITE_EVERY:
            self.written = time.monotonic()
            leave_state(self.folder, **self.values)


def _run(ctx: Any, job_id: str, budget: Budget) -> None:
    folder = job_store.jobs_dir(ctx, BOOK) / job_id
    voice: dict = {}
    try:
        state = write_state(folder, state="running")
        voice = state["options"]["voice"]
        trouble = _voice_trouble(ctx, voice)
        if trouble is not None:
            raise trouble
        outcome = run_book(book_request(ctx, folder, state, budget), _Reporter(folder).progress())
        _finish(ctx, folder, outcome)
    except DemodVoiceError as err:
        if isinstance(err, BudgetExceeded):  # said to its client alone: a limit its administrator set
            log.info("book %s stopped: %s", job_id, err)
        final = "interrupted" if ctx.draining.is_set() and not isinstance(err, BudgetExceeded) else "failed"
        err = (_still_readable(ctx, voice) if voice else None) or err  # a voice gone while it read: that, not the worker's words
        if isinstance(err, OutputFull):  # it said "free some space and run the same command again", a command's words
            err = OutputFull("the server ran out of disk space while it read the book: send it again later (its administrator "
                             "must free some space)")
        leave_state(folder, state=final, error=_voice_named(client_text(any_client_text(err), folder), voice), finished=now())
    except Exception as err:  # noqa: BLE001 - a book's thread must leave a state behind, whatever happened
        log.exception("book %s failed", job_id)
        leave_state(folder, state="failed", error=client_text(f"{type(err).__name__}: {err}", folder), finished=now())


def _still_readable(ctx: Any, voice: dict) -> Optional[DemodVoiceError]:
    """:func:`_voice_trouble` after a book failed: a look that fails itself (its files unreadable) leaves the book's own
    error standing, so that its final state is still written (raised here, it left the book "running", counted against its
    key's cap)."""
    try:
        return _voice_trouble(ctx, voice)
    except Exception:  # noqa: BLE001 - the book's error is the one to keep
        log.debug("the book's voice could not be looked at again", exc_info=True)
        return None


def _voice_trouble(ctx: Any, voice: dict) -> Optional[DemodVoiceError]:
    """Why the book's voice cannot read it now, or ``None``: checked as the book starts (or starts again after a restart),
    and again when it failed. A voice deleted, renamed or damaged since the book was sent failed it with the server's
    path and the command line's advice ("check the path, or name an installed voice ('demod-voice models list')")."""
    model = voice.get("path") or ""
    found = find_voice(ctx, voice["name"])
    if found is None or (model and not Path(model).is_file()):
        return UnknownVoice(f"the voice '{voice['name']}' is not on this server any more (deleted or renamed since the book "
                            "was sent): send the book again with another voice (GET /v1/audio/voices)")
    try:
        speak_with(ctx, found, voice.get("speaker"), voice.get("language"))  # a damaged one says so in the administrator's words
    except DemodVoiceError as err:
        return err
    return None


def _voice_named(message: str, voice: dict) -> str:
    """``message`` with the book's voice file named by the voice's name (a voice removed between the check and its use)."""
    model = voice.get("path") or ""
    return message.replace(f"{model}.json", f"{voice['name']}.onnx.json").replace(model, voice["name"]) if model else message


def _finish(ctx: Any, folder: Path, outcome: BookOutcome) -> None:
    if outcome.failed:
        final = "interrupted" if ctx.draining.is_set() else "failed"
        error = f"{len(outcome.failed)} take(s) could not be made: " + "; ".join(client_text(e, folder) for e in outcome.failed[:3])
        leave_state(folder, state=final, error=error, finished=now())
        return
    out = folder / "out"
    # progress is written at most every WRITE_EVERY seconds: a done book said "done 0" of its last stage's total
    total = read_state(folder).get("total") if (folder / "job.json").is_file() else None
    leave_state(folder, state="done", stage="done", done=total, chapters=len(outcome.book.chapters),
                takes=sum(len(c) for c in outcome.plan),
                audio_seconds=round(outcome.audio_seconds, 2), failed_verification=len(outcome.unverified),
                outputs=[str(p.relative_to(out)) for p in outcome.outputs if p.is_relative_to(out)], error=None, finished=now())


def progress(folder: Path) -> dict:
    """The book's state for its owner."""
    state = read_state(folder)
    return {key: state.get(key) for key in SHOWN}


def client_text(message: str, folder: Path) -> str:
    """A message with the book's folder taken out (no server path leaves)."""
    for prefix in (str(folder / "out") + "/", str(folder / "takes") + "/", str(folder) + "/", str(folder)):
        message = message.replace(prefix, "")
    return message


def client_report(folder: Path) -> str:
    """``report.json`` as its client may see it: outputs by their names in the result, no server path in any field."""
    report = json.loads((folder / "takes" / "report.json").read_text(encoding="utf-8"))
    report["outputs"] = [Path(p).name for p in report.get("outputs", [])]
    return client_text(json.dumps(report, indent=2, ensure_ascii=False), folder) + "\n"
