"""Captions for the finished audio: one cue per take (a sentence, or a few short ones), in SRT or WebVTT.

Where the voice gave word timings with a take (Piper, from its durations: :mod:`.timings`) or the
recogniser heard the take back (``--verify``), WebVTT cues also time each word (``<hh:mm:ss.mmm>``
before it, as karaoke-style players show them), the voice's timings first: the book's words are
aligned with the spoken (heard) ones by their letters; a stretch of the book's words said
differently ("$3.50" spoken "three dollars fifty") starts where its spoken words start, and its
other words take their time from their neighbours by length. SRT has no word timing.
"""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence

from demod_voice.book.master import Cue

MIN_MATCHED = 0.5
"""Fewer of a cue's words than this share found in the recogniser's: no word timings for it (the take was garbled)."""

FORMATS = ("srt", "vtt")


def stamp(seconds: float, separator: str = ".") -> str:
    """``hh:mm:ss.mmm`` (SRT: a comma before the milliseconds)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render(cues: Iterable[Cue], fmt: str) -> str:
    """The cues as an SRT or WebVTT document (times in the file's own time line)."""
    separator = "," if fmt == "srt" else "."
    blocks = ["WEBVTT"] if fmt == "vtt" else []
    for number, cue in enumerate((cue for cue in cues if cue.text.strip()), 1):  # a take of pauses only shows nothing
        text = cue.text.replace("-->", "->").strip()
        if fmt == "vtt":
            text = _timed_text(cue) if cue.words else _escaped(text)
        timing = f"{stamp(cue.start, separator)} --> {stamp(cue.end, separator)}"
        blocks.append(f"{number}\n{timing}\n{text}")
    return "\n\n".join(blocks) + "\n"


def parse(document: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of an SRT or WebVTT document (for checks and tests)."""
    cues = []
    for block in document.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.strip().split("\n") if line]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        start, _, end = lines[timing].partition("-->")
        cues.append((_seconds(start), _seconds(end), html.unescape(TAG.sub("", " ".join(lines[timing + 1:])))))
    return cues


def _seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.strip().replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


TAG = re.compile(r"<[^>]*>")
"""A WebVTT tag inside cue text (word timings among them)."""


def word_tags(document: str) -> list[list[tuple[float, str]]]:
    """Per cue of a WebVTT document: each word timed by a tag, with its time (for checks and tests)."""
    out = []
    for block in document.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.strip().split("\n") if line]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is not None:
            text = " ".join(lines[timing + 1:])
            out.append([(_seconds(at), html.unescape(word)) for at, word in re.findall(r"<(\d\d:\d\d:\d\d\.\d{3})>(\S+)", text)])
    return out


def _timed_text(cue: Cue) -> str:
    """The cue's words with a timestamp tag before each but the first (WebVTT wants them after the cue's start,
    rising, and before its end: a word whose time would not be is left untagged)."""
    parts, last = [], cue.start
    for number, (at, word) in enumerate(cue.words):
        word = _escaped(word.replace("-->", "->"))
        if number and last < at < cue.end:
            parts.append(f"<{stamp(at)}>{word}")
            last = at
        else:
            parts.append(word)
    return " ".join(parts)


def _escaped(text: str) -> str:
    """Cue text as WebVTT wants it: ``&``, ``<`` and ``>`` as character references ("Fish & Chips" stays text; a "<"
    opened a tag, and players hid the words after it)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _letters(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", word).lower() if ch.isalnum())


def word_times(cue: Cue, heard: Sequence[tuple[float, float, str]]) -> tuple[tuple[float, str], ...]:
    """Each word of ``cue.text`` with its start in the chapter, from the recogniser's ``heard`` words (times in the
    take's file); ``()`` when too few words match. Words it heard differently are placed between their neighbours
    by their length; every time lies within the cue."""
    tokens = cue.text.split()
    if not tokens or not heard:
        return ()
    ours = [_letters(token) for token in tokens]
    theirs = [_letters(word) for _, _, word in heard]
    starts: list = [None] * len(tokens)
    matched, ours_at, theirs_at = 0, 0, 0
    for block in difflib.SequenceMatcher(None, ours, theirs, autojunk=False).get_matching_blocks():
        if ours_at < block.a and theirs_at < block.b:
            # Words said differently ("$3.50" said "three dollars fifty"): the first starts where the first of those was heard.
            starts[ours_at] = heard[theirs_at][0] + cue.offset
        for i in range(block.size):
            if ours[block.a + i]:
                starts[block.a + i] = heard[block.b + i][0] + cue.offset
                matched += 1
        ours_at, theirs_at = block.a + block.size, block.b + block.size
    if matched < MIN_MATCHED * len(tokens):
        return ()
    return tuple(zip(_fill(starts, [len(t) for t in tokens], cue.start, cue.end), tokens, strict=True))


def _fill(starts: list, lengths: list[int], begin: float, end: float) -> list[float]:
    """Known starts clamped into [begin, end] and made rising; unknown ones spread between their neighbours by length."""
    known = [(i, min(max(t, begin), end)) for i, t in enumerate(starts) if t is not None]
    anchors = ([(0, begin)] if not known or known[0][0] != 0 else []) + known + [(len(starts), end)]
    out = [begin] * len(starts)
    for (i, t0), (j, t1) in zip(anchors, anchors[1:], strict=False):
        t1 = max(t1, t0)
        span = sum(lengths[i:j]) or 1
        position = t0
        for k in range(i, min(j, len(starts))):
            out[k] = position
            position += (t1 - t0) * lengths[k] / span
    for k in range(1, len(out)):
        out[k] = max(out[k], out[k - 1])
    return out
