"""Telephone numbers: read digit by digit, group by group ("five five five, one two three, four five six seven"), in the
shapes people write them; a pass of :mod:`.normalize`."""

from __future__ import annotations

import functools
import re

from demod_voice.speech_text import numbers as num
from demod_voice.speech_text.languages import Table

_TELEPHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?|\(\d{2,4}\)[ .-]?)\d{2,4}(?:[ .-]\d{2,4}){1,4}\b")
_PHONE_SHAPES = (
    re.compile(r"(?<![\w.,/+-])\d{3}([. ])\d{3}\1\d{4}(?![\w]|[.,-]\d)"),  # 555.123.4567, 555 123 4567
    re.compile(r"(?<![\w.,/+-])(?:1-)?\d{2,4}(?:-\d{2,4}){2,}(?![\w]|[.,-]\d)"),  # 555-123-4567, 1-800-555-1234, 123-45-6789
    re.compile(r"(?<![\w.,/+-])\d{3} \d{3} (?!000\b)\d{3}(?![\w]|[ .,]\d)"),  # 555 123 456 (not 100 000 000: a number)
    re.compile(r"(?<![\w.,/+-])(?<!\d )0\d{2,4}(?: \d{3,4}){1,2}(?![\w]|[ .,]\d)|(?<![\w.,/+-])0\d{2,4} \d{5,8}\b"),  # 020 7946 0958, 030 1234567
    re.compile(r"\b\d{3}-\d{4}\b"),  # 555-1234
)
"""Telephone numbers written with no ``+`` or brackets, in groups: each group is read digit by digit (those in spaced groups
not where the language groups a number's thousands with spaces: "123 456 789" is a number in French)."""


def in_groups(number: str, table: Table) -> str:
    """Each group of digits in ``number`` digit by digit, a pause between groups ("" when it holds none)."""
    return ", ".join(num.digits(group, table) for group in re.findall(r"\d+", number))


def said(text: str, table: Table) -> str:
    """Telephone numbers read digit by digit, group by group (a pass of :func:`.normalize.normalize`)."""


    def digits(m: re.Match[str]) -> str:
        return in_groups(m.group(0), table)

    def local(m: re.Match[str]) -> str:  # "555-1234", unless a plural heading says it is a range ("pages 100-1000")
        return m.group(0) if _ranged(table).search(m.string, 0, m.start()) else digits(m)

    text = _TELEPHONE.sub(digits, text)
    for shape in _PHONE_SHAPES:
        if " " not in table.group or " " not in shape.pattern:
            text = shape.sub(local if shape is _PHONE_SHAPES[-1] else digits, text)
    return text


@functools.lru_cache(maxsize=32)
def _ranged(table: Table) -> re.Pattern[str]:
    """A plural heading word ("pages", "chapters", "pp.") just before a number: what follows is a range."""
    words = "|".join(re.escape(w) + "s" for w in table.headings if not w.endswith(".")) or "(?!)"
    return re.compile(rf"\b(?:{words}|pp\.)\s*$", re.IGNORECASE)
