"""Reading the text to speak, and splitting it into sentences a backend can take whole."""

from __future__ import annotations

import re
import sys
from typing import Optional, TextIO

from demod_voice.errors import InputError

_SENTENCE_END = re.compile(r"(?<=[.!?;:。！？；…])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,，、—–])\s*")
_NOT_AN_END = re.compile(r"(?:\b(?:Mrs?|Ms|Mx|Dr|Prof|Sr|Jr|St|Mt|Fr|Rev|Capt|Col|Gen|Lt|Sgt|Gov|Sen|Hon|vs)|(?<![\w.])[A-Z])\.$")
"""A full stop that ends a title or an initial before a name ("Mr. Smith", "J. R. R. Tolkien"), not a sentence."""


def load_text(value: str, stdin: Optional[TextIO] = None) -> str:
    """Return the text given on the command line, or read from stdin when ``value`` is ``-``.

    Raises :class:`InputError` for text that is empty, only white space or holds no letter or digit, or stdin that is not UTF-8.
    """
    if value == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream is None:  # started with fd 0 closed ('<&-'): Python has no stdin at all
            raise InputError("standard input is closed: pipe the text in (echo TEXT | demod-voice ... -) or give it as an argument")
        try:
            # Bytes, decoded here: in a C locale Python reads stdin with surrogateescape, and bad bytes became "a lone
            # surrogate" later instead of this message.
            raw = getattr(stream, "buffer", None)
            value = raw.read().decode("utf-8-sig") if raw is not None else stream.read()  # -sig: Notepad's byte order mark
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
    for sentence in _sentences(" ".join(text.split())):
        pieces.extend(_fit(sentence, limit))
    return pieces


def _sentences(text: str) -> list[str]:
    """Sentences, where a full stop after a title or an initial ("Mr. Smith", "J. R. Tolkien"), or an end mark that a
    lowercase word follows ("at 3 p.m. on Monday", "“Stop!” he cried."), ends none: a book's takes broke there, each
    with a sentence's pause and falling voice ("see Mister. [pause] Smith about the boat")."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if out and (_NOT_AN_END.search(out[-1]) or (piece[0].islower() and out[-1][-1] not in ";:；")):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


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
