"""``book``: a book's takes made as engine jobs in a folder of takes, checked, mastered and muxed.

The folder (``OUTPUT.takes`` beside the output unless ``work_dir`` says) holds one file per take,
named by the fingerprint of everything that shapes its audio (voice, options, words), the
manifest of finished takes (:class:`~demod_voice.resume.Manifest`, as ``batch`` keeps it), the
verdicts of ``verified.jsonl`` and the voice's word timings of ``timings.jsonl`` (:mod:`.timings`).
Ctrl-C, a crash or a full disk costs only the takes in flight; a rerun makes only takes whose file
is missing or whose words changed (edit one chapter: only its takes change fingerprints). One run
at a time holds the folder (:class:`~demod_voice.paths.OutputLock`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends.plugin import WouldFetch
from demod_voice.book import assemble, making
from demod_voice.book.contents import Book, EpubLimits
from demod_voice.book.plan import BookOutcome, BookRequest, Progress, plan_book, work_dir
from demod_voice.book.read import read_book
from demod_voice.book.voice import Reader, language_trouble, reader_for
from demod_voice.engine.executors.choose import choose_executor, workers_per_model
from demod_voice.engine.service import EngineService
from demod_voice.errors import InputError, Interrupted, RuntimeFailure
from demod_voice.paths import OutputLock, os_error
from demod_voice.resume import Manifest

log = logging.getLogger(__name__)


def run_book(request: BookRequest, progress: Optional[Progress] = None) -> BookOutcome:
    """Read, plan, make the missing takes, verify, master and mux. Raises on bad input, a full disk, interruption."""
    progress = progress or Progress()
    settings = request.config.book
    limits = EpubLimits(settings.max_epub_members, settings.max_member_mb << 20, settings.max_unpacked_mb << 20)
    book = request.book or read_book(request.source, limits, request.keep_front_matter, settings.max_chars)
    if request.dry_run:
        return _dry_run(request, book)
    assemble.check_output(request)
    reader = reader_for(request.voice, request.config, request.reading)
    _warn_of_language(reader, book)
    folder = work_dir(request)
    outcome = BookOutcome(book, plan_book(book, request, reader, folder))  # a take the voice cannot be given: nothing made
    recogniser = making.hearing(request, outcome) if request.verify else None
    try:
        (folder / "takes").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(f"cannot create the folder of takes {folder}", err) from None
    started = time.perf_counter()
    with OutputLock(folder, "book", "--work-dir"):
        assemble.sweep(request, book, folder)
        manifest = Manifest(folder)
        try:
            with _engine(request, progress) as engine:
                making.synthesise(engine, request, manifest, outcome, progress)
                if request.verify and not outcome.failed:
                    making.verify_takes(engine, request, manifest, outcome, progress, recogniser)
        except Interrupted as err:  # an overnight run's log ends here: its last line says what is kept and how to go on
            raise Interrupted(f"{err}; {_kept(manifest, outcome)} ({folder.name}); rerun the same command to make the "
                              "rest") from None
        finally:
            manifest.close()
        if outcome.failed:
            return outcome
        assemble.finish(request, outcome, folder, progress)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _kept(manifest: Manifest, outcome: BookOutcome) -> str:
    """How many of the book's takes are made ("9 of 75 takes are made"), a take said twice in the book counted once."""
    distinct = {p.key: p for chapter in outcome.plan for p in chapter}
    made = sum(manifest.complete(p.job, key) for key, p in distinct.items())
    return f"{made} of {len(distinct)} takes are made"


def _dry_run(request: BookRequest, book: Book) -> BookOutcome:
    """The output and the voice checked as a run checks them before its first take, with nothing downloaded or made: a
    dry run listed the chapters and said nothing of a misspelt voice, a speaker it lacks, a voice file that cannot be read,
    a take it cannot be given or an output folder that is not there, which the night's run then met."""
    outcome = BookOutcome(book)
    if not request.voice.voice and not request.voice.references:  # the chapters alone, to see how the book is read
        outcome.notes.append("voice: none named yet; a run needs --voice VOICE (or --reference FILE to clone one)")
        return outcome
    assemble.check_output(request)  # a folder that is not there, or read-only: the run's first words
    try:
        reader = reader_for(request.voice, request.config, request.reading, fetch=False)
    except WouldFetch as fetch:
        outcome.notes.append(f"voice: a run would first download {fetch} (models.auto_download is on), and check it then")
        return outcome
    _check_model_file(reader)
    outcome.plan = plan_book(book, request, reader, work_dir(request))
    _warn_of_language(reader, book)
    if request.verify:  # a model --verify cannot use for the book's language, or one misspelt
        making.hearing(request, outcome, fetch=False)
    takes = sum(map(len, outcome.plan))
    outcome.notes.append(f"voice: {reader.name}" + (f" ({reader.language})" if reader.language else "") +
                         f" can be given all {takes} take(s) (its model is loaded when a run starts)")
    return outcome


def _check_model_file(reader: Reader) -> None:
    """A voice's model file that cannot be read, or is empty (a download that stopped on a full disk), without loading it:
    only a run's worker loads a model."""
    model = Path(reader.template.spec.model)
    if not model.is_file():
        return
    try:
        with model.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as err:
        raise InputError(f"the model file of {reader.name}, {model}, cannot be read ({err.strerror or err}); check it, or download "
                         "the voice again") from None
    if empty:
        raise InputError(f"the model file of {reader.name}, {model}, is empty (a download that stopped?); download the voice again")


def _warn_of_language(reader: Reader, book: Book) -> None:
    trouble = language_trouble(reader, book.language)
    if trouble:
        log.warning("%s", trouble)


class _engine:
    """The server's engine as given, or one for this book (shut down at the end) on the executor ``engine.executor``
    names (:mod:`demod_voice.engine.executors.choose`, as for every front door)."""

    def __init__(self, request: BookRequest, progress: Progress) -> None:
        self.request = request
        self.progress = progress
        self.own: Any = None

    def __enter__(self) -> Any:
        if self.request.engine is not None:
            return self.request.engine
        settings = self.request.config.engine
        executor = self.request.executor or choose_executor(settings, self.request.log_level)
        workers = workers_per_model(executor, settings, self.request.workers)
        cluster = getattr(executor, "cluster", None)
        if cluster is not None:
            self.progress.say(f"Ray cluster at {cluster.address}: {cluster.nodes} node(s), {cluster.cpus:g} CPU(s), "
                              f"{cluster.gpus:g} GPU(s); {workers} worker(s) per model")
        self.own = EngineService(settings, workers, self.request.log_level, executor,
                                 max_loaded_models=settings.max_loaded_models or 2)
        return self.own

    def __exit__(self, *exc: Any) -> None:
        if self.own is not None:
            self.own.shutdown()


def outcome_error(outcome: BookOutcome) -> Optional[RuntimeFailure]:
    """The error to exit with: takes that could not be made (nothing was written then)."""
    if outcome.failed:
        for line in outcome.failed[:20]:
            log.error("%s", line)
        return RuntimeFailure(f"{len(outcome.failed)} take(s) could not be made (listed above); nothing was written; "
                              "rerun the same command to retry them")
    return None

