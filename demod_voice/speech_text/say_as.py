"""SSML ``<say-as>``: what its content is read as, after the W3C note "SSML 1.0 say-as attribute values" (cardinal,
ordinal, characters, date with its ten formats, telephone) and the common extensions (digits, currency).

:func:`read` raises :class:`SayAsError` with what is wrong; :mod:`.ssml` adds the tag's place.
"""

from __future__ import annotations

import calendar
import re
from typing import Optional

from demod_voice.speech_text import numbers as num
from demod_voice.speech_text.languages import Table, numbers_only
from demod_voice.speech_text.normalize import date_words, read_money, seconds_time
from demod_voice.speech_text.telephones import in_groups

KINDS = ("characters", "spell-out", "digits", "cardinal", "number", "ordinal", "date", "time", "telephone", "currency")
DATE_FORMATS = ("mdy", "dmy", "ymd", "ym", "my", "md", "dm", "d", "m", "y")
"""The note's date formats: which of day, month and year the content holds, in its order."""
TIME_FORMATS = ("hms12", "hms24", "hm12", "hm24", "h12", "h24")
"""The note's time formats: hours, minutes, seconds, on a 12- or 24-hour clock."""
_TIME = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?(?:[:.](\d{2}))?\s*(?:([aApP])\.?\s?[mM]\.?)?")
PLUS = {"en": "plus", "de": "plus", "fr": "plus", "es": "más", "it": "più", "pt": "mais", "nl": "plus", "pl": "plus"}
"""How a leading ``+`` is read (``<say-as interpret-as="cardinal">+5</say-as>``)."""
MINUS_SIGNS = "-\u2212\u2013"
"""A hyphen-minus, the minus sign, and the en dash that word processors make of it."""


class SayAsError(ValueError):
    """Content that cannot be read as its ``interpret-as`` says."""


def read(kind: str, fmt: str, content: str, language: str) -> str:
    """``content`` read as ``kind`` (``format`` ``fmt``, may be empty) in ``language``."""
    table = numbers_only(language)
    if kind in ("characters", "spell-out"):
        return characters(content, table)
    if kind not in KINDS:
        raise SayAsError(f"use one of {', '.join(KINDS)}")
    if table is None:
        raise SayAsError(f"there are no number words for language '{language}'")
    if (kind == "date" and not table.months) or (kind == "currency" and not table.currencies):
        what = "dates" if kind == "date" else "amounts of money"
        raise SayAsError(f"{what} are not read in language '{language}' (numbers only); write it in words")
    if kind == "date":
        said = date(fmt or _default_date_format(content, table), content, table)
        if said is None:
            raise SayAsError(f"'{content[:20]}' is not a date in format {fmt or 'mdy/dmy/ymd'} "
                             f"(formats: {', '.join(DATE_FORMATS)})")
        return said
    if kind == "time":
        return time(fmt, content, table)
    return _READERS[kind](content, table)


def time(fmt: str, content: str, table: Table) -> str:
    """A clock time (``14:30``, ``2:30pm``, ``09:05:30``) read as the language reads times; ``format`` says 12 or 24 hours."""
    match = _TIME.fullmatch(content.strip())
    if fmt and fmt not in TIME_FORMATS:
        raise SayAsError(f"format=\"{fmt[:20]}\" is no time format (formats: {', '.join(TIME_FORMATS)})")
    if not match:
        raise SayAsError(f"'{content.strip()[:20]}' is not a time such as 14:30 or 2:30pm")
    hour, minute, second = (int(g) if g else 0 for g in match.groups()[:3])
    meridiem = (match.group(4) or "").lower()
    twelve = fmt.endswith("12") or bool(meridiem)
    if minute > 59 or second > 59 or hour > (12 if twelve else 24) or (twelve and hour == 0):
        raise SayAsError(f"'{content.strip()[:20]}' is no time on a {12 if twelve else 24}-hour clock")
    if second and table.code != "en":
        raise SayAsError("seconds are read in English only; give hours and minutes")
    return seconds_time(hour, minute, second, meridiem, table)


def digits(content: str, table: Table) -> str:
    """Each digit on its own."""
    if not re.fullmatch(r"[\d\s]+", content):
        raise SayAsError(f"needs digits only, not '{content[:20]}'")
    return num.digits(content, table)


def telephone(content: str, table: Table) -> str:
    """Each group of digits digit by digit, a pause between groups."""
    said = in_groups(content, table)
    if not said:
        raise SayAsError("holds no digits")
    return said


def currency(content: str, table: Table) -> str:
    """An amount with its currency's symbol or code."""
    said = read_money(content, table)
    if said is None:
        raise SayAsError(f"needs an amount with a currency symbol or code ($42.01, 42.01 EUR), not '{content[:20]}'")
    return said


def characters(content: str, table: Optional[Table]) -> str:
    """Each character on its own: letters as capitals (espeak reads a lone "a" as the article), digits as words, the
    symbols the language has words for (``-`` dash, ``.`` dot) as those words; other marks are not read."""
    out = []
    for ch in content:
        if ch.isspace():
            continue
        if ch.isdigit() and table:
            out.append(num.words(int(ch), table))
        elif ch.isalpha():
            out.append(ch.upper())
        elif table and ch in table.symbols:
            out.append(table.symbols[ch])
    return " ".join(out)


def _sign(content: str, table: Table) -> tuple[str, str]:
    """(the sign's word or "", the content without its sign)."""
    stripped = content.strip()
    if stripped[:1] and stripped[0] in MINUS_SIGNS:
        return table.minus if table.minus != "-" else "minus", stripped[1:].lstrip()
    if stripped.startswith("+"):
        return PLUS.get(table.code, ""), stripped[1:].lstrip()
    return "", stripped


def cardinal(content: str, table: Table) -> str:
    """A signed whole or decimal number in the language's writing (``-5``, ``+3``, ``1,234.5``)."""
    sign, written = _sign(content, table)
    grouped = rf"\d{{1,3}}(?:[{re.escape(table.group)}]\d{{3}})+|" if table.group else ""
    if not re.fullmatch(rf"(?:{grouped}\d+)(?:{re.escape(table.decimal)}\d+)?", written) or len(re.sub(r"\D", "", written)) > 15:
        raise SayAsError(f"needs a number of up to 15 digits, not '{content.strip()[:20]}'")
    return f"{sign} {num.number(written, table)}".strip()


def ordinal(content: str, table: Table) -> str:
    """A whole number read as an ordinal; its written suffix (``21st``, ``3e``) may be there."""
    suffix = rf"(?:{table.ordinal_suffixes})?" if table.ordinal_suffixes else ""
    match = re.fullmatch(rf"(\d{{1,15}}){suffix}\.?", content.strip())
    if not match:
        raise SayAsError(f"needs a whole number of up to 15 digits, not '{content.strip()[:20]}'")
    return num.ordinal(int(match.group(1)), table)


def _default_date_format(content: str, table: Table) -> str:
    """No format: a four-digit first field is a year (ISO ``2026-05-12``), else the language's own order."""
    return "ymd" if re.match(r"\s*\d{4}\D", content) else "mdy" if table.date_order == "mdy" else "dmy"


def date(fmt: str, content: str, table: Table) -> Optional[str]:
    """A date in one of :data:`DATE_FORMATS`; ``None`` when the content is not one (a wrong count of fields, no such
    day: 30 February)."""
    values = [int(v) for v in re.findall(r"\d+", content)]
    if fmt not in DATE_FORMATS or len(values) != len(fmt) or not table.months:
        return None
    found = dict(zip(fmt, values, strict=True))
    day, month, year = found.get("d"), found.get("m"), found.get("y")
    if month is not None and not 1 <= month <= 12:
        return None
    if day is not None:
        longest = calendar.monthrange(year or 2000, month)[1] if month else 31  # 2000: a leap year, 29 February is one
        if not 1 <= day <= longest:
            return None
        if month is not None:
            return date_words(day, month, year, table)
        return num.ordinal(day, table)
    said_year = num.words(year, table, "year") if year is not None else ""
    if month is None:
        return said_year
    joint = " de " if table.code in ("es", "pt") else " "
    return table.months[month - 1] + (joint + said_year if said_year else "")


_READERS = {"digits": digits, "telephone": telephone, "cardinal": cardinal, "number": cardinal, "ordinal": ordinal,
            "currency": currency}
