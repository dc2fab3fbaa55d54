"""Captions for the finished audio: one cue per take (a sentence, or a few short ones), in SRT or WebVTT."""

from __future__ import annotations

from collections.abc import Iterable

from demod_voice.book.master import Cue

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
    for number, cue in enumerate(cues, 1):
        text = cue.text.replace("-->", "->").strip()
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
        cues.append((_seconds(start), _seconds(end), " ".join(lines[timing + 1:])))
    return cues


def _seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.strip().replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)
