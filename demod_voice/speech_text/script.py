"""What prepared text is: pieces to speak (with their prosody, language and per-word pronunciations)
and exact pauses between them; and how a backend's job carries it.

:func:`~demod_voice.speech_text.prepare.prepare` makes a :class:`Script`; :func:`render` turns it
into the :class:`Speak` / :class:`Pause` segments one backend reads (Piper takes a word's phonemes
as a ``[[ ... ]]`` block, which piper-tts passes straight to the phoneme ids; XTTS reads text, so
it gets the respelling). Pure data, no engine: both sides import it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Optional, Union

from demod_voice.errors import InputError


@dataclass(frozen=True)
class Override:
    """A word whose pronunciation is given (a lexicon entry, an SSML ``<phoneme>``)."""

    written: str
    """The word as the text wrote it."""
    phonemes: str = ""
    """IPA as espeak-ng writes it (what Piper voices are trained on); empty: none given."""
    respell: str = ""
    """Text spoken instead, for engines that read text (XTTS); empty: none given."""
    source: str = "lexicon"
    """Where it came from (``lexicon``, ``ssml``), for messages."""


Part = Union[str, Override]


@dataclass(frozen=True)
class Piece:
    """Text spoken in one go with one prosody: plain text and overridden words in order."""

    parts: tuple[Part, ...]
    """Plain text (already normalised) and :class:`Override` words."""
    rate: float = 1.0
    """Speaking rate (> 1 faster)."""
    volume: float = 1.0
    """Amplitude factor."""
    language: Optional[str] = None
    """A language other than the voice's (SSML ``<lang>``); ``None``: the voice's."""


@dataclass(frozen=True)
class Pause:
    """Exact silence: this many seconds of zero samples."""

    seconds: float


@dataclass(frozen=True)
class Script:
    """Prepared text: pieces and pauses in order, and what the preparation had to warn about."""

    items: tuple[Union[Piece, Pause], ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Speak:
    """A piece as one backend reads it: the text, with each override already in the backend's form."""

    text: str
    rate: float = 1.0
    volume: float = 1.0
    language: Optional[str] = None


Segment = Union[Speak, Pause]

MAX_PHONEMES = 200
"""Characters in one word's phonemes."""


def check_phonemes(phonemes: str, where: str) -> str:
    """Phonemes safe to put in a ``[[ ]]`` block (no brackets, no control characters); :class:`InputError` otherwise."""
    phonemes = phonemes.strip()
    if len(phonemes) > MAX_PHONEMES:
        raise InputError(f"{where}: phonemes longer than {MAX_PHONEMES} characters")
    if "[" in phonemes or "]" in phonemes or any(not ch.isprintable() for ch in phonemes):
        raise InputError(f"{where}: phonemes may not hold brackets or control characters; write IPA such as 'ŋwˈiən'")
    return phonemes


def render(script: Script, reads_phonemes: bool, languages: Collection[str] = (), voice_language: str = "",
           known_phonemes: Optional[Collection[str]] = None) -> tuple[tuple[Segment, ...], tuple[str, ...]]:
    """The segments one backend speaks, and the warnings (the script's and any tag the backend cannot honour).

    ``reads_phonemes``: the backend takes ``[[phonemes]]`` (Piper); otherwise it gets respellings.
    ``languages``: languages a piece may switch to (empty: the voice speaks one language).
    ``known_phonemes``: the voice's phoneme symbols; a word's phoneme outside them is an :class:`InputError`.
    """
    warnings = list(script.warnings)
    segments: list[Segment] = []
    for item in script.items:
        if isinstance(item, Pause):
            segments.append(item)
            continue
        language = item.language
        if language is not None and language not in languages:
            shown = language if len(language) <= 40 else language[:37] + "..."  # a client's attribute, any length
            warnings.append(f"<lang xml:lang=\"{shown}\"> cannot switch this voice's language"
                            f"{f' ({voice_language})' if voice_language else ''}: spoken in the voice's own")
            language = None
        text = "".join(_part(part, reads_phonemes, known_phonemes, warnings) for part in item.parts)
        if text.strip():
            segments.append(Speak(text, item.rate, item.volume, language))
    return tuple(segments), tuple(dict.fromkeys(warnings))


def _part(part: Part, reads_phonemes: bool, known: Optional[Collection[str]], warnings: list[str]) -> str:
    if isinstance(part, str):
        return part
    if reads_phonemes and part.phonemes:
        unknown = sorted({ch for ch in part.phonemes if ch != " "} - set(known)) if known is not None else []
        if unknown:
            named = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in unknown)  # a combining mark alone shows as nothing
            raise InputError(f"the pronunciation of '{part.written}' ({part.source}) uses phoneme(s) {named} "
                             "that this voice does not know; use the voice's espeak-ng IPA symbols")
        return f"[[{part.phonemes}]]"
    if part.respell:
        return part.respell
    if part.phonemes:
        what = "<phoneme>" if part.source == "ssml" else f"lexicon entry '{part.written}'"
        warnings.append(f"{what} gives phonemes only, which this engine cannot read: '{part.written}' is spoken as written "
                        "(add a respelling to the lexicon entry)")
    return part.written


def plain_text(segments: tuple[Segment, ...]) -> Optional[str]:
    """The text of a script that is just one piece at the voice's own prosody (a job needs nothing more), else ``None``."""
    if len(segments) == 1 and isinstance(segments[0], Speak):
        only = segments[0]
        if only.rate == 1.0 and only.volume == 1.0 and only.language is None:
            return only.text
    return None


def spoken_text(segments: tuple[Segment, ...]) -> str:
    """All the text of ``segments`` joined (what a job shows as its text)."""
    return " ".join(s.text.strip() for s in segments if isinstance(s, Speak))
