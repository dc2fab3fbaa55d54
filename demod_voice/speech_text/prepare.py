"""The one way text becomes what a job speaks: SSML or plain text -> lexicon words -> normalised
text -> pieces and pauses, rendered for the backend that will speak them.

A backend's request side calls :func:`for_job` once per job; nothing else in the tree reads
SSML, applies lexicons or normalises.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Optional, Union

from demod_voice.errors import InputError, NothingToSpeak
from demod_voice.logs import printable
from demod_voice.speech_text import ssml
from demod_voice.speech_text.lexicon import EMPTY, Lexicon, split_words
from demod_voice.speech_text.normalize import normalize
from demod_voice.speech_text.script import Part, Pause, Piece, Script, Segment, Speak, plain_text, render, spoken_text

log = logging.getLogger(__name__)

MAX_WARNINGS_LOGGED = 5
"""Warnings about one text said in the log, the rest counted in one line: each ``<lang>`` of another language is a
warning of its own, and a speech request of a hundred of them wrote a hundred lines."""


@dataclass(frozen=True)
class TextOptions:
    """How a request's text is read."""

    normalize: bool = True
    """Spell out numbers, money, dates, times, units, abbreviations, URLs (``--no-normalize``: leave them to the engine)."""
    lexicon: Lexicon = EMPTY
    """Pronunciations, already merged from every scope (:func:`.lexicon.merge`)."""
    ssml: Optional[bool] = None
    """Read the text as SSML; ``None``: when it starts with ``<speak>``."""
    rate: float = 1.0
    """A speaking rate on top of the voice's (OpenAI ``instructions``), multiplied into every piece."""
    sentence_pause: float = 0.0
    """Seconds of exact silence after each sentence (OpenAI ``instructions`` asking for pauses); 0: none added."""
    max_spoken: int = 0
    """Characters the text may grow to when read (lexicon respellings and phonemes, SSML, normalisation); 0: no bound.
    A server sets it: a one-letter word respelled in 400 characters made a 4,000-character request 780,000 to speak."""


@dataclass(frozen=True)
class Prepared:
    """A job's text as its backend reads it."""

    text: str
    """The text to speak when it is one plain piece, else all pieces' text joined (for messages)."""
    segments: Optional[tuple[Segment, ...]]
    """Pieces and exact pauses, when the text needs more than one plain piece; ``None`` otherwise."""
    warnings: tuple[str, ...] = ()
    """Tags or entries the backend cannot honour (already logged)."""


def words(text: str, language: str, options: TextOptions) -> list[Part]:
    """Plain ``text`` as lexicon words and (normalised) text between them."""
    parts = split_words(text, options.lexicon)
    if not options.normalize:
        return parts
    if len(parts) > 1:
        around = _normalized_around(parts, language)
        if around is not None:
            return around
    return [normalize(part, language) if isinstance(part, str) else part for part in parts]


_STAND_IN = str.maketrans("0123456789", "bfghjknpqr")
"""Letters that write a lexicon word's stand-in: no vowel, no Roman numeral, nothing normalisation reads."""


def _normalized_around(parts: list[Part], language: str) -> Optional[list[Part]]:
    """The text around lexicon words normalised as one text, each word stood in for by a made-up word of its case:
    normalised alone, "Call Dr. " (no capital after it) was "Call drive." and "Dr. Nguyen" became "drive. new yen".
    ``None`` when a stand-in did not come back whole (then each run is normalised alone)."""
    held: dict[str, Part] = {}
    written = []
    for number, part in enumerate(parts):
        if isinstance(part, str):
            written.append(part)
            continue
        stand_in = f"zw{str(number).translate(_STAND_IN)}zw"
        stand_in = stand_in.capitalize() if part.written[:1].isupper() else stand_in
        held[stand_in] = part
        written.append(stand_in)
    text = "".join(written)
    if any(text.count(stand_in) != 1 for stand_in in held):
        return None
    said = normalize(text, language)
    pieces = re.split("(" + "|".join(held) + ")", said)
    if sorted(p for p in pieces if p in held) != sorted(held):
        return None
    return [held[piece] if piece in held else piece for piece in pieces if piece]


def prepare(text: str, language: str, options: TextOptions = TextOptions()) -> Script:
    """The script of ``text`` (plain or SSML) in ``language``, before any backend's choices."""
    if options.ssml or (options.ssml is None and ssml.is_ssml(text)):
        script = ssml.parse(text, language, lambda piece, lang: words(piece, lang, options))
    else:
        script = Script((Piece(tuple(words(text, language, options))),))
    if options.rate != 1.0:
        script = Script(tuple(Piece(i.parts, i.rate * options.rate, i.volume, i.language) if isinstance(i, Piece) else i
                              for i in script.items), script.warnings)
    if options.sentence_pause > 0:
        script = Script(tuple(item for i in script.items for item in _paused(i, options.sentence_pause)), script.warnings)
    return script


_SENTENCE_END = re.compile(r"(?<=[.!?;。！？])\s+")


def _paused(item: Union[Piece, Pause], seconds: float) -> list[Union[Piece, Pause]]:
    """A piece cut at its sentence ends with ``seconds`` of silence after each sentence but the last."""
    if isinstance(item, Pause):
        return [item]
    sentences: list[list[Part]] = [[]]
    for part in item.parts:
        if not isinstance(part, str):
            sentences[-1].append(part)
            continue
        first, *rest = _SENTENCE_END.split(part)
        sentences[-1].append(first)
        sentences.extend([piece] for piece in rest)
    out: list[Union[Piece, Pause]] = []
    for parts in sentences:
        if "".join(p if isinstance(p, str) else p.written for p in parts).strip():
            out += [Piece(tuple(parts), item.rate, item.volume, item.language), Pause(seconds)]
    return out[:-1] if out else [item]


def text_problem(text: str) -> Optional[str]:
    """What makes ``text`` unspeakable whatever its length (``None``: nothing)."""
    if "\x00" in text:
        return "holds a NUL character"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "holds a lone surrogate (not valid Unicode)"
    return None


def for_job(text: str, language: str, options: TextOptions, reads_phonemes: bool, languages: Collection[str] = (),
            known_phonemes: Optional[Collection[str]] = None) -> Prepared:
    """What a backend's job speaks for ``text``: see :func:`.script.render` for the backend's arguments.

    Raises :class:`InputError` for SSML that cannot be spoken, for text with nothing to say, and for text no engine can
    take (a NUL, a lone surrogate: every front door, Wyoming and books included, gets a one-line refusal, not a worker's
    error)."""
    problem = text_problem(text)
    if problem:
        raise InputError(f"the text {problem}; send plain UTF-8 text")
    segments, warnings = render(prepare(text, language, options), reads_phonemes, languages, language, known_phonemes)
    for warning in warnings[:MAX_WARNINGS_LOGGED]:
        log.warning("%s", printable(warning))  # they quote the text (an SSML attribute): a newline in it forged a log line
    if len(warnings) > MAX_WARNINGS_LOGGED:
        log.warning("and %d more warnings about the same text", len(warnings) - MAX_WARNINGS_LOGGED)
    if not segments:
        raise NothingToSpeak("the text has nothing to speak; give some words")
    spoken = sum(len(s.text) for s in segments if isinstance(s, Speak))
    if options.max_spoken and spoken > options.max_spoken:
        raise InputError(f"the text grows to {spoken} characters when read (lexicon respellings, SSML, numbers spelled out); "
                         f"this server speaks at most {options.max_spoken} per request: shorten the text or the respellings")
    plain = plain_text(segments)
    if plain is not None:
        if not reads_phonemes and not any(ch.isalnum() for ch in plain):
            # A Piper voice's phonemizer found nothing in "..." or "-" (400); XTTS made a second of sounds from them (200).
            raise NothingToSpeak("the text has no words to speak (only punctuation or symbols); give some words")
        return Prepared(plain, None, warnings)
    return Prepared(spoken_text(segments) or "(pause)", segments, warnings)
