"""From a folder of finished takes to the outputs: each chapter assembled and mastered
(:mod:`.master`), muxed (:mod:`.mux`), captioned (:mod:`.captions`), and the report written.

Chapters are made one at a time so that memory holds one chapter, not the book: a first pass
lays out every chapter (its length and cues follow from the takes alone; loudness changes no
timing), so the ``.m4b``'s chapter marks are known before its audio is encoded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demod_voice.book import captions, master, mux
from demod_voice.book.contents import Book
from demod_voice.book.plan import BookOutcome, BookRequest, Planned, Progress
from demod_voice.book.timings import Timings
from demod_voice.errors import InputError, RuntimeFailure
from demod_voice.paths import check_output_path, os_error, sweep_partials, write_text_atomic

log = logging.getLogger(__name__)


def check_output(request: BookRequest) -> None:
    """Before any work: the output can be written where asked (one line if not)."""
    if request.track_format:
        folder = request.output.expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} is a file; per-chapter {request.track_format} files need a folder as -o")
        parent = folder if folder.is_dir() else folder.parent
        if not parent.is_dir():
            raise InputError(f"output directory {parent} does not exist; create it first (mkdir -p {parent})")
        check_output_path(parent / ".demod-voice-book-probe")
        return
    if request.output.is_dir():  # check_output_path's advice ("such as x.m4b/speech.wav") names a file a book refuses
        raise InputError(f"{request.output} is a folder; give the .m4b file's name (-o {request.output / 'book.m4b'}), "
                         "or add --format mp3 (or opus, flac) for one file per chapter in it")
    check_output_path(request.output)


def _read_take(planned: Planned) -> tuple[Any, int]:
    import soundfile

    try:
        samples, rate = soundfile.read(str(planned.path), dtype="float32", always_2d=False)
    except (OSError, RuntimeError) as err:
        raise RuntimeFailure(f"cannot read the take {planned.path.name} ({err}); delete it and rerun to remake it") from None
    return samples, rate


def _chapter(takes: list[Planned], settings: master.MasterSettings) -> tuple[Any, int, list[master.Cue]]:
    parts, rate = [], 0
    for planned in takes:
        samples, rate = _read_take(planned)
        parts.append((samples, planned.take.pause, planned.take.text))
    audio, cues = master.assemble(parts, rate, settings)
    return audio, rate, cues


def _timed(takes: list[Planned], cues: list[master.Cue], verdicts: dict, spoken: Timings) -> list[master.Cue]:
    """Cues with their words timed: by the voice's own timings where it gave them with the take (Piper's
    durations: where it put each word, exact for what it made), else where the recogniser heard them (``--verify``)."""
    out = []
    for planned, cue in zip(takes, cues, strict=True):
        verdict = verdicts.get(planned.key)
        known = spoken.words(planned.key, planned.path) or (verdict.words if verdict is not None else ())
        words = captions.word_times(cue, known) if known else ()
        out.append(dataclasses.replace(cue, words=words) if words else cue)
    return out


def finish(request: BookRequest, outcome: BookOutcome, folder: Path, progress: Progress) -> None:
    """Master and write every chapter, the captions and the report."""
    lossy = not request.track_format or request.track_format in (".mp3", ".opus")
    settings = dataclasses.replace(request.master, headroom=mux.HEADROOM[request.track_format or ".m4b"])
    progress.say(f"mastering {len(outcome.plan)} chapter(s)")
    layout = []  # (length in samples, rate, cues) per chapter
    spoken = Timings(folder)
    for takes in outcome.plan:
        audio, rate, cues = _chapter(takes, settings)
        layout.append((len(audio), rate, _timed(takes, cues, outcome.verdicts, spoken)))
    rates = {rate for _, rate, _ in layout}
    if len(rates) != 1:
        raise RuntimeFailure("the takes hold different sample rates; delete the folder of takes and run again")
    rate = rates.pop()
    chapters = outcome.book.chapters

    def mastered_chapters() -> Iterator[Any]:
        for takes in outcome.plan:
            audio, _, _ = _chapter(takes, settings)
            yield mastered(audio, rate, settings, request.track_format or ".m4b") if lossy else master.normalise(audio, rate, settings)

    tags = mux.Tags(outcome.book.title, outcome.book.author, outcome.book.language, outcome.book.cover, outcome.book.cover_type)
    titles = [c.title for c in chapters]
    if request.track_format:
        _tracks(request, outcome, layout, mastered_chapters(), tags, titles, rate)
    else:
        _m4b(request, outcome, layout, mastered_chapters(), tags, titles, rate)
    outcome.audio_seconds = sum(length for length, _, _ in layout) / rate
    _unverified(outcome, layout, rate, bool(request.track_format))
    write_report(folder / REPORT, outcome)


def mastered(audio: Any, rate: int, settings: master.MasterSettings, suffix: str) -> Any:
    """A chapter mastered for a lossy file of ``suffix``: its encoder overshoots the peaks it is given, by more than the
    headroom kept for it at times (:data:`~demod_voice.book.mux.HEADROOM`; a buzz in AAC at 64 kb/s: 2 dB), so the chapter
    is encoded in memory and its decoded true peak measured; over the ceiling, it is mastered again with that much more
    headroom. (The chapter alone is no exact measure of it in the m4b's one stream: the joe voice's chapters overshot there
    by up to 0.5 dB more, which the m4b's own headroom covers.)"""
    x = master.normalise(audio, rate, settings)
    for _ in range(3):
        over = master.true_peak_of(mux.decoded(x, rate, suffix)) - settings.true_peak
        if over <= 0:
            break
        settings = dataclasses.replace(settings, headroom=settings.headroom + over + 0.1)
        x = master.normalise(audio, rate, settings)
    return x


def _m4b(request: BookRequest, outcome: BookOutcome, layout: list, audio: Iterator[Any], tags: mux.Tags, titles: list[str],
         rate: int) -> None:
    lengths = [length for length, _, _ in layout]
    try:
        mux.write_m4b(request.output, lengths, audio, titles, rate, tags)
    except OSError as err:
        raise os_error(f"cannot write {request.output}", err) from None
    outcome.outputs.append(request.output)
    if request.captions:
        cues, offset = [], 0.0
        for length, _, chapter_cues in layout:
            cues += [c.shifted(offset) for c in chapter_cues]
            offset += length / rate
        target = request.output.with_suffix(f".{request.captions}")
        _write_captions(target, cues, request.captions)
        outcome.outputs.append(target)


def _tracks(request: BookRequest, outcome: BookOutcome, layout: list, audio: Iterator[Any], tags: mux.Tags, titles: list[str],
            rate: int) -> None:
    folder = request.output
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(f"cannot create the output folder {folder}", err) from None
    written = []
    for number, (samples, title, (_, _, cues)) in enumerate(zip(audio, titles, layout, strict=True), 1):
        target = folder / mux.track_name(number, title, request.track_format)
        mux.write_track(target, samples, rate, tags, title, number, len(titles))
        outcome.outputs.append(target)
        written.append(target.name)
        if request.captions:
            caption = target.with_suffix(f".{request.captions}")
            _write_captions(caption, cues, request.captions)
            outcome.outputs.append(caption)
            written.append(caption.name)
    _forget_earlier_tracks(folder, written)


REPORT = "report.json"
"""The run's report, in the folder of takes."""
TRACKS = ".demod-voice-tracks.json"
"""The chapter files the last run wrote into a per-chapter folder (names only)."""


def sweep(request: BookRequest, book: Book, folder: Path) -> None:
    """Remove what a killed run left half-written beside this book's outputs (``.NAME.*.partial``, :func:`temp_beside`:
    a 10-hour book's m4b is hundreds of MB), the chapter files of an earlier run included; done under the folder of
    takes' lock, so no other run of this book is writing them."""
    if request.track_format:
        names = [mux.track_name(n, c.title, request.track_format) for n, c in enumerate(book.chapters, 1)]
        tracks = [request.output / name for name in (*names, *_recorded(request.output))]
        targets = [*tracks, *(t.with_suffix(f".{fmt}") for t in tracks for fmt in captions.FORMATS), request.output / TRACKS]
    else:
        targets = [request.output, *(request.output.with_suffix(f".{fmt}") for fmt in captions.FORMATS)]
    removed = sweep_partials([*targets, folder / REPORT])
    if removed:
        log.info("removed %d half-written file(s) left by an interrupted run", removed)


def _recorded(folder: Path) -> list[str]:
    """The chapter files the last run recorded in ``folder`` (plain names only: the record is read, never trusted)."""
    try:
        earlier = json.loads((folder / TRACKS).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in earlier if isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")]


def _forget_earlier_tracks(folder: Path, written: list[str]) -> None:
    """Remove the chapter files an earlier run of this book wrote here that this one did not (a chapter renamed or gone:
    a player would play the old one), then record this run's. Only files named in our own record are ever removed."""
    record = folder / TRACKS
    stale = [name for name in _recorded(folder) if name not in written and (folder / name).is_file()]
    for name in stale:
        try:
            (folder / name).unlink()
        except OSError as err:
            log.warning("could not remove %s, a chapter file of an earlier run: %s", name, err.strerror or err)
    if stale:
        log.warning("removed %d file(s) of an earlier run that this book no longer has: %s", len(stale), ", ".join(stale[:6]) +
                    (", ..." if len(stale) > 6 else ""))
    try:
        write_text_atomic(record, json.dumps({"files": written}))
    except OSError as err:
        log.warning("could not record the chapter files in %s: %s", record.name, err.strerror or err)


def _write_captions(target: Path, cues: list[master.Cue], fmt: str) -> None:
    try:
        write_text_atomic(target, captions.render(cues, fmt))
        _readable(target)
    except OSError as err:
        raise os_error(f"cannot write the captions {target}", err) from None


def _unverified(outcome: BookOutcome, layout: list, rate: int, per_chapter: bool) -> None:
    """Takes still failing verification, with their chapter and their time in the output, for a person to listen to."""
    offset = 0.0
    for number, (takes, (length, _, cues)) in enumerate(zip(outcome.plan, layout, strict=True), 1):
        base = 0.0 if per_chapter else offset
        for planned, cue in zip(takes, cues, strict=True):
            verdict = outcome.verdicts.get(planned.key)
            if verdict is not None and not verdict.ok:
                outcome.unverified.append({
                    "chapter": number, "title": outcome.book.chapters[number - 1].title, "take": planned.take.index + 1,
                    "time": captions.stamp(base + cue.start), "text": planned.take.text, "heard": verdict.heard,
                    "problem": verdict.problem, "file": planned.path.name})
        offset += length / rate


def write_report(path: Path, outcome: BookOutcome) -> None:
    """The JSON report: outputs, counts and every take still failing verification, by chapter and time."""
    report = {"title": outcome.book.title, "chapters": len(outcome.book.chapters),
              "takes": sum(len(c) for c in outcome.plan), "made": outcome.made, "reused": outcome.reused,
              "audio_seconds": round(outcome.audio_seconds, 2), "outputs": [str(p) for p in outcome.outputs],
              "failed_verification": outcome.unverified, "failed": outcome.failed,
              "skipped": [{"title": s.title, "source": s.source, "reason": s.reason} for s in outcome.book.skipped]}
    try:
        write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        _readable(path)
    except OSError as err:
        raise os_error(f"cannot write the report {path}", err) from None


def _readable(path: Path) -> None:
    """The permissions a new file gets under the umask (the temporary file it was renamed from had 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
