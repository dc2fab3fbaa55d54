"""Text normalisation: what a reader says for what is written (numbers, money, dates, times,
percentages, units, abbreviations, URLs and e-mail addresses), per language.

One pass per kind, most specific first, so that a date's digits are read as a date before the
number pass sees them. Words come from num2words and :mod:`.languages`; the passes are ours.
A language without a table (:func:`.languages.numbers_only`) gets its numbers read, nothing else.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Optional

from demod_voice.speech_text import english, telephones
from demod_voice.speech_text import numbers as num
from demod_voice.speech_text.languages import Table, numbers_only

Pass = Callable[[str, Table], str]

_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_LONG_DIGITS = re.compile(rf"\d{{{num.MAX_DIGITS + 1},}}")
_SPACE_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:[\u00a0\u202f]\d{3})+|(?: \d{3}){2,})(?![\d]|[.,]\d)")
_RANGE = re.compile(r"(?<![\w.,/+-])(\d+(?:[.,]\d+)?)\s?[-–—]\s?(\d+(?:[.,]\d+)?)(?![\w]|[.,]\d|[-–—]\d)")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4})\b")
_TIME = re.compile(r"(?<![\d.,:])\b([01]?\d|2[0-4])[:h]([0-5]\d)(?:\s?([ap])\.?\s?m\.?(?=[\s,;!?–—-]|$))?(?![\d:])", re.IGNORECASE)
_DATIVE_DE = re.compile(r"\b(?:am|vom|zum|dem|beim|den|bis zum)\s+$", re.IGNORECASE)
_ARTICLE_DE = re.compile(r"\b(?:der|die|das)\s+$", re.IGNORECASE)
_LOCATIVE_PL = re.compile(r"\b(?:o|po)\s+$", re.IGNORECASE)
@functools.lru_cache(maxsize=32)
def _number_re(table: Table) -> str:
    grouped = rf"\d{{1,3}}(?:[{re.escape(table.group)}]\d{{3}})+(?!\d)|" if table.group else ""
    return rf"(?:{grouped}\d+)(?:{re.escape(table.decimal)}\d+)?"


def _compiled(table: Table, template: str, flags: int = 0) -> re.Pattern[str]:
    return _compile(template.replace("NUMBER", _number_re(table)), flags)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def normalize(text: str, language: str) -> str:
    """``text`` with what is written as symbols and digits spelled out in ``language``'s words.

    Unchanged for a language normalisation knows nothing of (see :mod:`.languages`)."""
    table = numbers_only(language)
    if table is None:
        return text
    own = english.PASSES if table.code == "en" else ()
    passes: tuple[Pass, ...] = (_addresses, _headings, _dates, _times, telephones.said, *own, _grouped, _ranges, _money, _percentages,
                                _units, _ordinals, _abbreviations, _years, _numbers) if table.months else (_grouped, _numbers)
    # a run of digits too long to be one number (an id, a code) is read digit by digit before any pass sees it
    text = _LONG_DIGITS.sub(lambda m: num.digits(m.group(0), table), text)
    for step in passes:
        text = step(text, table)
    return re.sub(r"[ \t]{2,}", " ", text)


def spell_address(address: str, table: Table) -> str:
    """``www.example.com/a`` -> ``www dot example dot com slash a``: each symbol its word, numbers read."""
    address = re.sub(r"^(?:https?|ftp)://", "", address, flags=re.IGNORECASE)
    parts = re.split(r"([.@/:_-])", address)
    out = []
    for part in parts:
        if part in table.symbols:
            out.append(table.symbols[part])
        elif part.isdigit():
            out.append(num.words(int(part), table))
        elif part:
            out.append(part)
    return " ".join(out)


def _addresses(text: str, table: Table) -> str:
    text = _URL.sub(lambda m: spell_address(m.group(0), table), text)
    return _EMAIL.sub(lambda m: spell_address(m.group(0), table), text)


@functools.lru_cache(maxsize=32)
def _heading_pattern(table: Table) -> re.Pattern[str]:
    """A heading word (its plural too: "Chapters 01-03"), a number with leading zeros, and perhaps a range's second."""
    words = "|".join(re.escape(w) + ("" if w.endswith(".") else "s?") for w in sorted(table.headings, key=len, reverse=True))
    number = r"0+(\d{1,4})(?!\d|[:/.,]\d)"
    return re.compile(rf"(?<![\w.])((?:{words})(?!\w)\s*#?\s*){number}(?:(\s?[-–—]\s?)0*(\d{{1,4}})(?!\d|[:/.,]\d))?",
                      re.IGNORECASE)


def _headings(text: str, table: Table) -> str:
    """``Chapter 01``, ``Track 07``, ``No. 05``: the number, not its digits ("chapter zero one"), which a number with leading
    zeros is everywhere else ("Agent 007", a ZIP code)."""
    if not table.headings:
        return text
    return _heading_pattern(table).sub(lambda m: m.group(1) + str(int(m.group(2))) +
                                       (m.group(3) + str(int(m.group(4))) if m.group(4) else ""), text)


def after_heading(before: str, text: str, language: str) -> str:
    """``text`` with a leading number's zeros dropped when ``before`` ends with a heading word ("Chapter " and "01", cut
    apart by an SSML tag)."""
    table = numbers_only(language)
    if table is None or not table.headings or not re.match(r"\s*#?\s*0", text):
        return text
    joined = _headings(before + text, table)
    return joined[len(before):] if joined.startswith(before) and joined != before + text else text


def date_words(day: int, month: int, year: Optional[int], table: Table, before: str = "") -> Optional[str]:
    """A date read the language's way (``May twelfth, twenty twenty-six``); ``None`` if it is not a date.

    ``before``: the text before it, which decides a German ordinal's ending (``am zwölften``)."""
    if not (1 <= month <= 12 and 1 <= day <= 31 and table.months):
        return None
    name = table.months[month - 1]
    said_year = "" if year is None else num.words(year, table, "year")
    code = table.code
    if code == "en":
        return f"{name} {num.ordinal(day, table)}" + (f", {said_year}" if year is not None else "")
    if code == "de":
        # the ordinal's ending follows the article before it: am zwölften, der zwölfte, (alone) zwölfter
        ending = "n" if _DATIVE_DE.search(before[-12:]) else "" if _ARTICLE_DE.search(before[-8:]) else "r"
        return f"{num.ordinal(day, table)}{ending} {name} {said_year}".strip()
    if code == "pl":
        return f"{num.genitive_ordinal_pl(day, table)} {name}" + (f" {num.genitive_ordinal_pl(year, table)} roku" if year else "")
    first = {"fr": "premier", "es": "primero", "it": "primo", "pt": "primeiro"}.get(code)
    said_day = first if day == 1 and first else num.words(day, table)
    joint = " de " if code in ("es", "pt") else " "
    return f"{said_day}{joint}{name}" + (f"{joint}{said_year}" if year is not None else "")


def _dates(text: str, table: Table) -> str:
    def iso(m: re.Match[str]) -> str:
        return date_words(int(m.group(3)), int(m.group(2)), int(m.group(1)), table, m.string[: m.start()]) or m.group(0)

    def numeric(m: re.Match[str]) -> str:
        first, second, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        day, month = (second, first) if table.date_order == "mdy" and first <= 12 else (first, second)
        return date_words(day, month, year, table, m.string[: m.start()]) or m.group(0)

    text = _ISO_DATE.sub(iso, text)
    text = _NUMERIC_DATE.sub(numeric, text)
    months = "|".join(table.months)
    if table.code == "en":
        # a month's abbreviation too ("Jan. 5, 2026": the abbreviations pass, later, made it "January five")
        short = {written: month for written, month in table.abbreviations.items() if month in table.months}
        named = "|".join([*table.months, *map(re.escape, short)])
        pattern = _compile(rf"\b({named})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?", 0)
        text = pattern.sub(lambda m: date_words(int(m.group(2)), table.months.index(short.get(m.group(1), m.group(1))) + 1,
                                                int(m.group(3)) if m.group(3) else None, table) or m.group(0), text)
    elif table.code in ("de", "pl"):
        dot = r"\." if table.code == "de" else r"\.?"
        pattern = _compile(rf"\b(\d{{1,2}}){dot}\s+({months})\b(?:\s+(\d{{4}})\b)?(?:\s+r\.)?", 0)
        text = pattern.sub(lambda m: date_words(int(m.group(1)), table.months.index(m.group(2)) + 1,
                                                int(m.group(3)) if m.group(3) else None, table, m.string[: m.start()])
                           or m.group(0), text)
    return text


def time_words(hour: int, minute: int, meridiem: str, table: Table, before: str = "") -> str:
    """A clock time read out (``fourteen thirty``, ``vierzehn Uhr dreißig``, ``nine oh five p m``).

    ``before``: the text before it (Polish ``o czternastej``: the hour's case follows the preposition)."""
    code = table.code
    said_hour = table.feminine.get(hour) or (_PL_HOURS[hour] if code == "pl" else num.words(hour, table))
    if code == "pl" and hour and _LOCATIVE_PL.search(before[-6:]):
        said_hour = " ".join(w[:-1] + ("iej" if w.endswith(("ga", "ka")) else "ej") for w in said_hour.split())
    said_minute = num.words(minute, table) if minute else ""
    if code == "en":
        tail = f" {meridiem.upper()}M" if meridiem else ""  # capitals: espeak spells them out as letters
        if not minute:
            return f"{said_hour} o'clock{tail}" if not meridiem else f"{said_hour}{tail}"
        return f"{said_hour} {'oh ' if minute < 10 else ''}{said_minute}{tail}"
    if code == "pl":
        return f"{said_hour} {'zero ' if 0 < minute < 10 else ''}{said_minute}".strip()
    joiners = {"de": ("Uhr", ""), "fr": ("heures" if hour != 1 else "heure", ""), "nl": ("uur", ""),
               "es": ("", "y"), "it": ("", "e"), "pt": ("", "e")}
    unit, conjunction = joiners.get(code, ("", ""))
    return " ".join(part for part in (said_hour, unit, conjunction if minute else "", said_minute) if part)


_PL_HOURS = ("zero", "pierwsza", "druga", "trzecia", "czwarta", "piąta", "szósta", "siódma", "ósma", "dziewiąta", "dziesiąta",
             "jedenasta", "dwunasta", "trzynasta", "czternasta", "piętnasta", "szesnasta", "siedemnasta", "osiemnasta",
             "dziewiętnasta", "dwudziesta", "dwudziesta pierwsza", "dwudziesta druga", "dwudziesta trzecia")


_HOUR_MERIDIEM = re.compile(r"(?<![\d.,:])\b(1[0-2]|0?[1-9])\s?([ap])(?:\.\s?m(\.)|m)(?=[\s,;!?.–—-]|$)", re.IGNORECASE)
"""``7 am``, ``3pm``, ``11 p.m.``: an hour with no minutes (espeak read "am" as the word)."""
_DOTTED_MERIDIEM = re.compile(r"(?<![\d.,:])\b(1[0-2]|0?[1-9])\.([0-5]\d)\s?([ap])(?:\.\s?m(\.)|m)(?=[\s,;!?.]|$)", re.IGNORECASE)
"""``9.05pm``, ``11.30 a.m.``: British English writes the minutes after a full stop (only with am/pm: 9.05 is a number)."""
_MERIDIEM_RANGE = re.compile(r"(?<=[AP]M)\s?[-–—]\s?(?=\w)")
_WRITTEN_UHR = re.compile(r"\b((?:[01]?\d|2[0-4]):[0-5]\d)\s+Uhr\b")


def _times(text: str, table: Table) -> str:
    if table.code == "en":
        # "a.m." at a sentence's end holds its full stop too
        text = _HOUR_MERIDIEM.sub(lambda m: time_words(int(m.group(1)), 0, m.group(2).lower(), table) +
                                  ("." if m.group(3) and re.match(r"\s*(?:[A-Z]|$)", m.string[m.end():]) else ""), text)
        text = _DOTTED_MERIDIEM.sub(lambda m: time_words(int(m.group(1)), int(m.group(2)), m.group(3).lower(), table) +
                                    ("." if m.group(4) and re.match(r"\s*(?:[A-Z]|$)", m.string[m.end():]) else ""), text)
    elif table.code == "de":
        text = _WRITTEN_UHR.sub(r"\1", text)  # "14:30 Uhr": the time is read with its "Uhr" ("vierzehn Uhr dreißig Uhr")

    def said(m: re.Match[str]) -> str:
        if m.group(0)[len(m.group(1))] == "h" and table.code != "fr":
            return m.group(0)  # 14h30 is French
        hour = int(m.group(1))
        if (m.group(3) and hour > 12) or (hour == 24 and m.group(2) != "00"):  # 24:00, midnight, ends a day; 24:30 is none
            return m.group(0)
        return time_words(hour, int(m.group(2)), m.group(3) or "", table, m.string[: m.start()])

    text = _TIME.sub(said, text)
    # "9am-5pm", "9:00 a.m.-5:00 p.m.": nine AM to five PM (the dash joined the two)
    return _MERIDIEM_RANGE.sub(" to ", text) if table.code == "en" else text


def _grouped(text: str, table: Table) -> str:
    """Thousands grouped by spaces where the language's own separator is another ("1 000 000" was "one zero zero"): by a
    typographic space, or by plain spaces in two groups or more ("3 100 gram bars" stays two numbers). After the
    telephone pass, so that "+1 555 123 456" is still read digit by digit."""
    if " " in table.group:
        return text
    return _SPACE_GROUPED.sub(lambda m: re.sub(r"\D", "", m.group(0)), text)


def _ranges(text: str, table: Table) -> str:
    """``1990-1995``, ``5-10``, ``2024–25``: the two numbers with the language's word between ("to"); each is then read by
    the passes after this one (as a year, an amount, a plain number). The dash was read as a minus or joined the two
    numbers' words ("nineteen ninety-one thousand nine hundred ninety-five")."""
    if not table.range_word:
        return text
    # the same number twice is no range: "a 50-50 chance" is fifty-fifty
    return _RANGE.sub(lambda m: f"{m.group(1)} {table.range_word} {m.group(2)}" if m.group(1) != m.group(2) else
                      f"{num.number(m.group(1), table)}-{num.number(m.group(2), table)}", text)


def spans_range(before: str, after: str) -> bool:
    """Whether the dash where ``before`` ends or ``after`` starts is a range's ("1990-" and "1995", "10" and "-20"): text
    cut there by a tag is read in pieces, and the dash alone was read as a minus or not at all."""
    joined = before + after
    return any(m.end(1) <= len(before) <= m.start(2) for m in _RANGE.finditer(joined))


SCALES = {"K": "thousand", "k": "thousand", "M": "million", "mn": "million", "B": "billion", "bn": "billion", "tn": "trillion"}
"""English scales written as a letter after an amount ("$50K", "$2bn", "1.5M downloads")."""


def _money(text: str, table: Table) -> str:
    symbols = "|".join(re.escape(s) for s in sorted(table.currencies, key=len, reverse=True))
    scale = r"(?:\s+(million|billion|trillion)\b|(K|k|M|mn|B|bn|tn)(?!\w))?" if table.code == "en" else ""

    def said(amount: str, symbol: str, magnitude: Optional[str]) -> str:
        currency = table.currencies[symbol]
        if magnitude:  # "$3 million", "$50K": the amount, its scale, the plural unit (was "fifty dollarsK")
            return f"{num.number(amount, table)} {SCALES.get(magnitude, magnitude)} {currency[0][-1]}"
        return num.money(amount, currency, table)

    def signed(minus: str, words: str) -> str:  # "-$5", "$-5", "-5 €": the minus is read ("-five dollars" lost it)
        return f"{table.minus} {words}" if minus else words

    before = _compiled(table, rf"(?<![\w-])(-?)({symbols})\s?(-?)(NUMBER){scale}(?![\d])")
    text = before.sub(lambda m: signed(m.group(1) or m.group(3), said(m.group(4), m.group(2), (m.group(5) or m.group(6))
                                                                   if scale else None)), text)
    after = _compiled(table, rf"(?<![\w.,-])(-?)(NUMBER)\s?({symbols})(?![\w])")
    return after.sub(lambda m: signed(m.group(1), said(m.group(2), m.group(3), None)), text)


def read_money(written: str, table: Table) -> Optional[str]:
    """``written`` whole as one amount of money (``$42.01``, ``42.01 EUR``, ``-€5``); ``None`` when it is not one."""
    written = written.strip()
    said = _money(written, table) if table.currencies else written
    return said if said != written and not re.search(r"\d", said) else None


def _percentages(text: str, table: Table) -> str:
    pattern = _compiled(table, r"(?<![\w.,])(-?)(NUMBER)\s?%")
    return pattern.sub(lambda m: (f"{table.minus} " if m.group(1) else "") + f"{num.number(m.group(2), table)} {table.percent}",
                       text)


def _units(text: str, table: Table) -> str:
    units = "|".join(re.escape(u) for u in sorted(table.units, key=len, reverse=True))
    # a unit's own dot before lower case or a comma is the abbreviation's, not a sentence's end ("5 ft. of rope")
    pattern = _compiled(table, rf"(?<![\w.,])(-?)(NUMBER)\s?({units})(?![\w/])(?:\.(?=\s*[a-z,;]))?")

    def said(m: re.Match[str]) -> str:  # "-5°C" is minus five ("5-10 kg" is a range: "-10" follows a digit, no match)
        whole, fraction = num.parse_number(m.group(2), table)
        forms = table.units[m.group(3)]
        noun = num.form(whole, forms, table) if not fraction else forms[-1] if table.code != "pl" else forms[1]
        return (f"{table.minus} " if m.group(1) else "") + f"{num.number(m.group(2), table)} {noun}"

    return pattern.sub(said, text)


def _ordinals(text: str, table: Table) -> str:
    if not table.ordinal_suffixes:
        return text
    pattern = _compile(rf"\b(\d+)({table.ordinal_suffixes})(?!\w)", 0)

    def said(m: re.Match[str]) -> str:
        suffix = m.group(2)
        feminine = suffix.endswith("ª") or (table.code == "fr" and suffix.startswith(("re", "ère")))
        return num.ordinal(int(m.group(1)), table, feminine)

    return pattern.sub(said, text)


@functools.lru_cache(maxsize=32)
def _abbreviation_pattern(table: Table) -> tuple[dict[str, str], re.Pattern[str]]:
    """The words of each of ``table``'s abbreviations (a lower-case one capitalised too: it may open a sentence) and
    one pattern for them all, made once per language (per text, they cost ~5% of preparing a batch's rows)."""
    spelled = dict(table.abbreviations)
    for written, words in table.abbreviations.items():
        if written[:1].islower():
            spelled.setdefault(written[:1].upper() + written[1:], words[:1].upper() + words[1:])
    names = sorted(spelled, key=len, reverse=True)
    return spelled, re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?!\w)(?=\s*(\S?))")


_NOT_NAMES = frozenset({"The", "A", "An", "In", "At", "On", "Of", "To", "From", "By", "For", "And", "But", "Or", "With"})
"""Capitalised words before "St." that are not a street's name ("The St. Lawrence")."""


_ORDINAL_WORD = re.compile(r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|teenth|"
                           r"tieth|hundredth|thousandth)\Z")
"""An English ordinal as the ordinals pass has already spelled it ("42nd" is "forty-second" when "St." is read)."""


def _word_before(m: re.Match[str]) -> str:
    """The word just before ``m``; empty when there is none or punctuation ends it ("Paris, St. Louis": no street's name)."""
    before = m.string[max(0, m.start() - 40): m.start()].split()[-1:]
    return before[0] if before and before[0][-1:].isalnum() else ""


def _after_name(m: re.Match[str]) -> bool:
    """Whether the word before ``m`` is a capitalised name (a street's: "Elm Dr."), not a sentence's first word."""
    word = _word_before(m)
    return word[:1].isupper() and word not in _NOT_NAMES


def _abbreviations(text: str, table: Table) -> str:
    spelled, pattern = _abbreviation_pattern(table)

    def said(m: re.Match[str]) -> str:
        written, following = m.group(1), m.group(2)
        words = spelled[written]
        if table.code == "en" and written == "No." and not following.isdigit():
            return written  # "No." is only "number" before a number
        if table.code == "en" and written == "Dr." and not following.isupper() and _after_name(m):
            return "drive" + ("." if not following else "")  # "12 Elm Dr. in Ohio" (was "Elm doctor"); "Dr. Who": doctor
        if table.code == "en" and written == "St.":
            # "St. Louis", "in St. Paul's": saint; after a name or an ordinal ("Main St. She left.", "42nd St."): a street,
            # whose full stop ends the sentence when a capital follows
            # a house number before it is not a street's name ("5 St. Clair Ave."), an ordinal is ("42nd St.")
            word = _word_before(m)
            street = _after_name(m) or (word[:1].isdigit() and not word.isdigit()) or bool(_ORDINAL_WORD.search(word))
            if following.isupper() and not street:
                return "saint"
            return "street" + ("." if not following or following.isupper() else "")
        ends = written.endswith(".") and written in table.sentence_final and (not following or following.isupper())
        return words + ("." if ends else "")

    return pattern.sub(said, text)


def _years(text: str, table: Table) -> str:
    if table.code not in ("en", "de", "nl"):
        return text
    span = r"1[1-9]\d\d|20\d\d" if table.code == "en" else r"1[1-9]\d\d"
    return _compile(rf"(?<![\w.,-])({span})(?![\w]|[.,]\d)", 0).sub(lambda m: num.words(int(m.group(1)), table, "year"), text)


def _numbers(text: str, table: Table) -> str:
    pattern = _compiled(table, r"(?<![\w.,])(-(?=\d))?(NUMBER)(?![\w]|[.,]\d)")

    def said(m: re.Match[str]) -> str:
        start = m.start()
        minus = m.group(1) and (start == 0 or not text[start - 1].isalnum())
        sign = (f"{table.minus} " if table.minus != "-" else "-") if minus else ("-" if m.group(1) else "")
        written = m.group(2)
        if len(written) > 1 and written[0] == "0" and written[1].isdigit():  # "007", a ZIP code "02134": digits, not 7
            return sign + num.digits(written, table)
        return sign + num.number(written, table)

    return pattern.sub(said, text)
