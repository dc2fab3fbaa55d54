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
from demod_voice.speech_text.emoji import unpictured
from demod_voice.speech_text.languages import Table, numbers_only

Pass = Callable[[str, Table], str]

_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_MINUS_SIGN = re.compile(r"(?<![\w)])−(?=[$€£]?\.?\d)")
"""A minus sign with no number or letter just before it ("10−3" and "x − 2" are subtractions)."""
_LONG_DIGITS = re.compile(rf"\d{{{num.MAX_DIGITS + 1},}}")
_SPACE_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:[\u00a0\u202f]\d{3})+|(?: \d{3}){2,})(?![\d]|[.,]\d)")
_RANGE = re.compile(r"(?<![\w.,/+-])(\d+(?:[.,]\d+)?)(?:\s?[-–]\s?|—)(\d+(?:[.,]\d+)?)(?![\w]|[.,]\d|[-–—]\d)")
"""``5-10``, ``5 – 10``, ``1990—1995``: an em dash with a space beside it is a sentence's dash ("now $19.99 — 20% off" was
"now nineteen dollars and ninety-nine cents to twenty percent off")."""
_SIGNED_RANGE = re.compile(r"(?<![\w.,/+-])([$€£¥])?(\d+(?:[.,]\d+)?)(\s?%)?\s?[-–]\s?"
                           r"(?=(?(1)\1)\d+(?:[.,]\d+)?(?(3)\s?%)(?![\d%]|[.,]\d|\s*=))")
"""``$5-$10``, ``3.5%-4.0%``: a range whose two ends carry their sign (the second was left unread, "five dollars-$ten", or
read as a minus, "three point five percentminus four point zero percent"). Not a sum: "$10 - $5 = $5"."""
_ELLIPSIS = re.compile(r"(?<=[^\W\d_])[ \t]*(?:\.{3}|…|\. \. \.)(?!\.)[ \t]*")
"""An ellipsis after a word ("leaving... now?", "the minutes… and then"): espeak-ng dropped it and ran the two words into
one ("leavingnow"), no pause at all."""
_WORD_DASH = re.compile(r"(?<=[^\W\d_])(?:—|--|[ \t]+--[ \t]+)(?=[^\W\d_])|(?<=\d)—(?=[^\W\d_])|(?<=[^\W\d_])—(?=\d)")
"""A dash between two words written without spaces or with two hyphens ("Wait—what?", "I have to--there's"): espeak-ng
made no pause of it, as it does of a spaced dash."""


def _ellipsis(m: re.Match[str]) -> str:
    following = m.string[m.end(): m.end() + 1]
    if following and following in "!?,;:.":
        return ""  # "Wait...!"
    if following.isalnum():
        return ". " if following.isupper() else ", "
    return "."  # the text's or a quotation's end


def _pauses(text: str) -> str:
    """An ellipsis after a word is a comma's pause before a word in lower case, a full stop's before anything else; a dash
    between two words is a spaced one (a pause), as is an em dash between a number and a word ("Chapter 19—The End"). Not
    between numbers: "1990—1995" is a range; nor "--verbose", a flag."""
    if "…" in text or "..." in text or ". . ." in text:
        text = _ELLIPSIS.sub(_ellipsis, text)
    return _WORD_DASH.sub(" — ", text) if "—" in text or "--" in text else text


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TIMESTAMP = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:[.,](\d+))?)?"
                        r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?(?![\w:+-])")
"""``2026-12-07T09:30Z``: an ISO 8601 timestamp, a date and a time joined by ``T`` (was "twenty twenty-six-twelve-07T09:30Z",
heard "2026 1200, 1799, 30Z": the ``T`` hid the date from the date pass)."""
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4})\b")
_SHORT_YEAR_DATE = re.compile(r"(?<![\d/.,])\b(\d{1,2})(/)(\d{1,2})/(\d{2})\b(?!/|[.,]\d)")
"""``07/12/26``: a date with its year in two digits, read in English with the year as written ("July twelfth, twenty-six";
was "zero seven/twelve/twenty-six")."""
_WEEKDAY_DATE = re.compile(r"\b((?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+)(\d{1,2})/(\d{1,2})(?![\d/]|[.,]\d|\s+of\b)")
"""``Sunday 12/6``: a day and a month with no year, said to be a date by the weekday before it (was "twelve/six"); not a
share of something ("on Friday 3/4 of the team left")."""
_CUED_DATE = re.compile(r"(?:\b((?:on|by|until|till|through|thru|before|after|since|due|from|starting|effective|deadline:?)\s+)"
                        r"|(?<![\w/.,-]))(\d{1,2})/(\d{1,2})(?![\w/]|[.,]\d)(?=(\s+(?:at|@)\s*\d)?)", re.IGNORECASE)
"""``on 12/15``, ``12/15 at 10:00``: a month and a day with no year, said to be a date by a word before it or a time after it
(was "twelve/fifteen", heard "twelve slash fifteen"); not "scored 12/15"."""
_SECONDS_TIME = re.compile(r"(?<![\d.,:])\b([01]?\d|2[0-3]):([0-5]\d):([0-5]\d)(?![\d:]|[.,]\d)")
"""``14:30:15``: a clock time with its seconds, read in English as ``say-as time`` reads it (was "fourteen:thirty:fifteen",
heard "fourteen colon thirty colon fifteen")."""
_TIME = re.compile(r"(?<![\d.,:])\b([01]?\d|2[0-4])[:h]([0-5]\d)(?:\s?([ap])\.?\s?m(\.)?(?=[\s,;:!?)\]–—-]|$))?(?!\d|:\d)", re.IGNORECASE)
_MONTH_YEAR = re.compile(rf"\b({english.SHORT_MONTHS})\s+((?:1[1-9]|20)\d\d)\b(?![.,]\d)")
"""``Oct 2023``, ``Sept. 2024``: a month's short name and a year."""
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
    """``text`` with what is written as symbols and digits spelled out in ``language``'s words, and without emoji
    (:mod:`.emoji`: in any language, espeak-ng read their names).

    Otherwise unchanged for a language normalisation knows nothing of (see :mod:`.languages`)."""
    table = numbers_only(language)
    text = unpictured(english.hearts(english.stars(text)) if table is not None and table.code == "en" else text)
    if table is None:
        return text
    text = _pauses(text)
    own, early = (english.PASSES, english.EARLY) if table.code == "en" else ((), ())
    passes: tuple[Pass, ...] = (_addresses, _headings, *early, _dates, _times, telephones.said, *own, _grouped, _ranges, _money, _percentages,
                                _units, _ordinals, _abbreviations, _years, _numbers) if table.months else (_grouped, _numbers)
    # a typeset minus sign (U+2212) before a number is its sign, as "-" is ("−10 °C" was "−ten degrees Celsius")
    text = _MINUS_SIGN.sub("-", text)
    # a run of digits too long to be one number (an id, a code) is read digit by digit before any pass sees it
    text = _LONG_DIGITS.sub(lambda m: num.digits(m.group(0), table), text)
    for step in passes:
        text = step(text, table)
    return re.sub(r"[ \t]{2,}", " ", text)


def spell_address(address: str, table: Table) -> str:
    """``www.example.com/a`` -> ``www dot example dot com slash a``: each symbol its word, numbers read."""
    address = re.sub(r"^(?:https?|ftp)://", "", address, flags=re.IGNORECASE)
    # a query's and a fragment's marks (?=&#~) too, where the language names them ("docs?id=3" was heard "docks at equals")
    marks = "".join(sorted(set(table.symbols) | set(".@/:_-")))
    parts = re.split(f"([{re.escape(marks)}])", address)
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


def _month_days(m: re.Match[str], table: Table) -> str:
    """An English month and a day, or a range of days (``Jan 1-15``: January first to fifteenth), perhaps a year."""
    day, last = int(m.group(2)), int(m.group(3)) if m.group(3) else None
    if last is not None and not day < last <= 31:
        return m.group(0)
    said = date_words(day, english.MONTHS.index(english.month(m.group(1))) + 1, None, table)
    if said is None:
        return m.group(0)
    said += f" to {num.ordinal(last, table)}" if last else ""
    return said + (f", {num.words(int(m.group(4)), table, 'year')}" if m.group(4) else "")


def _dates(text: str, table: Table) -> str:
    def iso(m: re.Match[str]) -> str:
        return date_words(int(m.group(3)), int(m.group(2)), int(m.group(1)), table, m.string[: m.start()]) or m.group(0)

    def numeric(m: re.Match[str], short_year: bool = False) -> str:
        first, second, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        day, month = (second, first) if table.date_order == "mdy" and first <= 12 else (first, second)
        if not short_year:
            return date_words(day, month, year, table, m.string[: m.start()]) or m.group(0)
        said = date_words(day, month, None, table)  # the year as written: '26 is twenty-six, '07 oh seven
        return f"{said}, {'oh ' if year < 10 else ''}{num.words(year, table) if year else 'oh'}" if said else m.group(0)

    text = _TIMESTAMP.sub(lambda m: timestamp_words(m, table), text)
    text = _ISO_DATE.sub(iso, text)
    text = _NUMERIC_DATE.sub(numeric, text)
    if table.code == "en":
        text = _SHORT_YEAR_DATE.sub(lambda m: numeric(m, short_year=True), text)

        def weekday_date(m: re.Match[str]) -> str:
            first, second = int(m.group(2)), int(m.group(3))
            day, month = (second, first) if table.date_order == "mdy" else (first, second)
            return m.group(1) + (date_words(day, month, None, table) or f"{m.group(2)}/{m.group(3)}")

        text = _WEEKDAY_DATE.sub(weekday_date, text)

        def cued_date(m: re.Match[str]) -> str:
            first, second = int(m.group(2)), int(m.group(3))
            fraction = first < second and second in english.DENOMINATORS and not re.match(
                r"(?:on|due|since|starting|effective|deadline)\b", m.group(1) or "", re.IGNORECASE)
            if not m.group(4) and (not m.group(1) or fraction):
                return m.group(0)  # "scored 12/15"; "by 1/2", "from 1/4" are fractions, unless a time follows
            day, month = (second, first) if table.date_order == "mdy" and first <= 12 else (first, second)
            said = date_words(day, month, None, table)
            return (m.group(1) or "") + said if said else m.group(0)

        text = _CUED_DATE.sub(cued_date, text) if "/" in text else text
    months = "|".join(table.months)
    if table.code == "en":
        # a month's abbreviation too ("Jan. 5, 2026": the abbreviations pass, later, made it "January five"), with or without its dot
        # and a range of days ("Jan 1-15": was "January first-fifteen")
        pattern = _compile(rf"\b({months}|{english.SHORT_MONTHS})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"
                           r"(?:\s?[-–]\s?(\d{1,2})(?:st|nd|rd|th)?\b)?(?:,?\s+(\d{4})\b)?", 0)
        text = pattern.sub(lambda m: _month_days(m, table), text)
        # a month's short name before a year alone ("released in Oct 2023": espeak said "act twenty twenty-three")
        text = _MONTH_YEAR.sub(lambda m: f"{english.month(m.group(1))} {m.group(2)}", text)
    elif table.code in ("de", "pl"):
        dot = r"\." if table.code == "de" else r"\.?"
        pattern = _compile(rf"\b(\d{{1,2}}){dot}\s+({months})\b(?:\s+(\d{{4}})\b)?(?:\s+r\.)?", 0)
        text = pattern.sub(lambda m: date_words(int(m.group(1)), table.months.index(m.group(2)) + 1,
                                                int(m.group(3)) if m.group(3) else None, table, m.string[: m.start()])
                           or m.group(0), text)
    return text


def timestamp_words(m: re.Match[str], table: Table) -> str:
    """A :data:`_TIMESTAMP` read out: ``December seventh, twenty twenty-six at nine thirty UTC`` in English (the offset as
    ``UTC plus five thirty``); elsewhere the date read, and the time and zone left to the passes after (``T`` and ``Z`` as
    a space and ``UTC``)."""
    date = date_words(int(m.group(3)), int(m.group(2)), int(m.group(1)), table, m.string[: m.start()])
    if date is None:
        return m.group(0)
    hour, minute, second, zone = int(m.group(4)), int(m.group(5)), m.group(6), m.group(8) or ""
    offset = re.sub(r"\D", "", zone)
    hours, minutes = int(offset[:2] or 0), int(offset[2:] or 0)
    if table.code != "en":  # "+01:00" alone was read as a time ("UTC +ein Uhr")
        clock = m.group(0)[11:len(m.group(0)) - len(zone)]
        return f"{date} {clock}" + (" UTC" if zone else "") + (f" {zone[0]}{hours}" + (f" {minutes}" if minutes else "")
                                                                if hours or minutes else "")
    if second and (m.group(7) or "").strip("0"):  # "09:30:00.000Z" is nine thirty, not "and zero point zero zero zero seconds"
        said = time_words(hour, minute, "", table) + f" and {num.number(f'{second}.{m.group(7)}', table)} seconds"
    else:
        said = seconds_time(hour, minute, int(second or 0), "", table)
    if zone:
        said += " UTC" + (f" {'minus' if zone[0] == '-' else 'plus'} {num.words(hours, table)}" if hours or minutes else "")
        said += f" {num.words(minutes, table)}" if minutes else ""
    return f"{date} at {said}"


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
        if not minute and not meridiem and hour in (0, 24):
            return "midnight"  # "00:00" was "zero o'clock"
        if not minute and not meridiem and hour > 12:
            return f"{said_hour} hundred"  # on a 24-hour clock: "20:00" was "twenty o'clock"
        if not minute:
            return f"{said_hour} o'clock{tail}" if not meridiem else f"{said_hour}{tail}"
        return f"{said_hour} {'oh ' if minute < 10 else ''}{said_minute}{tail}"
    if code == "pl":
        return f"{said_hour} {'zero ' if 0 < minute < 10 else ''}{said_minute}".strip()
    joiners = {"de": ("Uhr", ""), "fr": ("heures" if hour != 1 else "heure", ""), "nl": ("uur", ""),
               "es": ("", "y"), "it": ("", "e"), "pt": ("", "e")}
    unit, conjunction = joiners.get(code, ("", ""))
    return " ".join(part for part in (said_hour, unit, conjunction if minute else "", said_minute) if part)


def seconds_time(hour: int, minute: int, second: int, meridiem: str, table: Table) -> str:
    """A clock time with seconds, in English: ``fourteen thirty and fifteen seconds``."""
    said = time_words(hour, minute, meridiem, table)
    return said + (f" and {num.words(second, table)} second{'s' if second != 1 else ''}" if second else "")


_PL_HOURS = ("zero", "pierwsza", "druga", "trzecia", "czwarta", "piąta", "szósta", "siódma", "ósma", "dziewiąta", "dziesiąta",
             "jedenasta", "dwunasta", "trzynasta", "czternasta", "piętnasta", "szesnasta", "siedemnasta", "osiemnasta",
             "dziewiętnasta", "dwudziesta", "dwudziesta pierwsza", "dwudziesta druga", "dwudziesta trzecia")


_HOUR_MERIDIEM = re.compile(r"(?<![\d.,:])\b(1[0-2]|0?[1-9])\s?([ap])(?:\.\s?m(\.)|m)(?=[\s,;:!?.)\]–—/-]|$)", re.IGNORECASE)
"""``7 am``, ``3pm``, ``11 p.m.``: an hour with no minutes (espeak read "am" as the word)."""
_HOUR_RANGE = re.compile(r"(?<![\w.,:/-])(1[0-2]|0?[1-9])\s?[-–]\s?(?=(?:1[0-2]|0?[1-9])\s?[ap]\.?\s?m\b)", re.IGNORECASE)
"""``2-3 p.m.``: a range of hours, its meridiem written once (was "two-three PM": the hour pass took "3 p.m." first)."""
_DOTTED_MERIDIEM = re.compile(r"(?<![\d.,:])\b(1[0-2]|0?[1-9])\.([0-5]\d)\s?([ap])(?:\.\s?m(\.)|m)(?=[\s,;:!?.)\]]|$)", re.IGNORECASE)
"""``9.05pm``, ``11.30 a.m.``: British English writes the minutes after a full stop (only with am/pm: 9.05 is a number)."""
_MERIDIEM_RANGE = re.compile(r"(?<=[AP]M)\s?[-–—]\s?(?=\w)")
_CLOCK_RANGE = re.compile(r"(?<![\d:])((?:[01]?\d|2[0-4])[:h][0-5]\d)(?:\s?[-–]\s?|—)(?=(?:[01]?\d|2[0-4])[:h][0-5]\d(?![\d:]))")
"""``09:00-17:00``: opening hours, one time to another (the dash was left between them: "nine o'clock-seventeen hundred")."""
_ZULU = re.compile(r"(?<![\d.,:])\b((?:[01]?\d|2[0-3]):[0-5]\d)Z\b")
_RATIO_AFTER = re.compile(r"\s*(?:scale|ratio|odds|aspect)\b", re.IGNORECASE)
_RATIO_BEFORE = re.compile(r"\b(?:ratio|ratios|odds|scale)(?:\s+(?:of|is|was|at))?\s+$", re.IGNORECASE)
_WRITTEN_UHR = re.compile(r"\b((?:[01]?\d|2[0-4]):[0-5]\d)\s+Uhr\b")
_WRITTEN_OCLOCK = re.compile(r"(?<![\d.,:])\b([01]?\d|2[0-4]):([0-5]\d)(\s*o['’]\s?clock\b)", re.IGNORECASE)
"""``10:00 o'clock``: a time written with its "o'clock" (was "ten o'clock o'clock")."""


_ZONE = re.compile(r"\s*\(?(?:[ECMP][SD]?T|AK[SD]?T|H[SD]?T|UTC|GMT|BST|CES?T|IST|JST|AE[SD]T)\b")
"""A time zone after a time ("7:30 p.m. ET", "9 a.m. PST")."""


_US_ZONES = {"E": "Eastern", "C": "Central", "M": "Mountain", "P": "Pacific"}
_US_ZONE = re.compile(r"(?<= [AP]M|ock)(\s*\(?)([ECMP])([SD]?)T\b")
"""A US time zone after a time said in words ("three PM ET", "nine AM PST"; "ten o'clock PT"): espeak read "ET" as "et",
"PT" as "pt", and "PM EST" was heard "PMESD"."""
_TWO_TIMES = re.compile(r"(?<= [AP]M|ock|UTC|GMT|BST|CET)(\s*\(?(?:Eastern|Central|Mountain|Pacific)"
                        r"(?: (?:Standard|Daylight) Time)?\)?)?\s*/\s*(?=[a-z-]+(?: [a-z-]+)*? (?:[AP]M|o'clock)\b)")
"""The slash between one time and another ("3pm ET / 12pm PT", "3pm/4pm"): the same time in two zones, or a choice of two
(was read "slash")."""


def _zones(text: str) -> str:
    """US time zones after a time as a reader says them (Eastern, Pacific Standard Time), and the slash between two times as
    a pause where a zone ends the first (the same moment elsewhere), else "or". After the time pass."""
    text = _US_ZONE.sub(lambda m: m.group(1) + _US_ZONES[m.group(2)] + (
        {"S": " Standard Time", "D": " Daylight Time"}[m.group(3)] if m.group(3) else ""), text)
    if "/" not in text:
        return text
    return _TWO_TIMES.sub(lambda m: f"{m.group(1) or ''}, " if m.group(1) or m.string[m.start() - 3: m.start()].isupper() and
                          m.string[m.start() - 3] != " " else " or ", text)


def _ends_sentence(m: re.Match[str]) -> bool:
    """Whether the full stop of an "a.m." or "p.m." that ``m`` ends is a sentence's too: a capital or the text's end
    follows, or a line's end (a list's next item, "6:00am.\n3. Book..." ran on: "six AM three. Book"), not a time zone
    ("7:30 p.m. ET on ESPN" was cut at "PM.", and "ET" began a sentence, read as "et")."""
    following = m.string[m.end():]
    return re.match(r"[ \t]*\n|\s*(?:[A-Z]|$)", following) is not None and not _ZONE.match(following)


_COUNTDOWN = re.compile(r"(?<![\d.,:])\b(?:(\d{1,2}):)?([0-5]?\d):([0-5]\d)(?![\d:]|[.,]\d)(?=\s+(?:remaining|left|to go|elapsed)\b)")
"""``4:32 remaining``, ``1:05:00 left``: a timer's time, hours, minutes and seconds (was read as a clock, "four thirty-two")."""


def _countdown(m: re.Match[str], table: Table) -> str:
    """A :data:`_COUNTDOWN`'s parts that are not zero, each with its unit: four minutes and thirty-two seconds."""
    if re.search(r"\b(?:at|by|until|till|from)\s+$", m.string[max(0, m.start() - 8): m.start()], re.IGNORECASE):
        return m.group(0)  # "she came at 4:32 left early": a clock's time
    parts = [(int(value), unit) for value, unit in zip(m.groups(), ("hour", "minute", "second"), strict=True) if value]
    said = [f"{num.words(value, table)} {unit}{'' if value == 1 else 's'}" for value, unit in parts if value]
    if not said:
        return m.group(0)
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + f" and {said[-1]}"


def _times(text: str, table: Table) -> str:
    if table.code == "en":
        # on the hour, the hour and its o'clock; past it, the time alone ("10:30 o'clock" is ten thirty)
        if "clock" in text:
            text = _WRITTEN_OCLOCK.sub(lambda m: m.group(1) + m.group(3) if m.group(2) == "00" else f"{m.group(1)}:{m.group(2)}", text)
        text = _COUNTDOWN.sub(lambda m: _countdown(m, table), text) if ":" in text else text
        text = _HOUR_RANGE.sub(lambda m: f"{m.group(1)} {_joiner(m, table)} ", text)
        # "a.m." at a sentence's end holds its full stop too
        text = _HOUR_MERIDIEM.sub(lambda m: time_words(int(m.group(1)), 0, m.group(2).lower(), table) +
                                  ("." if m.group(3) and _ends_sentence(m) else ""), text)
        text = _DOTTED_MERIDIEM.sub(lambda m: time_words(int(m.group(1)), int(m.group(2)), m.group(3).lower(), table) +
                                    ("." if m.group(4) and _ends_sentence(m) else ""), text)
        text = _SECONDS_TIME.sub(lambda m: seconds_time(int(m.group(1)), int(m.group(2)), int(m.group(3)), "", table), text)
    elif table.code == "de":
        text = _WRITTEN_UHR.sub(r"\1", text)  # "14:30 Uhr": the time is read with its "Uhr" ("vierzehn Uhr dreißig Uhr")

    def said(m: re.Match[str]) -> str:
        if m.group(0)[len(m.group(1))] == "h" and table.code != "fr":
            return m.group(0)  # 14h30 is French
        if table.code == "en" and not m.group(3) and (_RATIO_AFTER.match(m.string, m.end()) or
                                                      _RATIO_BEFORE.search(m.string[max(0, m.start() - 16): m.start()])):
            return m.group(0)  # "a 1:50 scale model", "a ratio of 1:10": a ratio (was "one fifty")
        hour = int(m.group(1))
        if (m.group(3) and hour > 12) or (hour == 24 and m.group(2) != "00"):  # 24:00, midnight, ends a day; 24:30 is none
            return m.group(0)
        # "at 10:30pm. Then": the dot after "pm" ends the sentence too (it was dropped: "ten thirty PM Then")
        stop = "." if m.group(4) and _ends_sentence(m) else ""
        return time_words(hour, int(m.group(2)), m.group(3) or "", table, m.string[: m.start()]) + stop

    if table.range_word:
        text = _CLOCK_RANGE.sub(lambda m: f"{m.group(1)} {_joiner(m, table)} ", text)
    if table.code == "en":
        text = _ZULU.sub(r"\1 UTC", text)  # "09:30Z" was "nine thirtyZ"
    text = _TIME.sub(said, text)
    # "9am-5pm", "9:00 a.m.-5:00 p.m.": nine AM to five PM (the dash joined the two)
    return _zones(_MERIDIEM_RANGE.sub(lambda m: f" {_joiner(m, table)} ", text)) if table.code == "en" else text


_BETWEEN = re.compile(r"\bbetween\s+(?:(?:[a-z-]+\s+){1,3}[AP]M)?$", re.IGNORECASE)
"""What is before a range's dash after "between": nothing ("between 2–4 PM"), or its first time already said ("between nine
AM-5pm")."""


def _joiner(m: re.Match[str], table: Table) -> str:
    """The word a range's dash is read as: "and" after "between" in English ("between two and four PM"; was "between two
    to four PM"), else the language's "to"."""
    if table.code == "en" and _BETWEEN.search(m.string[max(0, m.start() - 40): m.start()]):
        return "and"
    return table.range_word or "to"


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
    text = _SIGNED_RANGE.sub(lambda m: f"{m.group(0).rstrip(' -–')} {_joiner(m, table)} " if m.group(1) or m.group(3) else m.group(0),
                             text)
    # the same number twice is no range: "a 50-50 chance" is fifty-fifty
    return _RANGE.sub(lambda m: f"{m.group(1)} {_joiner(m, table)} {m.group(2)}" if m.group(1) != m.group(2) else
                      f"{num.number(m.group(1), table)}-{num.number(m.group(2), table)}", text)


def spans_range(before: str, after: str) -> bool:
    """Whether the dash where ``before`` ends or ``after`` starts is a range's ("1990-" and "1995", "10" and "-20"): text
    cut there by a tag is read in pieces, and the dash alone was read as a minus or not at all."""
    joined = before + after
    return any(m.end(1) <= len(before) <= m.start(2) for m in _RANGE.finditer(joined))


SCALES = {"K": "thousand", "k": "thousand", "M": "million", "m": "million", "mn": "million", "B": "billion", "bn": "billion", "tn": "trillion"}
"""English scales written as a letter after an amount ("$50K", "$2bn", "£1.5m", "1.5M downloads")."""


@functools.lru_cache(maxsize=32)
def _alternatives(names: tuple[str, ...]) -> str:
    """``names`` as a pattern's alternatives, longest first. Built once: a normalize pass built them for every call, 0.2 ms
    a piece, and an SSML document of 5,000 short elements took 1.7 s before it was refused."""
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


def _money(text: str, table: Table) -> str:
    symbols = _alternatives(tuple(table.currencies))
    scale = r"(?:\s+(million|billion|trillion)\b|(K|k|M|m|mn|B|bn|tn)(?!\w))?" if table.code == "en" else ""

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


_STREET_AFTER = re.compile(r"\s+(?:\d+(?:st|nd|rd|th)|[A-Z][a-z]+)(?:\s+[A-Z][a-z]+){0,3}\s+(?:St|Street|Ave|Avenue|Rd|Road|"
                           r"Blvd|Boulevard|Dr|Drive|Ln|Lane|Way|Pl|Place|Ct|Court|Pkwy|Parkway|Hwy|Highway|Ter|Terrace)\b")
"""A street's name and kind after a house number and a compass point ("120 W 45th St")."""


_FINANCE = re.compile(r"%|\b(?:rates?|yields?|spreads?|basis|hikes?|cuts?|Fed|bonds?|treasur(?:y|ies)|mortgages?|interest|"
                      r"percent|inflation|coupon|bank)\b", re.IGNORECASE)
"""Words near "bps" that make it basis points, not bits per second."""
_MEASURED_NOUN = re.compile(r"\s+(?!(?:of|per|or|and|to|from|in|on|at|away|long|wide|tall|high|deep|thick|each|more|less|left|"
                            r"ago|later|is|was|are|were|off|up|down|by|than|behind|ahead|before|after|into|with|for|or|so|"
                            r"total|max|min|apart|across|too)\b)[a-z]{2,}\b")
"""A noun after "a 20 min", which the amount and its unit describe: "a twenty-minute delay" (was "a twenty minutes delay")."""


def _units(text: str, table: Table) -> str:
    units = _alternatives(tuple(table.units))
    # a unit's own dot before lower case or a comma is the abbreviation's, not a sentence's end ("5 ft. of rope")
    # "128GB/256GB": a unit before a slash and another amount is read too
    # "the 5 W's": a letter's plural, not a unit's ("five watts's")
    pattern = _compiled(table, rf"(?<![\w.,])(-?)(NUMBER)\s?({units})(?!\w|['’]s\b|/(?!\d))(?:\.(?=\s*[a-z,;]))?")

    def said(m: re.Match[str]) -> str:  # "-5°C" is minus five ("5-10 kg" is a range: "-10" follows a digit, no match)
        if len(m.group(3)) == 1 and m.group(3).isupper() and re.match(r"\.(?:\s?[A-Z]\.|\s)", m.string[m.end():]) and (
                len(m.group(2)) == 4 or re.match(r"\.\s?[A-Z]\.", m.string[m.end():])):
            return m.group(0)  # "in 1990 W. H. Auden wrote", "in 1990 W. Smith": an initial after a year, not watts ("3 x 1.5V.")
        if m.group(3) == "W" and not m.group(1) and _STREET_AFTER.match(m.string, m.end()):
            return f"{m.group(2)} West"  # "120 W 45th St", "5 W Main Street": in an address (was "one hundred twenty watts")
        whole, fraction = num.parse_number(m.group(2), table)
        forms = table.units[m.group(3)]
        if m.group(3) == "bps" and table.code == "en" and _FINANCE.search(m.string, max(0, m.start() - 100), m.end() + 100):
            forms = ("basis point", "basis points")  # "the Fed raised rates by 25 bps" (was "twenty-five bits per second")
        if table.code == "en" and not m.group(1) and " " not in forms[0] and _MEASURED_NOUN.match(m.string, m.end()) and \
                re.search(r"\b(?:a|an)\s+$", m.string[max(0, m.start() - 4): m.start()], re.IGNORECASE):
            return f"{num.number(m.group(2), table)}-{forms[0]}"  # "a 20 min delay": a twenty-minute delay
        noun = num.form(whole, forms, table) if not fraction else forms[-1] if table.code != "pl" else forms[1]
        return (f"{table.minus} " if m.group(1) else "") + f"{num.number(m.group(2), table)} {noun}"

    text = pattern.sub(said, text)
    if table.code == "en" and re.search(r"(?:thousand|million|billion|trillion) ", text):
        # "54.6M km": the scale pass made it "54.6 million km", and the unit was left as written ("million km")
        scaled = _compile(rf"\b(thousand|million|billion|trillion)\s({units})(?!\w|['’]s\b|/(?!\d))(?:\.(?=\s*[a-z,;]))?", 0)
        text = scaled.sub(lambda m: f"{m.group(1)} {table.units[m.group(2)][-1]}", text)
    return text


def _ordinals(text: str, table: Table) -> str:
    if not table.ordinal_suffixes:
        return text
    # "1,000th" grouped by commas (was "one,zeroth"); a language grouping by dots writes its ordinals with a dot
    grouped = r"\d{1,3}(?:,\d{3})+|" if table.group == "," else ""
    pattern = _compile(rf"\b({grouped}\d+)({table.ordinal_suffixes})(?!\w)", 0)

    def said(m: re.Match[str]) -> str:
        suffix = m.group(2)
        feminine = suffix.endswith("ª") or (table.code == "fr" and suffix.startswith(("re", "ère")))
        return num.ordinal(int(m.group(1).replace(",", "")), table, feminine)

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


_BEFORE_A_NUMBER = frozenset({"No.", "no.", "ch.", "vol.", "fig.", "p.", "P.", "sec.", "Sec."})
"""Abbreviations that are words only before a number: "no.", and a book's references in lower case ("ch. 4", "p. 17")."""
_NUMBER_AFTER = re.compile(r"\s*(?:\d|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                           r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
                           r"ninety|a hundred|one hundred)\b)")
"""A number after an abbreviation, in digits or already in words (the Roman numeral pass's "vol. three")."""


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
        if table.code == "en" and written in _BEFORE_A_NUMBER and not _NUMBER_AFTER.match(m.string, m.end()):
            return written  # "No." is only "number" before a number, "p." only "page" ("John P. Smith")
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


_COUNTED = re.compile(r"\s+(?!(?:was|has|does|is|as|this|his|its|us|plus|versus|thus|looks|seems|remains|marks|brings|sees|"
                      r"means|makes|gives|shows|takes|comes|goes|feels|appears|proves|holds|keeps|continues|represents|"
                      r"changes|begins|ends|starts|promises|becomes|needs|gets|puts|sets|opens|closes|follows|saw|ushers|"
                      r"offers|leaves|turns|belongs|happens|matters|stands|lies|falls|rolls|arrives|passes|sits)\b)"
                      r"[a-z]{2,}[^s\W]?s\b")
"""A plural noun after a number: what it counts ("sold 2026 units"); not a verb a year may be the subject of
("Looking ahead, 2025 looks bright": "two thousand twenty-five looks" was hreview3's find)."""
_YEAR_CUE = re.compile(r"(?:^|[.!?;:(\[\"“]\s*|\b(?:in|of|since|from|until|till|by|before|after|circa|the|year|during|to|and|or|between|"
                       r"early|late|mid|spring|summer|autumn|fall|winter|q[1-4]|h[12]|fy)\s+)$", re.IGNORECASE)
"""What before a number says a year may follow ("in 1984", "the 2024 elections", a quarter's "Q3 2024 results"), or that a
sentence or clause opens there."""


def _years(text: str, table: Table) -> str:
    if table.code not in ("en", "de", "nl"):
        return text
    span = r"1[1-9]\d\d|20\d\d" if table.code == "en" else r"1[1-9]\d\d"

    def said(m: re.Match[str]) -> str:
        # "there were 1984 copies", "we sold 2026 units": a count, not a year ("nineteen eighty-four copies")
        if table.code == "en" and _COUNTED.match(m.string, m.end()) and not _YEAR_CUE.search(m.string[max(0, m.start() - 12): m.start()]):
            return m.group(0)
        return num.words(int(m.group(1)), table, "year")

    return _compile(rf"(?<![\w.,-])({span})(?![\w]|[.,]\d)", 0).sub(said, text)


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
