"""Markdown's marks in a chat model's reply, dropped before it is read: ``**bold**``, ``*stressed*``, a ``* `` list
item, a ``## `` heading, a link's address (``[the forecast](https://...)`` is read "the forecast"). espeak-ng names
each mark, so a Home Assistant assistant's "**Done.** I set a timer for *ten minutes*." was read "asterisk asterisk done
asterisk asterisk ... asterisk ten minutes asterisk" (wyoming-piper drops the asterisks, through Home Assistant's
sentence-stream). Arithmetic keeps its star: ``2 * 3`` and ``2*3`` are not emphasis.
"""

from __future__ import annotations

import re

_EMPHASIS = re.compile(r"(?<![\w*])(\*{1,3})(?=[^\s*])([^\n]*?[^\s*])\1(?![\w*])")
"""A run of one to three stars against a word on its inside and not on its outside, closed by the same run on its line."""
_ITEM = re.compile(r"^([ \t]*)(?:[-*+]|(\d{1,3}[.)]))[ \t]+(?=\S)([^\n]*)$", re.MULTILINE)
"""A list item: its mark (``-``, ``*``, ``+``; a number is kept, and read) and its text."""
_ENDED = (".", ",", ";", ":", "!", "?", "…")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(?=\S)", re.MULTILINE)
"""An ATX heading's hashes (``#1 priority`` has no space after its hash: not a heading)."""

_LINK = re.compile(r"(?<!!)\[([^\[\]\n]+)\]\((?:<[^<>\n]*>|[^\s()]+)(?:[ \t]+\"[^\"\n]*\")?\)")
"""A link, ``[words](address "title")``: its words are read, not its address ("example dot com slash weather")."""

_CUT_EMPHASIS = re.compile(r"^([ \t]*)\*{1,3}(?=\w)|(?<=[.!?…:])\*{1,3}(?=[ \t]*$)")
"""A bold run that a stream's sentence end cut in two ("**Done." then "The light is on.**"): a star run before the text's
first word, or after its closing punctuation."""


def unmarked(text: str) -> str:
    """``text`` without the Markdown marks a voice would name (emphasis stars, list stars, heading hashes, link addresses)."""
    text = _LINK.sub(r"\1", _HEADING.sub("", _ITEM.sub(_item, text)))
    for _ in range(3):  # **bold with *stress* inside**: the outer pair first, then the inner
        text, found = _EMPHASIS.subn(r"\2", text)
        if not found:
            break
    return _CUT_EMPHASIS.sub(r"\1", text)


def _item(match: re.Match[str]) -> str:
    """A list item's text without its mark, and a comma where it has no punctuation: items read one after another with
    no pause ran together ("your list: milk eggs bread" was heard "your list, no cakes bread")."""
    indent, number, words = match.group(1), match.group(2), match.group(3).rstrip()
    return f"{indent}{number + ' ' if number else ''}{words}{'' if words.rstrip('*').endswith(_ENDED) else ','}"
