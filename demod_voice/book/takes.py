"""Chapters into takes: the units a backend speaks, a recogniser checks and a caption shows.

A take is one sentence, or a few very short sentences of one paragraph joined (a lone "Yes." is
spoken and heard badly alone), never more than the backend's limit; a sentence over the limit is
cut at clause marks, then between words (:func:`demod_voice.audio.text.split_sentences`), never
inside a word. One sentence per take costs nothing in speed: the engine hands a worker many takes
of one voice at once and the backend batches their sentences together, as it does for ``batch`` rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from demod_voice.audio.text import split_sentences
from demod_voice.book.read import Book

TAKE_CHARS = {"xtts": 240}
"""Most characters of one take by backend: XTTS-v2's English limit is 250 (beyond it, it garbles);
Piper and the others take :data:`DEFAULT_TAKE_CHARS`."""
DEFAULT_TAKE_CHARS = 400
SHORT_TAKE = 24
"""A sentence shorter than this is joined to the next one of its paragraph."""
CHARS_PER_SECOND = 15.0
"""Speaking rate for estimates (English at an audiobook pace, about 160 words a minute)."""


def speakable(text: str, language: str) -> str:
    """PRONUNCIATION HOOK: the text as the voice should read it (numbers, abbreviations, lexicon
    entries). The identity until the text-normalisation package lands; captions keep the book's text."""
    return text


@dataclass(frozen=True)
class Take:
    """One take of a chapter."""

    chapter: int
    """Index of its chapter in :attr:`Book.chapters`."""
    index: int
    """Position within the chapter."""
    shown: str
    """The book's words (captions, verification)."""
    spoken: str
    """What the voice is given (after :func:`speakable`)."""
    pause: float
    """Seconds of silence after it (a sentence pause, or a paragraph pause after a paragraph's last take)."""

    @property
    def digest(self) -> str:
        """The take's words by content (its file name carries the full fingerprint)."""
        return hashlib.sha256(self.spoken.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TakeRules:
    """How chapters become takes."""

    max_chars: int = DEFAULT_TAKE_CHARS
    language: str = "en"
    sentence_pause: float = 0.35
    paragraph_pause: float = 0.9
    speak_titles: bool = True
    """Read each chapter's title as its first take."""


def rules_for(backend: str, language: str = "en", **pauses: float) -> TakeRules:
    """The rules for ``backend`` (its take limit) and language."""
    return TakeRules(max_chars=TAKE_CHARS.get(backend, DEFAULT_TAKE_CHARS), language=language, **pauses)


def chapter_takes(book: Book, rules: TakeRules) -> list[list[Take]]:
    """Every chapter's takes, in reading order."""
    out = []
    for number, chapter in enumerate(book.chapters):
        paragraphs = ([chapter.title] if rules.speak_titles and chapter.titled else []) + list(chapter.paragraphs)
        takes: list[Take] = []
        for paragraph in paragraphs:
            pieces = group(split_sentences(paragraph, rules.max_chars), rules.max_chars)
            for position, piece in enumerate(pieces):
                last = position == len(pieces) - 1
                takes.append(Take(number, len(takes), piece, speakable(piece, rules.language),
                                  rules.paragraph_pause if last else rules.sentence_pause))
        out.append(takes)
    return out


def group(sentences: list[str], limit: int) -> list[str]:
    """Join a sentence shorter than :data:`SHORT_TAKE` to the next (or, at the end, the previous) one while within ``limit``."""
    out: list[str] = []
    carry = ""
    for sentence in sentences:
        joined = f"{carry} {sentence}" if carry else sentence
        if carry and len(joined) > limit:
            out.append(carry)
            joined = sentence
        if len(joined) < SHORT_TAKE:
            carry = joined
            continue
        out.append(joined)
        carry = ""
    if carry:
        if out and len(out[-1]) + 1 + len(carry) <= limit:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


def estimate_seconds(chars: int) -> float:
    """Audio time a text of ``chars`` characters takes to read, roughly."""
    return chars / CHARS_PER_SECOND
