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
from typing import Any, Optional

from demod_voice.book import assemble, making
from demod_voice.book.contents import EpubLimits
from demod_voice.book.plan import BookOutcome, BookRequest, Progress, plan_book, work_dir
from demod_voice.book.read import read_book
from demod_voice.book.voice import reader_for
from demod_voice.engine.executors.choose import choose_executor, workers_per_model
from demod_voice.engine.service import EngineService
from demod_voice.errors import RuntimeFailure
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
        return BookOutcome(book)
    assemble.check_output(request)
    reader = reader_for(request.voice, request.config, request.reading)
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
        finally:
            manifest.close()
        if outcome.failed:
            return outcome
        assemble.finish(request, outcome, folder, progress)
    outcome.seconds = time.perf_counter() - started
    return outcome


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

