"""English-only readings a narrator meets: Roman numerals (King Henry VIII, World War II), fractions, decades, sums,
feet and inches, hashtags, version tags, and amounts written the European way (€3,50).

Each pass takes and returns text, as :mod:`.normalize`'s do; :data:`PASSES` run after dates, times and telephone
numbers and before ranges, money and plain numbers.
"""

from __future__ import annotations

import re

from demod_voice.speech_text import numbers as num
from demod_voice.speech_text.languages import Table

_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
ROMAN_HEADINGS = frozenset({"chapter", "chapters", "part", "book", "volume", "vol.", "act", "scene", "war", "phase", "stage",
                            "type", "class", "level", "article", "title", "section", "appendix", "episode", "season",
                            "round", "grade", "category", "canto", "psalm", "movement", "no.", "number", "bowl", "league"})
"""Words after which a Roman numeral is a number (Chapter IV, World War II, Super Bowl LV): read as a cardinal."""
REGNAL = frozenset({"Henry", "Edward", "George", "William", "Richard", "Charles", "James", "Louis", "Elizabeth", "Mary",
                    "Pius", "Leo", "Gregory", "Benedict", "John", "Paul", "Innocent", "Clement", "Boniface", "Urban",
                    "Alexander", "Peter", "Frederick", "Philip", "Ferdinand", "Nicholas", "Ivan", "Ramesses", "Ramses",
                    "Amenhotep", "Thutmose", "Constantine", "Otto", "Alfonso", "Gustav", "Christian", "Olaf", "Haakon",
                    "Napoleon", "Felipe", "Carl", "Rama", "Victor", "Umberto", "Wilhelm", "Ludwig", "Catherine", "Anne",
                    "Stephen", "Robert", "David", "Malcolm", "Harold", "Sixtus", "Julius", "Francis", "Nero", "Ptolemy"})
"""Names kings, queens and popes share: a Roman numeral after one is a regnal ordinal (Henry VIII: Henry the Eighth)."""
TITLES = frozenset({"King", "Queen", "Pope", "Emperor", "Empress", "Tsar", "Czar", "Tsarina", "Prince", "Princess", "Duke",
                    "Duchess", "Pharaoh", "Kaiser", "Sultan", "Shah", "Count", "Countess", "Lord", "Saint", "St."})
"""Titles before a ruler's name (King Olaf V): the numeral after the name is regnal whatever the name."""
_ROMAN_AFTER = re.compile(r"(?<![\w.'’-])([A-Za-z][\w.'’-]*)(\s+)([IVXLCDM]+)(?![\w'’-])(?!\.\w)")
_WORLD_WAR = re.compile(r"\bWW(I{1,2})\b")
_REGNAL_I_AFTER = re.compile(r"\s*(?:[,.;:!?)\]'’\"]|$|(?:of|and|or|was|had|were)\b)")
"""What may follow a ruler's "I" (Mary I, queen; Elizabeth I and II): anything else is the pronoun ("Henry I think")."""


def roman_value(written: str) -> int:
    """The value of a Roman numeral written in its canonical form; 0 when it is not one ("IIII", "VX", "DC" is 600)."""
    if not written or not _ROMAN.fullmatch(written):
        return 0
    values = [_ROMAN_VALUES[ch] for ch in written]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def _roman(text: str, table: Table) -> str:
    """Henry VIII: Henry the Eighth; World War II, Chapter IV: two, four; Rocky IV, Apollo XIII: four, thirteen. The
    pronoun "I" is never a numeral except after a heading word (World War I, Chapter I) or a ruler's name (Elizabeth I);
    a word in capitals before it (DC, XL, MIX) is left alone unless it is a heading word (CHAPTER IV, type II). WWII is
    World War two. espeak read each as "Roman eight"."""

    def said(m: re.Match[str]) -> str:
        word, space, numeral = m.groups()
        value = roman_value(numeral)
        before = m.string[max(0, m.start() - 24): m.start()].split()[-1:]  # a window: "Then I" matches often
        titled = bool(before) and before[0] in TITLES
        heading = word.lower() in ROMAN_HEADINGS
        regnal = (word in REGNAL or titled) and not heading
        if numeral == "I" and (word[0].islower() or (regnal and not titled and not _REGNAL_I_AFTER.match(m.string, m.end()))):
            return m.group(0)  # "in part I think", "Henry I think so": the pronoun
        if not value or (numeral == "I" and not (heading or regnal)) or (len(numeral) == 1 and numeral not in "IV"):
            return m.group(0)
        if word[0].islower() and not heading:
            return m.group(0)
        if not (heading or regnal) and (value > 39 or (word.isupper() and len(word) > 1)):
            return m.group(0)
        if regnal:
            return f"{word}{space}the {num.ordinal(value, table)}"
        return f"{word}{space}{num.words(value, table)}"

    text = _WORLD_WAR.sub(lambda m: f"World War {num.words(len(m.group(1)), table)}", text)
    return _ROMAN_AFTER.sub(said, text)


_UNICODE_FRACTIONS = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
                      "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}
_FRACTION = re.compile(r"(?<![\w./,-])(?:(\d+)(?:\s+|-))?(\d{1,2})/(\d{1,3})(?![\w/]|[.,]\d)"
                       r"|(?<![\w./,])(?:(\d+)\s?)?([" + "".join(_UNICODE_FRACTIONS) + r"])")
_DENOMINATORS = frozenset({2, 3, 4, 5, 6, 8, 10, 12, 16, 32, 64, 100})
"""Fractions read as fractions (others, "7/13", are left as written)."""
_SLASHED = {"24/7": "twenty-four seven", "9/11": "nine eleven", "50/50": "fifty-fifty", "20/20": "twenty-twenty"}
"""Numbers with a slash that are said as words of their own."""


def fraction_words(numerator: int, denominator: int, table: Table) -> str:
    """3/4: three quarters; 1/2: one half; 5/8: five eighths."""
    if denominator == 2:
        return f"{num.words(numerator, table)} {'half' if numerator == 1 else 'halves'}"
    part = "quarter" if denominator == 4 else num.ordinal(denominator, table)
    return f"{num.words(numerator, table)} {part}{'' if numerator == 1 else 's'}"


def _fractions(text: str, table: Table) -> str:
    """1/2, 3/4, 1 1/2, ½, 2¾: one half, three quarters, one and a half, two and three quarters (was "one slash two");
    24/7, 9/11, 50/50 as said."""

    def said(m: re.Match[str]) -> str:
        if m.group(0) in _SLASHED:
            return _SLASHED[m.group(0)]
        if m.group(5):
            whole, (top, bottom) = m.group(4), _UNICODE_FRACTIONS[m.group(5)]
        else:
            whole, top, bottom = m.group(1), int(m.group(2)), int(m.group(3))
            if bottom not in _DENOMINATORS or not 0 < top < bottom:
                return m.group(0)
        if not whole:
            return fraction_words(top, bottom, table)
        if top == 1 and bottom in (2, 4):
            return f"{num.words(int(whole), table)} and a {'half' if bottom == 2 else 'quarter'}"
        return f"{num.words(int(whole), table)} and {fraction_words(top, bottom, table)}"

    return _FRACTION.sub(said, text)


_OPERATORS = {"+": "plus", "-": "minus", "−": "minus", "×": "times", "*": "times", "÷": "divided by", "/": "divided by",
              "=": "equals"}
_SUM = re.compile(r"(?<![\w.,/+=-])\d+(?:\.\d+)?(?:\s*[-−+×*÷/]\s*\d+(?:\.\d+)?)*\s*=\s*-?\d+(?:\.\d+)?(?![\w]|[.,]\d)"
                  r"|(?<![\w.,/+=-])\d+(?:\.\d+)?(?:\s*[+×÷]\s*\d+(?:\.\d+)?)+(?![\w]|[.,]\d)")


def _sums(text: str, table: Table) -> str:
    """2+2=4, 10 - 3 = 7, 3 × 4: two plus two equals four, ten minus three equals seven (was "ten to three", a range)."""

    def said(m: re.Match[str]) -> str:
        return re.sub(r"\s*([-−+×*÷/=])\s*", lambda op: f" {_OPERATORS[op.group(1)]} ", m.group(0))

    return _SUM.sub(said, text)


_DECADE = re.compile(r"(?<![\w.,'’])(?:(1[1-9]|20)(\d)0|['’]?([1-9])0)['’]?s\b")
_TENS = ("", "tens", "twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties")


def _decades(text: str, table: Table) -> str:
    """The 1990s, the '90s, the 2010s, the 1800s: the nineteen nineties, the nineties, the twenty-tens, the eighteen
    hundreds (they were left to espeak, which read "2010s" as digits)."""

    def said(m: re.Match[str]) -> str:
        if m.group(3):  # '90s, 60s
            return _TENS[int(m.group(3))]
        century, tens = m.group(1), int(m.group(2))
        if century == "20" and tens == 0:
            return "two thousands"
        head = num.words(int(century), table)
        return f"{head} hundreds" if tens == 0 else f"{head}-{_TENS[tens]}" if century == "20" else f"{head} {_TENS[tens]}"

    return _DECADE.sub(said, text)


_EARLY_YEAR = re.compile(r"\b((?i:in|of|year|since|from|until|till|by|before|after|circa|AD|A\.D\.)\s+)(10[1-9]\d)(?![\w]|[.,]\d)"
                         r"(?!\s+(?:years|people|men|women|days|times|miles|pages|words|ships|soldiers|troops)\b)")


def _early_years(text: str, table: Table) -> str:
    """In 1066: in ten sixty-six (was "one thousand sixty-six"; years from 1100 are read as years anywhere, these after a
    word that says a year follows)."""
    return _EARLY_YEAR.sub(lambda m: m.group(1) + num.words(int(m.group(2)), table, "year"), text)


_FEET_INCHES = re.compile(r"(?<![\w.,])(\d+)(?:\s?ft\.?|\s?['’′])\s?(\d{1,2})(?:\s?in\b\.?|\s?[\"”″])")


def _feet_inches(text: str, table: Table) -> str:
    """3 ft 2 in, 5'10": three feet two inches, five feet ten inches (a lone "in" is the word, so only after feet)."""

    def said(m: re.Match[str]) -> str:
        feet, inches = int(m.group(1)), int(m.group(2))
        return (f"{num.words(feet, table)} {'foot' if feet == 1 else 'feet'} "
                f"{num.words(inches, table)} {'inch' if inches == 1 else 'inches'}")

    return _FEET_INCHES.sub(said, text)


_DECIMAL_COMMA_MONEY = re.compile(r"(?<![\w.,])([€£$]\s?\d+),(\d{2})(?!\d|,\d)|(?<![\w.,])(\d+),(\d{2})(\s?[€£])")
_BARE_DECIMAL = re.compile(r"(?<![\w.,])([€£$]?)\.(\d+)(?![\w.])")


def _amounts(text: str, table: Table) -> str:
    """€3,50 (a euro amount written the European way in English text), $.50 and .5 kg: three euros and fifty cents, fifty
    cents, zero point five kilograms (were "three euros,50", "$.50" and ".5 kg")."""
    text = _DECIMAL_COMMA_MONEY.sub(lambda m: f"{m.group(1)}.{m.group(2)}" if m.group(1) else f"{m.group(3)}.{m.group(4)}{m.group(5)}",
                                    text)
    return _BARE_DECIMAL.sub(lambda m: f"{m.group(1)}0.{m.group(2)}", text)


_HASHTAG = re.compile(r"(?<![\w&#/])#(?:(\d+)\b|([A-Za-z][A-Za-z0-9_]*))")
_VERSION = re.compile(r"(?<![\w.])v(\d+(?:\.\d+)+|\d+\b)(?![\w])")


def _tags(text: str, table: Table) -> str:
    """#1: number one; #ThrowbackThursday: hashtag Throwback Thursday; @jack: at jack; v2.1.3: version 2.1.3 (Whisper
    heard "#blessed" as "U-SASH BLUST", "v2.1.3" as "be 2.1.3")."""

    def hashtag(m: re.Match[str]) -> str:
        if m.group(1):
            return f"number {m.group(1)}"
        return "hashtag " + re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|_", " ", m.group(2)).replace("  ", " ")

    text = _HANDLE.sub(r"at \1", text)  # "@jack" (an e-mail address was read before: its "@" is gone)
    return _VERSION.sub(r"version \1", _HASHTAG.sub(hashtag, text))


_SCALED = re.compile(r"(?<![\w.,$€£¥-])(\d+(?:\.\d+)?)(M|mn|B|bn)(?!\w)")
_BY = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?)\s?x\s?(\d+(?:\.\d+)?)(?![\w]|[.,]\d)")
_TIMES = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?)x(?![\w])")


def _multiples(text: str, table: Table) -> str:
    """1.5M downloads, 3x3, 10x faster: one point five million, three by three, ten times (were "1.5M", "3x3", "10x")."""
    text = _SCALED.sub(lambda m: f"{m.group(1)} {'million' if m.group(2) in ('M', 'mn') else 'billion'}", text)
    return _TIMES.sub(r"\1 times", _BY.sub(r"\1 by \2", text))


_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")
_DIALLED = re.compile(r"\b((?:call|dial|ring)(?:s|ed|ing|led|ling)?\s+)(911|999|112|111|000|211|311|411|988)(?![\w]|[.,]\d)",
                      re.IGNORECASE)
"""An emergency or service number after "call" or "dial"."""


def _codes(text: str, table: Table) -> str:
    """192.168.1.1: one hundred ninety-two dot one hundred sixty-eight dot one dot one (left to espeak, whose reading of
    four dotted numbers varies); call 911: nine one one (was "nine hundred eleven")."""

    def address(m: re.Match[str]) -> str:
        parts = [int(g) for g in m.groups()]
        if any(p > 255 for p in parts) or re.search(r"(?:version|release)\s*$", m.string[max(0, m.start() - 12): m.start()],
                                                                  re.IGNORECASE):
            return m.group(0)
        return f" {table.symbols['.']} ".join(num.words(p, table) for p in parts)

    text = _IPV4.sub(address, text)
    return _DIALLED.sub(lambda m: m.group(1) + num.digits(m.group(2), table), text)


_DAY_MONTH = re.compile(r"(?<![\w.,/])(\d{1,2})(?:st|nd|rd|th)?\s+(January|February|March|April|May|June|July|August|September|"
                        r"October|November|December)\b(?:,?\s+(\d{4})\b)?")


def _day_month(text: str, table: Table) -> str:
    """4 July 1776, 4th July: the fourth of July, seventeen seventy-six (was "four July"), as British books write dates."""

    def said(m: re.Match[str]) -> str:
        day = int(m.group(1))
        if not 1 <= day <= 31:
            return m.group(0)
        year = f", {num.words(int(m.group(3)), table, 'year')}" if m.group(3) else ""
        article = "" if re.search(r"\bthe\s+$", m.string[max(0, m.start() - 8): m.start()], re.IGNORECASE) else "the "
        return f"{article}{num.ordinal(day, table)} of {m.group(2)}{year}"

    return _DAY_MONTH.sub(said, text)


_HANDLE = re.compile(r"(?<![\w@.])@([A-Za-z_]\w*)")


PASSES = (_tags, _amounts, _fractions, _sums, _decades, _early_years, _feet_inches, _roman, _multiples, _codes, _day_month)
"""English passes, in order: hashtags and versions before fractions (#1/2 is no fraction), sums before the range pass."""
