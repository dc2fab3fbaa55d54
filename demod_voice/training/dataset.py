"""Reading a speech dataset's ``metadata.csv`` (pipe-separated, as LJSpeech and Piper use it).

Layouts: ``id|text``; ``id|text|normalized`` (LJSpeech: the normalized text is spoken);
``id|speaker|text`` (multi-speaker). Three columns are told apart by ``--layout`` or, left to
``auto``, by the middle column: speaker names are short and repeat, and are not the line's text again.
A dataset without ``metadata.csv`` may have each recording's transcript beside it instead
(``wavs/clip1.wav`` and ``wavs/clip1.txt``): :data:`TEXT_FILES`.
"""

from __future__ import annotations

import csv
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.errors import InputError

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "ljspeech", "multi")
TEXT_FILES = "text files"
"""The layout of a dataset without ``metadata.csv`` whose recordings in ``wavs/`` each have a transcript beside them."""
TRANSCRIPTS = (".normalized.txt", ".txt")
"""What a recording's transcript beside it is named after its stem, in order of preference (LibriTTS has both)."""
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aac")
"""What a clip's file may end in: libsndfile reads the first five, FFmpeg (through PyAV) the rest."""


@dataclass(frozen=True)
class Entry:
    """One line of the metadata."""

    line: int
    """1-based line number."""
    clip_id: str
    """File name stem in ``wavs/``."""
    text: str
    """What is spoken."""
    speaker: Optional[str] = None
    """Speaker name (multi-speaker layout)."""
    problem: str = ""
    """Why the line is no clip at all: a header row, or a count of columns unlike the other lines'."""


def read_metadata(input_dir: Path, layout: str = "auto") -> tuple[list[Entry], str]:
    """Entries and the layout used; :class:`InputError` for a missing file, bad encoding or column counts."""
    path = input_dir / "metadata.csv"
    if not path.is_file():
        return _transcript_files(input_dir, layout), TEXT_FILES
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(f"{path} is not UTF-8 (line {line}, byte {err.start}); convert it, e.g. iconv -f latin1 -t utf-8") from None
    rows = _rows(path, text)
    if not rows:
        raise InputError(f"{path} is empty")
    rows = _other_separator(path, rows)
    counts = Counter(len(row) for _, row in rows if len(row) in (2, 3))
    width = counts.most_common(1)[0][0] if counts else 0
    odd = [(n, row) for n, row in rows if len(row) != width]
    if not width or len(odd) * 10 > len(rows):  # no shape most lines share: the file is wrong, not a line or two
        raise InputError(f"{path}: every line needs the same columns, id|text, id|text|normalized or id|speaker|text; "
                         f"{_columns_problem(rows, odd, width)}")
    # A line or two typed with a | too many or too few (a | in the text) is dropped with its line number, not the whole run.
    rows = [(n, row) for n, row in rows if len(row) == width]
    _refuse_speakerless_multi(path, rows, width, layout)
    header = rows[0] if rows and _is_header(rows[0][1]) else None
    rows = rows[1:] if header else rows
    if width == 3 and layout == "auto":
        layout = "multi" if _looks_like_speakers([row for _, row in rows]) else "ljspeech"
    elif width == 2:
        layout = "ljspeech"
    entries = [Entry(header[0], header[1][0].strip(), "", problem="header row")] if header else []
    entries += [Entry(n, row[0].strip(), "", problem=f"wrong column count ({len(row)}; the other lines have {width})")
                for n, row in odd]
    for n, row in rows:
        if width == 2:
            entries.append(Entry(n, _clip_id(row[0]), row[1].strip()))
        elif layout == "multi":
            entries.append(Entry(n, _clip_id(row[0]), row[2].strip(), row[1].strip()))
        else:
            entries.append(Entry(n, _clip_id(row[0]), (row[2] or row[1]).strip()))
    return entries, layout


def _transcript_files(input_dir: Path, layout: str) -> list[Entry]:
    """One entry per recording in ``wavs/``, its text read from the ``.txt`` beside it (numbered in name order). Such a
    dataset was refused as having no metadata.csv, leaving the user to write one from the files by hand."""
    folder = input_dir / "wavs"
    if not folder.is_dir():
        check_audio_folder(input_dir)
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    audio = sorted(p for p in files.values() if p.suffix.lower() in AUDIO_EXTENSIONS)
    beside = {p: next((files[p.stem + end] for end in TRANSCRIPTS if p.stem + end in files), None) for p in audio}
    if not any(beside.values()):
        where = f"no recording in {folder.name}/ has a transcript beside it (clip1.txt for clip1.wav)" if audio else "wavs/ is empty"
        raise InputError(f"{input_dir} has no metadata.csv, and {where}; a dataset needs metadata.csv (id|text per line) and "
                         "the recordings in wavs/, or a .txt transcript beside each recording")
    if layout == "multi":
        raise InputError(f"--layout multi needs a metadata.csv of id|speaker|text lines; {input_dir} has a .txt transcript "
                         "beside each recording: leave out --layout for a single-speaker voice")
    entries = []
    for n, (recording, transcript) in enumerate(beside.items(), 1):
        if transcript is None:
            entries.append(Entry(n, recording.stem, "", problem="missing transcript"))
            continue
        try:
            text = " ".join(transcript.read_bytes().decode("utf-8-sig").split())
        except UnicodeDecodeError:
            raise InputError(f"{transcript.name} is not UTF-8; convert it, e.g. iconv -f latin1 -t utf-8") from None
        except OSError as err:
            raise InputError(f"cannot read {transcript.name} ({err.strerror or err})") from None
        entries.append(Entry(n, recording.stem, text, problem="" if text else "empty transcript file"))
    return entries


def _rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """The file's lines that hold something, split at ``|``, with their 1-based numbers. A line the csv reader cannot take
    (a carriage return inside it, a field over its size limit) is an :class:`InputError` naming it: "internal error"."""
    # lines end at \n (or \r\n) only, as piper's own reader has them: str.splitlines also splits at U+2028, U+0085 and
    # form feeds inside a text, which shifted every later line's number and broke that line in two. A file with no \n
    # has classic Mac OS line ends, \r alone (as Excel for Mac's "CSV (Macintosh)" writes it).
    lines = text.split("\r") if "\n" not in text else text.replace("\r\n", "\n").split("\n")
    reader = csv.reader(lines, delimiter="|", quoting=csv.QUOTE_NONE)
    try:
        return [(n, row) for n, row in enumerate(reader, 1) if row]
    except csv.Error as err:
        why = f"cannot be read ({err})"
        if "new-line" in str(err):
            why = "holds a carriage return (\\r) inside it: remove it, or save the file with Unix (LF) or Windows (CRLF) line ends"
        elif "field limit" in str(err):
            why = (f"is over {csv.field_size_limit()} characters: a line is a clip's id and transcript; is this the dataset's "
                   "metadata.csv?")
        raise InputError(f"{path} line {reader.line_num} {why}") from None


def _other_separator(path: Path, rows: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    """``rows`` split at the commas, tabs or semicolons of a file without a ``|`` whose lines hold one of them (a
    spreadsheet's CSV, or one a script wrote): such a file was refused, leaving every line to rewrite by hand. Quoted
    fields are read as a spreadsheet writes them; where the lines do not split into the same columns (a comma in a text
    that is not quoted), each line is the id before its first separator and the text after it."""
    if not all(len(row) == 1 for _, row in rows):
        return rows
    mark, name = next(((m, n) for m, n in SEPARATORS if sum(m in row[0] for _, row in rows) * 2 > len(rows)), ("", ""))
    if not mark:
        return rows
    try:
        split = [(n, next(csv.reader([row[0]], delimiter=mark))) for n, row in rows]
    except csv.Error:
        split = []
    widths = {len(row) for _, row in split if not _is_header(row)}
    body = [row for _, row in split if not _is_header(row)]
    if not (widths == {2} or (widths == {3} and (_looks_like_speakers(body) or _middle_is_text(body)))):
        split = [(n, _first_split(row[0], mark)) for n, row in rows]
        # id,speaker,text with a comma in a text: the speakers are still the short, repeating second column
        three = [(n, [row[0], *_first_split(row[1], mark)] if len(row) == 2 else row) for n, row in split]
        body = [row for _, row in three if not _is_header(row)]
        if body and all(len(row) == 3 for row in body) and _looks_like_speakers(body):
            split = three
    log.warning("%s has no | in it: its lines are read as columns separated by %s (%s)", path.name, name,
                mark.join(["id", "speaker", "text"] if any(len(row) == 3 for _, row in split) else ["id", "text"]))
    return split


def _first_split(line: str, mark: str) -> list[str]:
    """``line`` as its id and its text, at its first ``mark``; a quoted text unquoted."""
    if mark not in line:
        return [line]
    clip, text = line.split(mark, 1)
    if text.startswith('"') and text.rstrip().endswith('"'):
        text = next(csv.reader([text], delimiter=mark), [text])[0] if text.count('"') % 2 == 0 else text
    return [clip, text]


def _refuse_speakerless_multi(path: Path, rows: list[tuple[int, list[str]]], width: int, layout: str) -> None:
    """``--layout multi`` on ``id|text`` lines: they were prepared as one speaker's voice without a word. On LJSpeech's
    ``id|text|normalized`` lines each line's text became a speaker ("speaker The birch canoe slid on ...: 0.0 min")."""
    if layout != "multi" or width not in (2, 3):
        return
    lines = [line for line in rows if not _is_header(line[1])]
    n, row = lines[0] if lines else rows[0]
    if width == 2:
        raise InputError(f"--layout multi needs id|speaker|text lines, but the lines of {path} have two columns (id|text, "
                         f"line {n}: {'|'.join(row)[:40]!r}): put each line's speaker between its id and its text, or leave "
                         "out --layout multi for a single-speaker voice")
    if _middle_is_text([line for _, line in lines]):
        raise InputError(f"--layout multi needs id|speaker|text lines, but the middle column of {path} holds each line's text "
                         f"(line {n}: {'|'.join(row)[:50]!r}): it looks like a single speaker's LJSpeech layout, "
                         "id|text|normalized; pass --layout ljspeech (or leave out --layout) for a single-speaker voice")


def _middle_is_text(rows: list[list[str]]) -> bool:
    """Whether the middle of three columns is surely a transcript, never a speaker: the same as the line's last column on
    most lines (LJSpeech's text and normalized text), or a sentence of its own on most lines, none said twice."""
    middle = [row[1].strip() for row in rows]
    same = sum(bool(value) and value == row[2].strip() for value, row in zip(middle, rows, strict=True))
    sentences = sum(len(value.split()) >= 4 for value in middle)
    return same * 2 > len(rows) or (len(set(middle)) == len(middle) and sentences * 2 > len(rows))


def _clip_id(cell: str) -> str:
    """A line's clip id. ``wavs/clip1.wav``, the file's path in the dataset as some recording tools write it, is the file
    ``clip1.wav`` there: it was dropped as an unsafe id (a path separator) on every line."""
    clip = cell.strip()
    for prefix in ("./wavs/", "wavs/"):
        if clip.startswith(prefix):
            return clip[len(prefix):]
    return clip


SEPARATORS = (("\t", "tabs"), (",", "commas"), (";", "semicolons"))
"""What a spreadsheet or another tool's metadata file separates its columns with, where piper's has ``|``."""


def _columns_problem(rows: list[tuple[int, list[str]]], odd: list[tuple[int, list[str]]], width: int) -> str:
    """Which lines break the columns, and how. A file saved with commas or tabs was told "line(s) 1, 2, 3 ... differ",
    and one with a fourth column on every line the same: differ from what?"""
    if all(len(row) == 1 for _, row in rows):
        kind = next((name for mark, name in SEPARATORS if sum(mark in row[0] for _, row in rows) * 2 > len(rows)), None)
        looks = f"they look separated by {kind}, " if kind else ""
        return f"no line has a |: {looks}put a | between each line's id and its text (line {rows[0][0]}: {rows[0][1][0][:40]!r})"
    if not width:
        counts = Counter(len(row) for _, row in rows)
        shapes = ", ".join(f"{n} line(s) of {count}" for count, n in counts.most_common(3))
        return f"the lines have too many columns ({shapes}): remove the columns that are none of these"
    lines = [n for n, _ in odd]
    return f"line(s) {', '.join(map(str, lines[:10])) + (' ...' if len(lines) > 10 else '')} differ"


def entry_problem(entry: Entry) -> Optional[str]:
    """Why an entry cannot be used safely (``None`` when it can): its id becomes a file name in
    ``wavs/``, and its speaker a name in the voice config, so both must be plain names."""
    from demod_voice.paths import name_problem

    problem = name_problem(entry.clip_id)
    if problem:
        return f"unsafe id (it has {problem})"
    if entry.speaker is not None:
        problem = name_problem(entry.speaker)
        if problem:
            return f"unsafe speaker name (it has {problem})"
    return None


ID_TITLES = {"id", "file", "filename", "file_name", "name", "audio", "audio_file", "wav", "path", "clip", "utterance", "utt"}
COLUMN_TITLES = {"text", "transcript", "transcription", "sentence", "normalized", "normalized_text", "normalised", "speaker",
                 "speaker_id", "speaker_name", "voice"}


def _is_header(row: list[str]) -> bool:
    """Whether a first line holds column titles (``id|text``, ``file|speaker|transcript``), as a spreadsheet writes them."""
    return row[0].strip().lower() in ID_TITLES and all(cell.strip().lower() in COLUMN_TITLES for cell in row[1:])


def _looks_like_speakers(rows: list[list[str]]) -> bool:
    """Whether three columns are id|speaker|text: the middle one short and repeating, and not the last one again (as
    LJSpeech's text and normalized text mostly are). Names with a space ("Jane Doe") once made a multi-speaker dataset
    id|text|normalized without a word, its voices trained as one."""
    column = [row[1].strip() for row in rows]
    same = sum(row[1].strip() == row[2].strip() for row in rows)
    return (all(value and len(value) <= 32 for value in column) and len(set(column)) <= max(1, len(column) // 2)
            and same * 2 <= len(rows))


def check_audio_folder(input_dir: Path) -> None:
    """:class:`InputError` when ``input_dir`` has no ``wavs/`` folder, naming where its recordings are instead. Kept
    beside metadata.csv (or in ``audio/``), every clip was dropped as "missing audio: add the recording"."""
    if (input_dir / "wavs").is_dir():
        return
    places = [input_dir, *sorted(p for p in input_dir.iterdir() if p.is_dir())] if input_dir.is_dir() else []
    for place in places:
        found = sorted(p.name for p in place.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if found:
            # without metadata.csv, the recordings and the .txt transcripts beside them
            listed = (input_dir / "metadata.csv").is_file()
            here = "beside metadata.csv" if listed else f"in {input_dir.name}/ itself"
            them = "them" if listed or not any(place.glob("*.txt")) else "them and their .txt transcripts"
            where, fix = ((here, f"move {them} into") if place == input_dir else
                          (f"in {place.name}/", f"rename {place.name}/ to wavs/, or move {them} into"))
            raise InputError(f"{input_dir} has no wavs/ folder; its {len(found)} recording(s) ({found[0]}, ...) are {where}: "
                             f"{fix} {input_dir / 'wavs'}/")
    raise InputError(f"{input_dir} has no wavs/ folder; a dataset needs metadata.csv (id|text per line) and the recordings "
                     "in wavs/ (wavs/<id>.wav)")


def find_audio(input_dir: Path, clip_id: str, index: Optional[dict[str, Path]] = None) -> Optional[Path]:
    """``wavs/<id>`` with any supported extension, in lower or upper case (``clip20.WAV``, as Windows tools name them), or
    ``id`` already carrying one. ``index`` (from :func:`audio_index`) also finds a name spelled in another Unicode form
    than the metadata's: macOS writes ``café.wav`` with a separate accent (NFD) while a typed ``café`` is one letter (NFC);
    and one in other letter case (``C6.wav`` for ``c6``), as macOS and Windows find it: a dataset made there lost such clips
    as "missing audio" here."""
    folder = input_dir / "wavs"
    direct = folder / clip_id
    if direct.suffix.lower() in AUDIO_EXTENSIONS and direct.is_file():
        return direct
    for ext in AUDIO_EXTENSIONS:
        for spelled in (ext, ext.upper()):
            candidate = folder / f"{clip_id}{spelled}"
            if candidate.is_file():
                return candidate
    if not index:
        return None
    name = unicodedata.normalize("NFC", clip_id)
    return index.get(name) or index.get(_CASE + name.casefold())


_CASE = "\0case:"
"""Before a casefolded key of :func:`audio_index` (no file name holds a NUL)."""


def audio_index(input_dir: Path) -> dict[str, Path]:
    """The audio files in ``wavs/`` by their NFC name and stem (in :data:`AUDIO_EXTENSIONS`' order of preference), and by
    those casefolded after :data:`_CASE` where no other file's is the same."""
    files: list[Path] = []
    try:
        with os.scandir(input_dir / "wavs") as listing:
            files = [Path(entry.path) for entry in listing if entry.is_file()]
    except OSError:
        return {}
    index: dict[str, Path] = {}
    rank = {ext: n for n, ext in enumerate(AUDIO_EXTENSIONS)}
    audio = [(path, unicodedata.normalize("NFC", path.stem), unicodedata.normalize("NFC", path.name))
             for path in sorted((p for p in files if p.suffix.lower() in rank), key=lambda p: rank[p.suffix.lower()])]
    spellings: dict[str, set[str]] = {}
    for path, stem, name in audio:
        index.setdefault(stem, path)
        index.setdefault(name, path)
        for key in (stem, name):
            spellings.setdefault(key.casefold(), set()).add(key)
    for path, stem, name in audio:  # c6 is C6.wav, not when both Ab.wav and aB.wav are there
        for key in (stem, name):
            if len(spellings[key.casefold()]) == 1:
                index.setdefault(_CASE + key.casefold(), path)
    return index


def unlisted_audio(entries: list[Entry], index: dict[str, Path]) -> list[str]:
    """The names of the recordings in ``index`` (:func:`audio_index`) that no line of the metadata names, header and broken
    lines included; found by the index alone, so no path is made of an id."""
    named = set()
    for entry in entries:
        name = unicodedata.normalize("NFC", entry.clip_id)
        named.add(index.get(name) or index.get(_CASE + name.casefold()))
    return sorted({path.name for path in index.values() if path not in named})
