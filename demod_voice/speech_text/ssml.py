"""An SSML subset, parsed with expat with every door to entity expansion shut.

Accepted: ``<speak>`` (the root), ``<break time strength>``, ``<prosody rate volume>``,
``<say-as interpret-as="characters|spell-out|digits|cardinal|number|ordinal|date|time|telephone|currency">`` (:mod:`.say_as`),
``<sub alias>``, ``<phoneme alphabet="ipa" ph>``, ``<p>``, ``<s>``, ``<lang xml:lang>``; and
``<emphasis>`` and ``<mark>``, spoken without effect and with a warning. Any other tag is an error
naming its line and column. A document type declaration (the way to entity expansion, external
entities and "billion laughs") is refused outright; undefined entities are expat's own error; depth,
element count and size are bounded. Breaks become exact silence (:class:`.script.Pause`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Optional
from xml.parsers import expat

from demod_voice.errors import InputError
from demod_voice.speech_text.languages import numbers_only
from demod_voice.speech_text.normalize import after_heading, spans_range
from demod_voice.speech_text.say_as import SayAsError, read
from demod_voice.speech_text.script import Override, Part, Pause, Piece, Script, check_phonemes

MAX_CHARS = 100_000
"""Characters of SSML one text may hold."""
MAX_DEPTH = 24
MAX_ELEMENTS = 5_000
MAX_BREAK = 10.0
"""Seconds one ``<break>`` may ask for."""
MAX_PAUSES = 300.0
"""Seconds of breaks one text may ask for in all."""

STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.75, "x-strong": 1.2}
RATE_RANGE = (0.25, 4.0)
"""The rates a text may be spoken at, nested ``<prosody>`` multiplied: four nested ``rate="0.25"`` made 163 s of audio
from two words, twelve a worker's out-of-memory."""
LOUDEST = 10.0 ** (12.0 / 20.0)
"""The most gain, nested ``<prosody volume>`` multiplied (+12 dB, as one may ask)."""
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.6}
VOLUMES = {"silent": 0.0, "x-soft": 0.35, "soft": 0.6, "medium": 1.0, "default": 1.0, "loud": 1.4, "x-loud": 1.8}
NO_EFFECT = ("emphasis", "mark")
KNOWN = ("speak", "break", "prosody", "say-as", "sub", "phoneme", "p", "s", "lang", *NO_EFFECT)
LEAF = ("say-as", "sub", "phoneme")
"""Elements that hold text only."""
KEYWORD_VALUES = ("strength", "rate", "volume", "time", "interpret-as", "format", "alphabet")
"""Attributes whose values are keywords and units, read in any case (``strength="Strong"``, ``rate="FAST"``,
``interpret-as="Cardinal"``, ``time="1S"``) as the SSML readers people copy from take them; the others (``alias``,
``ph``) are words and sounds, kept as written."""

Words = Callable[[str, str], list[Part]]
"""Plain text and its language -> parts (lexicon words and normalised text)."""


class SsmlError(InputError):
    """SSML that cannot be spoken."""


@dataclass(frozen=True)
class _Frame:
    tag: str
    rate: float
    volume: float
    language: Optional[str]
    attrs: dict


SSML_STARTS = ("<speak", "<?xml", "<!doctype")
"""How an SSML document starts, in any case (:func:`is_ssml`): an XML declaration or a DOCTYPE also makes it SSML, so that
a hostile document is refused, not read aloud."""
SSML_END = re.compile(r"</speak\s*>", re.IGNORECASE)
"""How an SSML document ends, in any case (text streamed in pieces is held until it comes)."""


def is_ssml(text: str) -> bool:
    """Text that is an SSML document (starts with ``<speak``, after an optional XML declaration, white space and a byte
    order mark: a document saved by Notepad was read aloud, tags and all). Tags are read in any case: ``<SPEAK>`` was
    read aloud, "speak" and every tag's name and attributes with the words."""
    return text.lstrip().lstrip("\ufeff")[:9].lower().startswith(SSML_STARTS)


def written_words(text: str) -> Optional[str]:
    """The words of an SSML document as written, without its tags (what a book's captions show; ``""``: a document of
    pauses only); ``None`` when it is not well-formed or declares anything (:func:`parse` says what is wrong)."""
    if len(text) > MAX_CHARS:
        return None
    pieces: list[str] = []
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_: object) -> None:
        raise SsmlError("SSML may not hold a document type declaration")

    parser.StartDoctypeDeclHandler = refuse
    parser.CharacterDataHandler = pieces.append
    # a break, a sentence or a paragraph parts words ("<s>One</s><s>Two</s>"); other tags sit inside a sentence
    parser.StartElementHandler = lambda tag, _attrs: pieces.append(" " if tag.lower() in ("break", "p", "s") else "")
    parser.EndElementHandler = lambda tag: pieces.append(" " if tag.lower() in ("p", "s") else "")
    try:
        parser.Parse(text, True)
    except (expat.ExpatError, SsmlError, UnicodeEncodeError):
        return None
    return " ".join("".join(pieces).split())


def parse(text: str, language: str, words: Words) -> Script:
    """The script of an SSML document spoken in ``language`` (the voice's); :class:`SsmlError` for bad or hostile input."""
    if text.lstrip().startswith("\ufeff"):  # a byte order mark (is_ssml): dropped, the lines kept for messages
        text = text.replace("\ufeff", "", 1)
    if len(text) > MAX_CHARS:
        raise SsmlError(f"the SSML is longer than {MAX_CHARS} characters; split it into several requests")
    return _Builder(language, words).run(text)


class _Builder:
    def __init__(self, language: str, words: Words) -> None:
        self.language = language
        self.words = words
        self.stack: list[_Frame] = []
        self.items: list[object] = []
        self.parts: list[Part] = []
        self.text: list[str] = []
        self.leaf_text: list[str] = []
        self.tail = ""
        """The end of the text read so far, as written (a range cut by a tag is seen whole)."""
        self.held = ""
        """A dash that ended the last text after a number, kept until what follows says whether it is a range's."""
        self.warnings: list[str] = []
        self.elements = 0
        self.pauses = 0.0
        self.parser = expat.ParserCreate()

    def run(self, text: str) -> Script:
        p = self.parser
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartDoctypeDeclHandler = self._doctype
        p.EntityDeclHandler = self._entity
        p.ExternalEntityRefHandler = self._external
        # names in any case (<SPEAK>, <Break TIME="1s"/>), as is_ssml takes them; keyword values too (KEYWORD_VALUES)
        p.StartElementHandler = lambda tag, attrs: self._start(tag.lower(), _folded(attrs))
        p.EndElementHandler = lambda tag: self._end(tag.lower())
        p.CharacterDataHandler = self._characters
        try:
            p.Parse(text, True)
        except UnicodeEncodeError:  # expat is given UTF-8: a lone surrogate cannot be
            raise SsmlError("the SSML holds a lone surrogate (not valid Unicode); send UTF-8 text") from None
        except expat.ExpatError as err:
            raise SsmlError(f"the SSML is not well-formed XML: {expat.ErrorString(err.code)} at line {err.lineno}, "
                            f"column {err.offset + 1}: {_repair(err, text)}") from None
        self._flush()
        items = tuple(item for item in self.items if not (isinstance(item, Pause) and item.seconds <= 0))
        return Script(items, tuple(dict.fromkeys(self.warnings)))  # type: ignore[arg-type]

    # --- refusals ---

    def _where(self) -> str:
        return f"line {self.parser.CurrentLineNumber}, column {self.parser.CurrentColumnNumber + 1}"

    def _doctype(self, *_: object) -> None:
        raise SsmlError(f"SSML may not hold a document type declaration (<!DOCTYPE>, entities) ({self._where()})")

    def _entity(self, *_: object) -> None:
        raise SsmlError(f"SSML may not declare entities ({self._where()})")

    def _external(self, *_: object) -> int:
        raise SsmlError(f"SSML may not refer to external entities ({self._where()})")

    # --- elements ---

    def _start(self, tag: str, attrs: dict) -> None:
        self._check_place(tag)
        top = self.stack[-1] if self.stack else _Frame("", 1.0, 1.0, None, {})
        frame = _Frame(tag, top.rate, top.volume, top.language, attrs)
        if tag in ("prosody", "lang", "p", "s", "break") or (tag == "speak" and attrs.get("xml:lang")):
            self._flush()
        if tag == "prosody":
            rate = top.rate * _rate(attrs.get("rate"), self._where())
            volume = top.volume * _volume(attrs.get("volume"), self._where())
            held = (min(RATE_RANGE[1], max(RATE_RANGE[0], rate)), min(LOUDEST, volume))
            if held != (rate, volume):
                self.warnings.append(f"nested <prosody> at {self._where()} multiply to rate {rate:.3g}, volume {volume:.3g}; "
                                     f"held at rate {held[0]:g}, volume {held[1]:.3g}")
            frame = replace(frame, rate=held[0], volume=held[1])
            if "pitch" in attrs or "contour" in attrs or "range" in attrs:
                self.warnings.append("<prosody> pitch, contour and range have no effect (rate and volume do)")
        elif tag in ("lang", "speak") and attrs.get("xml:lang"):
            code = attrs["xml:lang"].strip().lower()
            frame = replace(frame, language=None if _same(code, self.language) else code)
        elif tag == "break":
            self._pause(attrs)
        elif tag in NO_EFFECT:
            self.warnings.append(f"<{tag}> has no effect on these voices; its text is spoken plainly")
        elif tag == "phoneme" and attrs.get("alphabet", "ipa") not in ("ipa", "x-espeak"):
            raise SsmlError(f"<phoneme alphabet=\"{attrs.get('alphabet')}\"> at {self._where()}: only alphabet=\"ipa\" is read")
        self._check_attrs(tag, attrs)
        self.stack.append(frame)
        if tag in LEAF:
            self._plain()
            self.leaf_text = []

    def _check_place(self, tag: str) -> None:
        """Refuse a tag that is unknown, out of place, or past the bounds."""
        self.elements += 1
        if self.elements > MAX_ELEMENTS or len(self.stack) >= MAX_DEPTH:
            limit = f"{MAX_ELEMENTS} elements" if self.elements > MAX_ELEMENTS else f"{MAX_DEPTH} levels of nesting"
            raise SsmlError(f"the SSML has more than {limit} ({self._where()}); simplify it")
        if tag not in KNOWN:
            raise SsmlError(f"unknown SSML tag <{tag}> at {self._where()}; supported: {', '.join(KNOWN)}")
        if not self.stack and tag != "speak":
            raise SsmlError(f"SSML must start with <speak>, not <{tag}> ({self._where()})")
        if self.stack and tag == "speak":
            raise SsmlError(f"<speak> inside <speak> at {self._where()}")
        if self.stack and self.stack[-1].tag in LEAF:
            raise SsmlError(f"<{self.stack[-1].tag}> holds text only, not <{tag}> ({self._where()})")

    def _check_attrs(self, tag: str, attrs: dict) -> None:
        needed = {"say-as": "interpret-as", "sub": "alias", "phoneme": "ph", "lang": "xml:lang"}.get(tag)
        if needed and needed not in attrs:
            raise SsmlError(f"<{tag}> needs {'an' if needed[:1] in 'aeiou' else 'a'} {needed} attribute ({self._where()})")

    def _end(self, tag: str) -> None:
        frame = self.stack.pop()
        if tag in LEAF:
            content = "".join(self.leaf_text)
            # "10-<say-as ...>20</say-as>"; the say-as reads its own content's sign and zeros ("10<say-as ...>-5</say-as>")
            joined = self._bridged(content, frame.language or self.language, leaf=True)
            if joined != content:
                self.parts.append(joined[: len(joined) - len(content.lstrip())] if content.strip() else joined)
            self.parts.extend(self._leaf(frame, content))
            self.leaf_text = []
        if tag in ("prosody", "lang", "p", "s") or (tag == "speak" and frame.attrs.get("xml:lang")):
            self._flush(frame)

    def _characters(self, data: str) -> None:
        if self.stack and self.stack[-1].tag in LEAF:
            self.leaf_text.append(data)
        elif self.stack:
            self.text.append(data)

    # --- building ---

    def _plain(self, frame: Optional[_Frame] = None) -> None:
        """Turn the plain text gathered so far into parts (lexicon, normalisation) in ``frame``'s language."""
        text = "".join(self.text)
        self.text = []
        if text:
            frame = frame or (self.stack[-1] if self.stack else None)
            language = (frame.language if frame else None) or self.language
            text = self._bridged(text, language)
            if text:
                self.parts.extend(self.words(text, language))

    def _bridged(self, text: str, language: str, leaf: bool = False) -> str:
        """``text`` with a range's dash cut from it by a tag read as the range word: "1990-<prosody>1995</prosody>" and
        "<prosody>1990</prosody>-1995" were "nineteen ninety- nineteen ninety-five" and "...minus one thousand...". A dash
        that ends ``text`` after a number is held until the next text shows what it is."""
        table = numbers_only(language)
        word = table.range_word if table else ""
        held, self.held = self.held, ""
        tail = self.tail + held
        leading = re.match(r"\s?[-–—]", text)
        if word and held and spans_range(tail, text):
            text = f" {word} {text.lstrip()}"
        elif word and not held and not leaf and leading and spans_range(tail, text):
            text = f" {word} {text[leading.end():].lstrip()}"
        else:
            text = held + text  # not a range: a minus ("-<prosody>5</prosody>" is minus five), a hyphen
        if not leaf:
            text = after_heading(tail, text, language)  # "Chapter <prosody>01</prosody>": chapter one
        trailing = re.search(r"(?:(?<=\d)\s?|(?<!\S))[-–—]\s?$", text)
        if trailing:
            self.held, text = text[trailing.start():], text[: trailing.start()]
        self.tail = (tail + text)[-40:]
        return text

    def _flush(self, frame: Optional[_Frame] = None) -> None:
        """End the current piece (with the prosody of ``frame``, else of the innermost open element)."""
        self._plain(frame)
        frame = frame or (self.stack[-1] if self.stack else None)
        if self.parts and "".join(p if isinstance(p, str) else p.written for p in self.parts).strip():
            rate, volume, language = (frame.rate, frame.volume, frame.language) if frame else (1.0, 1.0, None)
            self.items.append(Piece(tuple(self.parts), rate, volume, language))
        self.parts = []

    def _pause(self, attrs: dict) -> None:
        if "time" in attrs:
            seconds = _seconds(attrs["time"], self._where())
        else:
            strength = attrs.get("strength", "medium")
            if strength not in STRENGTHS:
                raise SsmlError(f"<break strength=\"{strength}\"> at {self._where()}: use one of {', '.join(STRENGTHS)}")
            seconds = STRENGTHS[strength]
        self.pauses += seconds
        if self.pauses > MAX_PAUSES:
            raise SsmlError(f"the SSML asks for more than {MAX_PAUSES:.0f} s of breaks in all; shorten them")
        self.items.append(Pause(seconds))

    def _leaf(self, frame: _Frame, content: str) -> list[Part]:
        attrs = frame.attrs
        language = frame.language or self.language
        if frame.tag == "sub":
            return [attrs["alias"]]
        if frame.tag == "phoneme":
            return [Override(content.strip(), check_phonemes(attrs["ph"], f"<phoneme> at {self._where()}"), "", "ssml")]
        kind = attrs["interpret-as"]
        try:
            return [" " + read(kind, attrs.get("format", ""), content.strip(), language) + " "]
        except SayAsError as err:
            raise SsmlError(f"<say-as interpret-as=\"{kind[:20]}\"> at {self._where()}: {err}") from None


_CODES = expat.errors.codes
_REPAIRS = {
    _CODES[expat.errors.XML_ERROR_NO_ELEMENTS]: "the document ends before its closing tags: close each tag opened, the last "
                                                "with </speak>",
    _CODES[expat.errors.XML_ERROR_UNCLOSED_TOKEN]: "the document ends inside a tag: finish it with '>', and end the document "
                                                   "with </speak>",
    _CODES[expat.errors.XML_ERROR_TAG_MISMATCH]: "close each tag with its name as it was opened, the last opened first "
                                                 "(<p><s>...</s></p>), and end the document with </speak>",
    _CODES[expat.errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]: "put all of the text inside the one <speak>...</speak>, or send "
                                                           "each document on its own",
    _CODES[expat.errors.XML_ERROR_UNDEFINED_ENTITY]: "SSML knows only &amp; &lt; &gt; &quot; &apos; and numbered ones "
                                                     "(&#160;): write the character itself",
    _CODES[expat.errors.XML_ERROR_DUPLICATE_ATTRIBUTE]: "give each attribute once",
}
"""What to do about expat's errors that SSML writers meet (a reply cut short, a stray ``&``); :func:`_repair`."""


def _repair(err: expat.ExpatError, text: str) -> str:
    """What to do about ``err``, an expat error in ``text`` (one short clause, for the end of the message)."""
    if err.code in _REPAIRS:
        return _REPAIRS[err.code]
    lines = text.splitlines() or [""]
    line = lines[min(err.lineno, len(lines)) - 1]
    words = line[: err.offset + 1].rpartition(">")[2]  # expat points at or past the bad character ("AT&T": past the T)
    if "&" in words:
        return "write & in the words as &amp;"
    if line[err.offset - 1: err.offset] == "<":
        return "write < in the words as &lt;"
    return ("put each attribute's value in quotes (<break time=\"1s\"/>), write & and < in the words as &amp; and &lt;; "
            "or send the text without <speak> to have it read as plain text")


def _folded(attrs: dict) -> dict:
    """An element's attributes with their names in lower case, and the values of :data:`KEYWORD_VALUES` too."""
    lowered = {name.lower(): value for name, value in attrs.items()}
    return {name: value.lower() if name in KEYWORD_VALUES else value for name, value in lowered.items()}


def _same(code: str, language: str) -> bool:
    return code.split("-")[0] == language.lower().split("-")[0]


def _seconds(value: str, where: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", value)
    if not match:
        raise SsmlError(f"<break time=\"{value[:20]}\"> at {where}: write it as 500ms or 1.5s")
    seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    if seconds > MAX_BREAK:
        raise SsmlError(f"<break time=\"{value[:20]}\"> at {where}: at most {MAX_BREAK:.0f}s per break")
    return seconds


def _rate(value: Optional[str], where: str) -> float:
    if value is None:
        return 1.0
    value = value.strip()
    if value in RATES:
        return RATES[value]
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)(%?)", value)
    if match:
        number = float(match.group(1))
        factor = (1.0 + number / 100.0 if value[0] in "+-" else number / 100.0) if match.group(2) else number
        if RATE_RANGE[0] <= factor <= RATE_RANGE[1]:
            return factor
    raise SsmlError(f"<prosody rate=\"{value[:20]}\"> at {where}: use x-slow..x-fast, a percentage (80%) or a factor from 0.25 to 4")


def _volume(value: Optional[str], where: str) -> float:
    if value is None:
        return 1.0
    value = value.strip()
    if value in VOLUMES:
        return VOLUMES[value]
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*db", value)  # folded: dB, DB
    if match and -40.0 <= float(match.group(1)) <= 12.0:
        return 10.0 ** (float(match.group(1)) / 20.0)
    raise SsmlError(f"<prosody volume=\"{value[:20]}\"> at {where}: use silent, x-soft..x-loud or decibels from -40dB to +12dB")
