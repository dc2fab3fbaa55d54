"""What a book run is made of: the request, the plan of takes with their jobs, the progress
callbacks and the outcome. Shared by :mod:`.run`, :mod:`.verify` and :mod:`.assemble`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.book.contents import Book
from demod_voice.book.master import MasterSettings
from demod_voice.book.takes import Take, TakeRules, chapter_takes, estimate_seconds
from demod_voice.book.voice import Reader, VoiceChoice
from demod_voice.config import Config
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import InputError, NothingToSpeak
from demod_voice.resume import fingerprint
from demod_voice.speech_text.prepare import TextOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookRequest:
    """A ``book`` request as typed values, built by the CLI or the server."""

    source: Path
    """The book: .txt, .md or .epub."""
    output: Path
    """An ``.m4b`` file, or a folder for one file per chapter in ``track_format``."""
    config: Config
    voice: VoiceChoice
    track_format: str = ""
    """``.mp3``, ``.opus`` or ``.flac`` for per-chapter files; empty for an ``.m4b``."""
    captions: str = ""
    """``srt``, ``vtt`` or empty."""
    verify: bool = False
    """Hear every take back and remake failing ones."""
    retakes: int = 2
    """Most remakes of a failing take."""
    wer_threshold: float = 0.35
    """A take whose word error rate is over this fails."""
    master: MasterSettings = MasterSettings()
    sentence_pause: float = 0.35
    paragraph_pause: float = 0.9
    keep_front_matter: bool = False
    reading: TextOptions = TextOptions()
    """How the takes' words are read: normalisation, lexicons (``--no-normalize``, ``--lexicon``)."""
    dry_run: bool = False
    work_dir: Optional[Path] = None
    workers: int = 0
    """Workers per model (0: sized from the model and the cores)."""
    log_level: int = logging.WARNING
    engine: Any = None
    """A running :class:`~demod_voice.engine.service.EngineService` (the server's); ``None``: one for this book."""
    executor: Any = None
    """The executor for an engine made here (``None``: the one ``engine.executor`` names)."""
    book: Optional[Book] = None
    """The book already read from ``source`` (the server reads uploads in a limited child process); ``None``: read here."""


@dataclass
class Progress:
    """What a front door shows: called on the calling thread as takes finish."""

    start: Callable[[str, int], None] = lambda stage, total: None
    """A stage begins (``synthesis``, ``verification``, ``retakes``) with ``total`` characters of takes to do."""
    advance: Callable[[int, str], None] = lambda chars, chapter: None
    """``chars`` more done; ``chapter``: the chapter of the take that finished ("3/12 Title")."""
    say: Callable[[str], None] = lambda message: None
    """A status line."""


@dataclass
class Planned:
    """A take with its job and file."""

    take: Take
    job: SynthesisJob
    key: str

    @property
    def path(self) -> Path:
        return Path(self.job.output)


@dataclass
class BookOutcome:
    """What was done, for the summary, the report and the exit code."""

    book: Book
    plan: list[list[Planned]] = field(default_factory=list)
    made: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    """Takes that could not be made (their errors)."""
    unverified: list[dict] = field(default_factory=list)
    """Takes still failing verification: chapter, time, text, problem."""
    verdicts: dict[str, Any] = field(default_factory=dict)
    """Take fingerprint -> its :class:`~demod_voice.book.verify.Verdict` (with ``verify``)."""
    outputs: list[Path] = field(default_factory=list)
    audio_seconds: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What a dry run found out about the voice, for its listing."""


def work_dir(request: BookRequest) -> Path:
    return request.work_dir or request.output.with_name(request.output.name + ".takes")


def plan_book(book: Book, request: BookRequest, reader: Reader, folder: Path) -> list[list[Planned]]:
    """Every chapter's takes with their jobs; the job's output is the take's file, named by its fingerprint.
    A take with nothing to speak (a scene break of asterisks) is left out; any other take the voice cannot be given (a
    lexicon entry in phonemes it does not know, SSML it cannot read) stops the book with the backend's own message,
    before any take is made: left out, every sentence naming a misspelt character went missing with exit 0."""
    rules = TakeRules(reader.take_chars, sentence_pause=request.sentence_pause, paragraph_pause=request.paragraph_pause)
    plan = []
    for takes in chapter_takes(book, rules):
        planned = []
        for take in takes:
            label = f"chapter {take.chapter + 1}, take {take.index + 1}"
            try:
                job = reader.job(take.reading, "", label)
            except NothingToSpeak as err:
                log.info("%s (%r) is left out: %s", label, take.text[:40], err)
                continue
            except InputError as err:
                where = f"chapter {take.chapter + 1} ({book.chapters[take.chapter].title[:40]}), take {take.index + 1}"
                raise InputError(f"{where} ({take.text[:40]!r}): {err}") from None
            key = fingerprint(job)
            planned.append(Planned(take, dataclasses.replace(job, output=str(folder / "takes" / f"{key[:24]}.flac")), key))
        plan.append(planned)
    return plan


def dry_run_lines(book: Book, notes: Iterable[str] = ()) -> list[str]:
    """What ``--dry-run`` prints: every chapter with its length and estimated time, what was skipped and why, then
    ``notes`` (what was found about the voice)."""
    lines = [f"{book.title}" + (f" by {book.author}" if book.author else "")]
    total = 0
    for number, chapter in enumerate(book.chapters, 1):
        total += chapter.chars
        lines.append(f"  {number:3d}. {chapter.title[:60]:<60} {chapter.chars:>8} chars  ~{_clock(estimate_seconds(chapter.chars))}")
    for skipped in book.skipped:
        lines.append(f"  skipped: {skipped.title[:50]} ({skipped.source}): {skipped.reason}")
    lines.append(f"  {len(book.chapters)} chapter(s), {total} characters, about {_clock(estimate_seconds(total))} of audio")
    lines.extend(f"  {note}" for note in notes)
    return lines


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
