"""Reading the text to speak, and splitting it into sentences a backend can take whole."""

from __future__ import annotations

import codecs
import os
import re
import select
import sys
from collections.abc import Iterator
from typing import Optional, TextIO

from demod_voice.errors import InputError

_SENTENCE_END = re.compile(r"(?<=[.!?;:。！？；…])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,，、—–])\s*")
_NOT_AN_END = re.compile(r"(?:\b(?:Mrs?|Ms|Mx|Dr|Prof|Sr|Jr|St|Mt|Fr|Rev|Capt|Col|Gen|Lt|Sgt|Gov|Sen|Hon|vs)|(?<![\w.])[A-Z])\.$")
"""A full stop that ends a title or an initial before a name ("Mr. Smith", "J. R. R. Tolkien"), not a sentence."""
_BEFORE_A_NUMBER = re.compile(r"\b(?:No|Nos|no|nos|Vol|Vols|vol|vols|Fig|Figs|fig|figs|pp?|Ch|ch|Art|art|Sec|sec|Op|op|Ex|ex|"
                              r"Eq|eq|Ref|ref|Tab|tab|Pt|pt)\.$|(?<![\w.])\d{1,2}s\.$")
"""An abbreviation whose full stop a number follows ("No. 10 Downing Street", "Vol. 2", "pp. 12-15", shillings before
pence: "2s. 6d."): no sentence's end.
The take ended "he arrived at No." (said "no") and the next began with the number."""
_MERIDIEM = re.compile(r"\b[ap]\.m\.$", re.IGNORECASE)
_ZONE = re.compile(r"\(?(?:[ECMP][SD]?T|AK[SD]?T|H[SD]?T|UTC|GMT|BST|CES?T|IST|JST|AE[SD]T)\b")
"""A time zone after "p.m." ("at 7:30 p.m. ET on ESPN"): the full stop ends no sentence (the next began "ET", read "et")."""
_TITLE_REACH = 8
"""Characters before a full stop that :data:`_NOT_AN_END` and :data:`_BEFORE_A_NUMBER` need to see: the longest title
(``Capt``) or abbreviation (``Vols``, ``12s``) and the character before."""
# Text arriving in pieces: a sentence is complete at end punctuation (and closing quotes) followed by white space, at a
# CJK full stop, or at a blank line.
_ARRIVED_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+|\n\s*\n")
_BLANK_LINE = re.compile(r"\n\s*\n")
_SSML_END = "</speak>"


def load_text(value: str, stdin: Optional[TextIO] = None) -> str:
    """Return the text given on the command line, or read from stdin when ``value`` is ``-``.

    Raises :class:`InputError` for text that is empty, only white space or holds no letter or digit, or stdin that is not UTF-8.
    """
    if value == "-":
        stream = _stdin(stdin)
        try:
            # Bytes, decoded here: in a C locale Python reads stdin with surrogateescape, and bad bytes became "a lone
            # surrogate" later instead of this message.
            raw = getattr(stream, "buffer", None)
            value = raw.read().decode("utf-8-sig") if raw is not None else stream.read()  # -sig: Notepad's byte order mark
        except UnicodeDecodeError as err:
            raise _not_utf8(err, err.start) from None
    return check_text(value)


def check_text(value: str) -> str:
    """``value`` stripped; :class:`InputError` when it is empty or holds no letter or digit."""
    if not value.strip():
        raise InputError("the text is empty; give the words to speak, or '-' to read them from stdin")
    if not any(char.isalnum() for char in value):  # "..." or emoji: XTTS made sound of it anyway (exit 0)
        raise InputError(f"the text {value.strip()[:40]!r} holds no words, only punctuation or symbols; give the words to speak")
    return value.strip()


LINE_PAUSE = 0.05
"""Seconds stdin may stay quiet after a newline before :func:`read_as_it_comes` takes the line as complete. A file
piped in comes faster than that, so its hard-wrapped lines still join into sentences; a log line, a line typed or an
LLM's paragraph is complete when its writer pauses."""


def read_as_it_comes(stdin: Optional[TextIO] = None) -> Iterator[str]:
    """The text on stdin piece by piece, as soon as it can be read (``tail -f log |``, an LLM's reply), decoded as UTF-8.
    A newline after which the input pauses is given again, as a blank line: it ends a sentence
    (:class:`~demod_voice.speech_text.stream.SentenceStream`), so a line without an end mark is spoken when it is complete,
    not with the next one. Raises :class:`InputError` as :func:`load_text` does."""
    stream = _stdin(stdin)
    raw = getattr(stream, "buffer", stream)
    try:
        fd = raw.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's StringIO): all of it at once
        yield load_text("-", stdin)
        return
    decoder, read = codecs.getincrementaldecoder("utf-8-sig")(), 0
    while True:
        data = os.read(fd, 1 << 16)
        held = len(decoder.getstate()[0])
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            raise _not_utf8(err, read - held + err.start) from None
        read += len(data)
        if text:
            yield text
        if not data:
            return
        if text.endswith("\n") and not select.select([fd], [], [], LINE_PAUSE)[0]:
            yield "\n"


def _stdin(stdin: Optional[TextIO]) -> TextIO:
    stream = stdin if stdin is not None else sys.stdin
    if stream is None:  # started with fd 0 closed ('<&-'): Python has no stdin at all
        raise InputError("standard input is closed: pipe the text in (echo TEXT | demod-voice ... -) or give it as an argument")
    return stream


def _not_utf8(err: UnicodeDecodeError, at: int) -> InputError:
    return InputError(f"the text on stdin is not valid UTF-8 ({err.reason} at byte {at}); convert it with iconv")


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
        if out and (_NOT_AN_END.search(out[-1]) or (piece[0].islower() and out[-1][-1] not in ";:；")
                    or (piece[0].isdigit() and _BEFORE_A_NUMBER.search(out[-1]))
                    or (_MERIDIEM.search(out[-1]) and _ZONE.match(piece))):
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


class SentenceStream:
    """Text arriving in pieces (from an LLM, a pipe); gives each sentence as soon as it is complete, and a document
    (SSML) whole once it closes (Home Assistant streams every message to a streaming server: a document cut at its
    first sentence end was refused as not well-formed)."""
    def __init__(self, starts: tuple[str, ...] = (), end: Optional[re.Pattern[str]] = None) -> None:
        self.starts, self.end = starts, end
        """How a document given whole starts (in lowercase; the text's start is compared in any case) and ends (SSML's,
        from :mod:`demod_voice.speech_text.ssml`)."""
        self.pending = ""
        self.seen = False
        """Whether any text arrived."""
        self.checked = 0
        """How far into :attr:`pending` every end mark is known to end no sentence (a title's or an initial's), or no
        document's end has begun: later text cannot change that, so it is not looked at again."""

    def add(self, text: str, limit: int = 0, whole: Optional[int] = None) -> list[str]:
        """Append ``text``; return the sentences it completed. Text running past ``limit`` characters
        without a sentence end is given in pieces cut between words (memory stays bounded); a document
        past ``whole`` characters (default: ``limit``; 0: none) is given as it is, to be refused as too long."""
        self.pending += text
        self.seen = self.seen or bool(text.strip())
        whole = limit if whole is None else whole
        out = []
        while True:
            if self._in_whole():
                # its end starts at a '<': one before the last '<' already here would have been found
                end = self._document_end()
                if end is None:
                    self.checked = max(0, self.pending.rfind("<"))
                    if whole and len(self.pending) > whole:
                        out.append(self.pending.strip())
                        self.pending, self.checked = "", 0
                    return out
                document, self.pending, self.checked = self.pending[: end.end()].strip(), self.pending[end.end():], 0
                out.append(document)
                continue
            match = self._end()
            if match is None:
                break
            sentence, self.pending, self.checked = self.pending[: match.end()].strip(), self.pending[match.end():], 0
            if sentence:
                out.append(sentence)
        while limit and len(self.pending) > limit:
            cut = self.pending.rfind(" ", 1, limit)
            cut = cut if cut > 0 else limit
            out.append(self.pending[:cut].strip())
            self.pending, self.checked = self.pending[cut:].lstrip(), 0
        return out

    def _end(self) -> Optional[re.Match]:
        """The first end mark that ends a sentence: not the full stop of a title or an initial before a name ("Dr. Smith",
        "J. R. Tolkien": "Doctor." was spoken alone, with a sentence's fall and pause), nor a mark that a lowercase word
        follows ("at 5 p.m. on Monday", '"Really?" she asked', as :func:`split_sentences` reads them), unless a blank
        line follows it. What follows is only looked at when it has come: a mark with nothing after its white space yet
        ends its sentence at once, as before, so no caller waits for one more character (an LLM's tokens bring their
        space with the next word: " on" comes with its space, and the mark before it is weighed with it).
        Each end mark is weighed once, by the few characters around it: every piece of a text of initials ("A. B. C.
        ..."), sent a few characters at a time, weighed every mark held again against all the text before it: a
        Wyoming client's 4 KB of them, in 3-character chunks, kept the server's event loop busy for over a minute."""
        for match in _ARRIVED_END.finditer(self.pending, self.checked):
            if _BLANK_LINE.search(match.group()):
                return match
            stop = match.start() + len(match.group().rstrip())
            after, before = self.pending[match.end(): match.end() + 1], self.pending[max(0, stop - _TITLE_REACH): stop]
            # "No. 10", "Vol. 2", "pp. 12": the number is the abbreviation's, as split_sentences reads it (a stream ended
            # a sentence "he lives at No." and began the next "10 Downing Street")
            goes_on = (after.islower() or (after.isdigit() and _BEFORE_A_NUMBER.search(before) is not None)
                       or (_MERIDIEM.search(before) is not None and _ZONE.match(self.pending, match.end()) is not None))
            if not goes_on and not _NOT_AN_END.search(before):
                return match
            if match.end() < len(self.pending):  # white space that more text may lengthen (into a blank line) is not final
                self.checked = match.end()
        return None

    def _document_end(self) -> Optional[re.Match]:
        """The end of the document held: its first end tag outside a comment or a CDATA section (``<!-- </speak> -->``
        ended a streamed document there, and both halves were refused as not well-formed XML)."""
        start = self.checked
        while self.end and (end := self.end.search(self.pending, start)) is not None:
            head = self.pending[: end.start()]
            if head.rfind("<!--") <= head.rfind("-->") and head.rfind("<![CDATA[") <= head.rfind("]]>"):
                return end
            start = end.end()
        return None

    def _in_whole(self) -> bool:
        """Whether the text held starts a document given whole (or may yet: ``<spe`` waits for what follows)."""
        head = self.pending.lstrip()[: max(map(len, self.starts), default=0)].lower()
        return bool(head) and any(head.startswith(start) or start.startswith(head) for start in self.starts)

    def finish(self) -> str:
        """The rest (the last sentence, without its end)."""
        rest, self.pending, self.checked = self.pending.strip(), "", 0
        return rest
