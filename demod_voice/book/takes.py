"""Chapters into takes: the units a backend speaks, a recogniser checks and a caption shows.

A take is one sentence, or a few very short sentences of one paragraph joined (a lone "Yes." is
spoken and heard badly alone), never more than the backend's limit; a sentence over the limit is
cut at clause marks, then between words (:func:`demod_voice.audio.text.split_sentences`), never
inside a word; the limit is the backend's own (its request side's ``take_chars``). One sentence
per take costs nothing in speed: the engine hands a worker many takes of one voice at once and the
backend batches their sentences together, as it does for ``batch`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from demod_voice.audio.text import split_sentences
from demod_voice.book.contents import Book
from demod_voice.book.read import said_title
from demod_voice.speech_text.ssml import is_ssml, written_words

SHORT_TAKE = 24
"""A sentence shorter than this is joined to the next one of its paragraph."""
CHARS_PER_SECOND = 15.0
"""Speaking rate for estimates (English at an audiobook pace, about 160 words a minute)."""


@dataclass(frozen=True)
class Take:
    """One take of a chapter."""

    chapter: int
    """Index of its chapter in :attr:`Book.chapters`."""
    index: int
    """Position within the chapter."""
    text: str
    """The book's words: what captions show and verification compares with. The take's job is given them as they are;
    the backend's request side reads them (numbers spelled out, lexicon words: :mod:`demod_voice.speech_text`), once."""
    pause: float
    """Seconds of silence after it (a sentence pause, or a paragraph pause after a paragraph's last take)."""
    said: str = ""
    """The words as they are meant where that is not as written (a heading's Roman numeral as a number:
    :func:`~demod_voice.book.read.said_title`; a ``<speak>`` paragraph's document, whose words without tags are
    :attr:`text`); empty: ``text``."""

    @property
    def reading(self) -> str:
        """What the voice is given and verification hears for: :attr:`said`, else :attr:`text`."""
        return self.said or self.text


@dataclass(frozen=True)
class TakeRules:
    """How chapters become takes."""

    max_chars: int = 400
    """Most characters of one take: the backend's :attr:`~demod_voice.backends.plugin.RequestSide.take_chars`."""
    sentence_pause: float = 0.35
    paragraph_pause: float = 0.9
    speak_titles: bool = True
    """Read each chapter's title as its first take."""


def chapter_takes(book: Book, rules: TakeRules) -> list[list[Take]]:
    """Every chapter's takes, in reading order."""
    out = []
    for number, chapter in enumerate(book.chapters):
        title = rules.speak_titles and chapter.titled
        said = said_title(chapter.title) if title else ""
        takes: list[Take] = []
        if said:  # a heading said otherwise than written is one take: short, and its words are not cut apart
            takes.append(Take(number, 0, chapter.title, rules.paragraph_pause, said))
        for paragraph in ([chapter.title] if title and not said else []) + list(chapter.paragraphs):
            if is_ssml(paragraph):  # one document, spoken whole: cut at its sentence ends, it was not well-formed XML
                words = written_words(paragraph)  # "": only pauses (no caption); None: its error is the take's
                takes.append(Take(number, len(takes), paragraph if words is None else words, rules.paragraph_pause,
                                  "" if words is None else paragraph))
                continue
            pieces = group(split_sentences(paragraph, rules.max_chars), rules.max_chars)
            for position, piece in enumerate(pieces):
                last = position == len(pieces) - 1
                takes.append(Take(number, len(takes), piece, rules.paragraph_pause if last else rules.sentence_pause))
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
