"""Reading the text to speak, and splitting it into sentences a backend can take whole."""

from __future__ import annotations

import re
import sys
from typing import Optional, TextIO

from demod_voice.errors import InputError

_SENTENCE_END = re.compile(r"(?<=[.!?;:。！？；…])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,，、—–])\s*")


def load_text(value: str, stdin: Optional[TextIO] = None) -> str:
    """Return the text given on the command line, or read from stdin when ``value`` is ``-``.

    Raises :class:`InputError` for text that is empty, only white space or holds no letter or digit, or stdin that is not UTF-8.
    """
    if value == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            # Bytes, decoded here: in a C locale Python reads stdin with surrogateescape, and bad bytes became "a lone
            # surrogate" later instead of this message.
            raw = getattr(stream, "buffer", None)
            value = raw.read().decode("utf-8") if raw is not None else stream.read()
        except UnicodeDecodeError as err:
            raise InputError(f"the text on stdin is not valid UTF-8 ({err.reason} at byte {err.start}); convert it with iconv") from None
    if not value.strip():
        raise InputError("the text is empty; give the words to speak, or '-' to read them from stdin")
    if not any(char.isalnum() for char in value):  # "..." or emoji: XTTS made sound of it anyway (exit 0)
        raise InputError(f"the text {value.strip()[:40]!r} holds no words, only punctuation or symbols; give the words to speak")
    return value.strip()


def split_sentences(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, never dropping a word.

    Sentence ends first; a sentence over the limit is cut at clause marks (commas, dashes),
    then between words, and a single word over the limit is cut where it must be.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if sentence.strip():
            pieces.extend(_fit(sentence.strip(), limit))
    return pieces


def _fit(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    clauses = [c for c in _CLAUSE_END.split(sentence) if c.strip()]
    units = clauses if len(clauses) > 1 else sentence.split(" ")
    joiner = " "
    if len(units) == 1:  # one unbroken word longer than the limit
        return [sentence[i : i + limit] for i in range(0, len(sentence), limit)]
    out: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current}{joiner}{unit}" if current else unit
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            out.append(current)
        *full, current = _fit(unit, limit)
        out.extend(full)
    if current:
        out.append(current)
    return out
