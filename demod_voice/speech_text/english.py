"""English-only readings a narrator meets: Roman numerals (King Henry VIII, World War II), fractions, decades, sums,
feet and inches, hashtags, version tags, and amounts written the European way (€3,50).

Each pass takes and returns text, as :mod:`.normalize`'s do; :data:`PASSES` run after dates, times and telephone
numbers and before ranges, money and plain numbers.
"""

from __future__ import annotations

import functools
import re

from demod_voice.speech_text import numbers as num
from demod_voice.speech_text.languages import Table

_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
ROMAN_HEADINGS = frozenset({"chapter", "chapters", "part", "book", "volume", "vol.", "act", "scene", "war", "phase", "stage",
                            "type", "class", "level", "article", "title", "section", "appendix", "episode", "season",
                            "round", "grade", "category", "canto", "psalm", "movement", "no.", "number", "bowl", "league", "ch."})
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
_ROMAN_YEAR = re.compile(r"(?<![\w.'’-])M{1,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})(?![\w'’-])")
"""A year in Roman numerals, as an old book prints one ("in the year MDCCCXII", "London: MDCCCXCV"): four letters or more
from M on are no word, and the year's digits are then read as a year is (espeak spelled it, "M D C C C X I I")."""
_ROMAN_AFTER = re.compile(r"(?<![\w.'’-])([A-Za-z][\w.'’-]*)(\s+)([IVXLCDM]+)(?:(?=['’]s(?!\w))|(?![\w'’-]))(?!\.\w)")
"""A word and the Roman numeral after it, which may own what follows (Henry VIII's wives)."""
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
    text = _ROMAN_YEAR.sub(lambda m: str(roman_value(m.group(0))) if len(m.group(0)) >= 4 else m.group(0), text)
    return _ROMAN_AFTER.sub(said, text)


_RATING = re.compile(r"(?<![\w.,/])(\b(?:rated|rating|scored?|scores):?\s+)?(\d{1,3}(?:\.\d)?)/(5|10|100)(?![\w/]|[.,]\d)"
                     r"(?=(\s*(?:stars?|points?)\b)?)", re.IGNORECASE)


def _ratings(text: str, table: Table) -> str:
    """4.5/5 stars, rated 8/10: four point five out of five stars, rated eight out of ten (were "four point five/five",
    "eight tenths")."""

    def said(m: re.Match[str]) -> str:
        if not (m.group(1) or m.group(4)):
            return m.group(0)
        return f"{m.group(1) or ''}{m.group(2)} out of {m.group(3)}"

    return _RATING.sub(said, text)


_STAR_RATING = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?)\s?[★⭐]\ufe0f?(?!\s?(?:[★⭐☆]|\d))|(?<![★⭐☆])([★⭐]\ufe0f?){1,10}(☆{0,10})(?![★⭐☆])")
"""``4.5★``, ``★★★★☆``: a rating in stars, which the emoji are otherwise dropped (:mod:`.emoji`)."""


def stars(text: str) -> str:
    """4.5★, ★★★★☆, ⭐⭐⭐: four point five stars, four out of five stars, three stars (the stars were dropped as emoji, and
    "Joe's Pizza – 4.5★" read "four point five"). A lone star is decoration, dropped with the other emoji. Before the
    emoji are dropped."""

    def said(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)} {'star' if m.group(1) == '1' else 'stars'}"
        filled = len(re.findall("[★⭐]", m.group(0)))
        empty = len(m.group(3))
        if filled + empty < 2:
            return m.group(0)
        return f"{filled} out of {filled + empty} stars" if empty else f"{filled} stars"

    return _STAR_RATING.sub(said, text) if ("★" in text or "⭐" in text) else text


_HEARTS = "\u2764\u2665\U0001f493-\U0001f49f\U0001f5a4\U0001f90d\U0001f90e\U0001f9e1\U0001fa75-\U0001fa77"
_HEART_VERB = re.compile(rf"(?<![\w'’])(I|[Ww]e|[Yy]ou|[Tt]hey|[Hh]e|[Ss]he|[Ee]veryone|[Ee]verybody)[ \t]+[{_HEARTS}]\ufe0f?"
                         rf"(?=[ \t]+[\w\"“'‘])")
"""A heart between a subject and what is loved ("I ❤️ NY", "We ♥ you"): the verb (the emoji pass dropped it: "I NY")."""


def hearts(text: str) -> str:
    """I ❤️ NY: I love NY; she ♥ cats: she loves cats. A heart anywhere else is decoration, dropped with the other emoji.
    Before the emoji are dropped."""
    if text.isascii():
        return text
    def said(m: re.Match[str]) -> str:
        if m.group(1) != "I" and not re.search(r"(?:^|[.!?:;\n\"“(]|\band)\s*$", m.string[max(0, m.start() - 8): m.start()]):
            return m.group(0)  # "Love you ❤️ bye": no subject, the heart is a sign-off's
        return m.group(1) + (" loves" if m.group(1).lower() in ("he", "she", "everyone", "everybody") else " love")

    return _HEART_VERB.sub(said, text)


_UNICODE_FRACTIONS = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
                      "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}
_FRACTION = re.compile(r"(?<![\w./,-])(?:(\d+)(?:\s+|-))?(\d{1,2})/(\d{1,3})(?![\w/]|[.,]\d)"
                       r"|(?<![\w./,])(?:(\d+)\s?)?([" + "".join(_UNICODE_FRACTIONS) + r"])")
DENOMINATORS = frozenset({2, 3, 4, 5, 6, 8, 10, 12, 16, 32, 64, 100})
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
            if bottom not in DENOMINATORS or not 0 < top < bottom:
                return m.group(0)
        unit = table.units.get(m.group(6) or "")
        if not whole:
            if unit:  # "3/4 tsp", "½ oz": three quarters of a teaspoon, half an ounce
                one = unit[0]
                article = "an" if one[0] in "aeiou" or one.startswith("hour") else "a"
                return f"half {article} {one}" if (top, bottom) == (1, 2) else f"{fraction_words(top, bottom, table)} of {article} {one}"
            return fraction_words(top, bottom, table)
        if top == 1 and bottom in (2, 4):
            said = f"{num.words(int(whole), table)} and a {'half' if bottom == 2 else 'quarter'}"
        else:
            said = f"{num.words(int(whole), table)} and {fraction_words(top, bottom, table)}"
        return said + (f" {unit[-1]}" if unit else "")  # "1 1/2 lb": one and a half pounds

    return _measured(table).sub(said, text)


@functools.lru_cache(maxsize=8)
def _measured(table: Table) -> re.Pattern[str]:
    """:data:`_FRACTION` and the unit that may follow it ("3/4 tsp", "1/2 kg": the unit was left as written, "three quarters
    tsp", since the units pass reads a unit only after digits)."""
    units = "|".join(re.escape(u) for u in sorted(table.units, key=len, reverse=True))
    return re.compile(rf"(?:{_FRACTION.pattern})(?:\s?({units})(?![\w/]|['’]s\b)(?:\.(?=\s*[a-z,;]))?)?")


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
_AN_AGE_OR_ERA = re.compile(r"(?:\b(?:the|her|his|their|my|your|our|its|whose|early|mid|late)\s+|\bmid-)$", re.IGNORECASE)
"""What before "30s" makes it a decade or an age ("the 30s", "in her 30s", "the late 80s")."""
_SECONDS_BEFORE = re.compile(r"(?:(?:^|\s)(?:wait|waits|waited|waiting|after|every|within|take|takes|took|taking|last|lasts|"
                             r"lasted|lasting|about|around|approximately|roughly|nearly|almost|than|only|just|least|another|"
                             r"extra|additional|first|next|sleep)\s+|[~≈]|\b(?:timeout|time-out|interval|delay|timer|duration|"
                             r"ttl|cooldown|latency|wait)\b[^.!?;\n]{0,20})$", re.IGNORECASE)
_SECONDS_IF_ALONE = re.compile(r"(?:^|\s)(?:in|for)\s+$", re.IGNORECASE)
"""Before seconds when nothing but a clause's end or a small word follows ("retry in 30s", "hold for 30s then release"),
before a decade when a noun does ("in 80s style", "for 80s fans")."""
_NOUN_AFTER = re.compile(r"\s+(?!(?:and|or|but|then|more|before|after|until|while|to|with|at|on|so|if|each|per|max|or)\b)[a-z]")
_DURATION_AFTER = re.compile(r"\s*(?:(later|ago|left|remaining|each|apiece|per|long|max|elapsed|of\s+(?:silence|audio|video|"
                             r"footage|rest|inactivity))|timeouts?|time-out|timers?|delays?|intervals?|wait|cooldown|countdown|"
                             r"pause|rest|break|window|limit|TTL|poll|polling|retry|retries|sleep|grace|clip|video|ad|plank|"
                             r"hold|sprint|intro)\b", re.IGNORECASE)
"""What after "30s" makes it a duration: a noun it measures ("a 30s timeout": a thirty-second timeout) or a word that
follows a length of time ("30s later": thirty seconds later)."""


def _seconds(m: re.Match[str], table: Table) -> str:
    """"30s" (two digits, no apostrophe) said as a duration when the words around it say so ("a 30s timeout", "wait 30s",
    "the timeout is 30s"), else ``""``: a decade or an age ("the 30s", "in her 30s", "80s music")."""
    if m.group(0)[0] in "'’" or not m.group(3):
        return ""
    seconds = num.words(int(m.group(3)) * 10, table)
    after = _DURATION_AFTER.match(m.string, m.end())
    if after:
        return f"{seconds} seconds" if after.group(1) else f"{seconds}-second"
    before = m.string[max(0, m.start() - 40): m.start()]
    if _AN_AGE_OR_ERA.search(before):
        return ""
    if _SECONDS_BEFORE.search(before) or (_SECONDS_IF_ALONE.search(before) and not _NOUN_AFTER.match(m.string, m.end())):
        return f"{seconds} seconds"
    return ""


def _decades(text: str, table: Table) -> str:
    """The 1990s, the '90s, the 2010s, the 1800s: the nineteen nineties, the nineties, the twenty-tens, the eighteen
    hundreds (they were left to espeak, which read "2010s" as digits). "30s" said to be a duration by the words around
    it is thirty seconds ("a 30s timeout" was "a thirties timeout")."""

    def said(m: re.Match[str]) -> str:
        duration = _seconds(m, table)
        if duration:
            return duration
        if m.group(3):  # '90s, 60s
            return _TENS[int(m.group(3))]
        century, tens = m.group(1), int(m.group(2))
        if century == "20" and tens == 0:
            return "two thousands"
        head = num.words(int(century), table)
        return f"{head} hundreds" if tens == 0 else f"{head}-{_TENS[tens]}" if century == "20" else f"{head} {_TENS[tens]}"

    return _DECADE.sub(said, text)


_COMPOUND_DURATION = re.compile(r"(?<![\w.,:])\d+[dhms](?:[ ]?\d+(?:ms|[hms]))+(?!\w)")
"""``1m 30s``, ``2h 30m``, ``1d 4h``: a length of time in its units, largest first (was "one meter thirties", "two hours
thirty meters")."""
_DURATION_UNITS = {"d": ("day", 0), "h": ("hour", 1), "m": ("minute", 2), "s": ("second", 3), "ms": ("millisecond", 4)}


def _durations(text: str, table: Table) -> str:
    """1m 30s, 2h 30m, 1h30m: one minute and thirty seconds, two hours and thirty minutes. Each unit once, largest first,
    or it is left as written. Before the decades pass ("30s") and the units pass ("m" is a meter alone)."""

    def said(m: re.Match[str]) -> str:
        parts = re.findall(r"(\d+)(ms|[dhms])", m.group(0))
        ranks = [_DURATION_UNITS[unit][1] for _, unit in parts]
        if ranks != sorted(set(ranks)):
            return m.group(0)
        words = [f"{num.words(int(n), table)} {_DURATION_UNITS[unit][0]}{'' if int(n) == 1 else 's'}" for n, unit in parts]
        return ", ".join(words[:-1]) + f" and {words[-1]}"

    return _COMPOUND_DURATION.sub(said, text) if re.search(r"\d[dhms]", text) else text


_EARLY_YEAR = re.compile(r"\b((?i:in|of|year|since|from|until|till|by|before|after|circa|AD|A\.D\.)\s+)(10[1-9]\d)(?![\w]|[.,]\d)"
                         r"(?!\s+(?:years|people|men|women|days|times|miles|pages|words|ships|soldiers|troops)\b)")


def _early_years(text: str, table: Table) -> str:
    """In 1066: in ten sixty-six (was "one thousand sixty-six"; years from 1100 are read as years anywhere, these after a
    word that says a year follows)."""
    return _EARLY_YEAR.sub(lambda m: m.group(1) + num.words(int(m.group(2)), table, "year"), text)


_FEET_INCHES = re.compile(r"(?<![\w.,])(\d+)(?:\s?ft\.?|\s?['’′])\s?(\d{1,2})(?:\s?in\b(?:\.(?=\s*[a-z,;]))?|\s?[\"”″])")
_INCHES = re.compile(r"(?<![\w.,/])(\d+(?:\.\d+|/\d+)?)[\"”″](?:\s?[x×]\s?(\d+(?:\.\d+)?)[\"”″])?(?:\s?[x×]\s?(\d+(?:\.\d+)?)[\"”″])?")
_MEASURE_WORDS = re.compile(r"\s*(?:[^\w\s]|$|(?:long|wide|tall|high|deep|thick|across|diagonal|of|and|or|in|to|by|at|on|from|with)\b)")
"""What may follow a length said in full ("12 inches long"); before any other word it is an adjective ("a 15.6-inch screen")."""


def _quote_marks(text: str) -> set[int]:
    """Where a ``"`` after a digit closes a quotation ("Take 5"), not an inch mark: marks opened and closed in turn."""
    closing, inside = set(), False
    for mark in re.finditer(r"[\"“”″]", text):
        after_digit = mark.start() > 0 and text[mark.start() - 1].isdigit()
        if after_digit and not inside:
            continue  # an inch mark
        if after_digit:
            closing.add(mark.start())
        inside = not inside if mark.group(0) in "\"" else mark.group(0) == "“"
    return closing


def _inches(text: str, table: Table) -> str:
    """15.6", 12" x 8", 3/4": fifteen point six inches, twelve by eight inch paper, three quarters inch (the mark was
    dropped: heard "a 15.6 screen"; "3/4"" was "three quarters""). Before the fractions pass, which reads "3/4" after."""
    if not re.search(r"\d[\"”″]", text):
        return text
    quotes = _quote_marks(text)

    def said(m: re.Match[str]) -> str:
        if m.end(1) in quotes:
            return m.group(0)
        sizes = [size for size in m.groups() if size]
        plural = sizes != ["1"] and _MEASURE_WORDS.match(m.string, m.end()) is not None
        return " by ".join(sizes) + (" inches" if plural else " inch")

    return _INCHES.sub(said, text)


def _feet_inches(text: str, table: Table) -> str:
    """3 ft 2 in, 5'10": three feet two inches, five feet ten inches (a lone "in" is the word, so only after feet)."""

    def said(m: re.Match[str]) -> str:
        feet, inches = int(m.group(1)), int(m.group(2))
        return (f"{num.words(feet, table)} {'foot' if feet == 1 else 'feet'} "
                f"{num.words(inches, table)} {'inch' if inches == 1 else 'inches'}")

    return _FEET_INCHES.sub(said, text)


_DECIMAL_COMMA_MONEY = re.compile(r"(?<![\w.,])([€£$]\s?\d+),(\d{2})(?!\d|,\d)|(?<![\w.,])(\d+),(\d{2})(\s?[€£])")
_DOTTED_MONEY = re.compile(r"(?<![\w.,])([€£$]\s?)(\d{1,3}(?:\.\d{3})+)(?:,(\d{2}))?(?!\d|[.,]\d)"
                           r"(?!\s?(?:thousand|million|billion|trillion|bn|mn|[MmBkK])\b)"
                           r"|(?<![\w.,])(\d{1,3}(?:\.\d{3})+)(?:,(\d{2}))?(\s?[€£])")
"""€1.234,56 and 1.234,56 €: thousands grouped by dots (an amount has no third decimal), as Europe writes them. Not
before a scale ("$1.234 billion" is one point two three four billion), and after a dollar or pound sign only with its
cents after a comma or with two groups ("$3.599 a gallon", "$12.345 a share" are prices to a tenth of a cent)."""


def _dotted_money(m: re.Match[str]) -> str:
    if m.group(1) and m.group(1).strip() != "€" and not m.group(3) and m.group(2).count(".") == 1:
        return m.group(0)
    return ((m.group(1) or "") + (m.group(2) or m.group(4)).replace(".", "") +
            (f".{m.group(3) or m.group(5)}" if m.group(3) or m.group(5) else "") + (m.group(6) or ""))
_BARE_DECIMAL = re.compile(r"(?<![\w.,])([€£$]?)\.(\d+)(?![\w.])")


def _amounts(text: str, table: Table) -> str:
    """€3,50 and €1.234,56 (euro amounts written the European way in English text), $.50 and .5 kg: three euros and fifty
    cents, one thousand two hundred thirty-four euros and fifty-six cents, fifty cents, zero point five kilograms (were
    "three euros,50", "one euro and twenty-three cents,56", "$.50" and ".5 kg")."""
    text = _DOTTED_MONEY.sub(_dotted_money, text)
    text = _DECIMAL_COMMA_MONEY.sub(lambda m: f"{m.group(1)}.{m.group(2)}" if m.group(1) else f"{m.group(3)}.{m.group(4)}{m.group(5)}",
                                    text)
    return _BARE_DECIMAL.sub(lambda m: f"{m.group(1)}0.{m.group(2)}", text)


_SHILLINGS = re.compile(r"(?<![\w.,])(£\s?\d+\s+)?(\d{1,2})s\.?\s?(?:(\d{1,2})d(?:\.(?=\s*[a-z,;]))?)?(?!\w)")
"""£5 5s. 6d., 2s. 6d., £1 1s.: pounds, shillings and pence as books before 1971 print them (read "five seconds. 6d.")."""


def _shillings(text: str, table: Table) -> str:
    """2s. 6d., £3 10s.: two shillings and six pence, three pounds ten shillings. Shillings are read only with pence after
    them or a pound amount before them: "5s" alone is a time in seconds."""

    def said(m: re.Match[str]) -> str:
        pounds, shillings, pence = m.group(1), int(m.group(2)), m.group(3)
        if not pounds and pence is None:
            return m.group(0)
        words = f"{num.words(shillings, table)} {'shilling' if shillings == 1 else 'shillings'}"
        if pence is not None:
            words += f" and {num.words(int(pence), table)} {'penny' if pence == '1' else 'pence'}"
        # a full stop the abbreviation took is a sentence's end again before a capital or the end
        end = "." if m.group(0).endswith(".") and not re.match(r"\s*[a-z,;]", m.string[m.end():]) else ""
        return f"{pounds or ''}{words}{end}"

    return _SHILLINGS.sub(said, text)


_PLUS_MINUS = re.compile(r"(?:±|\+/-|\+/−)\s?(?=[$€£]?\.?\d)")


def _plus_minus(text: str, table: Table) -> str:
    """±3%, +/- 0.5 mm, 1+/-2: plus or minus three percent, one plus or minus two. The sign was left as written: espeak
    says it, but an engine reading text (XTTS) was given "±three percent", and "+/- 5" was heard "plus-slash-5". Written
    against the number before it, the words are set apart from it ("1+/-2" was "1plus or minus two")."""

    def said(m: re.Match[str]) -> str:
        joined = m.start() > 0 and (m.string[m.start() - 1].isalnum() or m.string[m.start() - 1] in "%°)")
        return (" " if joined else "") + "plus or minus "

    return _PLUS_MINUS.sub(said, text)


_ABOUT = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[(\[]))[~≈]\s?(?=[$€£¥₹]?\.?\d)", re.MULTILINE)
"""``~300,000 km/s``, ``~24s``, ``≈ 5 min``: about (espeak said "tilde three hundred thousand")."""


def _about(text: str, table: Table) -> str:
    """~5 min, ≈ $20: about five minutes, about twenty dollars. Not between numbers ("1~5" is a range)."""
    return _ABOUT.sub("about ", text) if "~" in text or "≈" in text else text


_PER_WORDS = {"mo": "month", "yr": "year", "wk": "week", "hr": "hour", "gal": "gallon", "kWh": "kilowatt hour", "lb": "pound",
              "kg": "kilogram", "oz": "ounce", "mi": "mile", "km": "kilometer", "sq ft": "square foot", "pp": "person"}
_PER = re.compile(r"(?:(?<=[\d¢%])|(?<=\dx))/(month|mo|year|yr|week|wk|day|night|hour|hr|person|pp|head|user|seat|gallon|gal|kWh|lb|kg|"
                  r"oz|mile|mi|km|sq ft|unit|piece|page|item|ticket|share|serving)\b")
"""``$4.99/month``, ``$3.45/gal``, ``15¢/kWh``: an amount for each of something (the slash was read, "cents slash month")."""


def _per(text: str, table: Table) -> str:
    """$4.99/month, $3.45/gal, 15¢/kWh, 2/day: four dollars and ninety-nine cents per month, ... per gallon, fifteen cents
    per kilowatt hour, two per day. Before the money pass, which reads the amount."""
    if "/" not in text:
        return text
    return _PER.sub(lambda m: f" per {_PER_WORDS.get(m.group(1), m.group(1))}", text)


_AND_OVER = re.compile(r"(?<![\w.,+])(\d+(?:\.\d+)?)\+(?![\w+=/−(-]|\s\d)")


def _and_over(text: str, table: Table) -> str:
    """18+, 5+ years, $100+: eighteen plus (the sign was left as written, "eighteen+"). Not in a sum (2+2, 1 + 1)."""
    return _AND_OVER.sub(r"\1 plus", text)


_SCIENTIFIC = re.compile(r"(?<![\w.,#])(\d+(?:\.\d+)?)(?:[eE]|\s?[x×·]\s?10\^)([-+−]?)(\d{1,3})(?![\w^]|[.,]\d)")
_POWER = re.compile(r"(?<![\w.,])(\d+)\^([-−]?)(\d{1,3})(?![\w^]|[.,]\d)")


def _powers(text: str, table: Table) -> str:
    """1e-3, 6.02e23, 3 x 10^8, 2^10: one times ten to the power of minus three..., two to the power of ten (heard "1e3"
    and "3, X10, 8"). Not after "#": "#1e3" is a colour (was "number one times ten to the power of three")."""

    def power(sign: str, exponent: str) -> str:
        return f"to the power of {table.minus + ' ' if sign in '-−' and sign else ''}{exponent}"

    text = _SCIENTIFIC.sub(lambda m: f"{m.group(1)} times ten {power(m.group(2), m.group(3))}", text)
    return _POWER.sub(lambda m: f"{m.group(1)} {power(m.group(2), m.group(3))}", text)


_COLOUR = re.compile(r"(?<![\w&#/])#(?:(?=[a-fA-F]*\d)(?=\d*[a-fA-F])([0-9a-fA-F]{6})|(?=[a-f]*\d)(?=\d*[a-f])([0-9a-f]{3}))"
                     r"(?![\w-])")
"""``#1e3``, ``#ff0000``: a colour's hex code, digits and letters a-f mixed (``#333``, ``#fff`` may be a number, a tag);
of three, in small letters only: ``#A12``, ``#10A`` are a gate's, a flat's number ("hash A one two" was read)."""
_HASHTAG = re.compile(r"(?<![\w&#/])#(?:(\d+)\b|([A-Z]{1,3}\d{2,}|\d+[A-Z])\b|([A-Za-z][A-Za-z0-9_]*|\d+(?!(?:st|nd|rd|th)\b)[A-Za-z]{2}\w*))")
"""#1, #A123, #A12, #10A (an order's, a gate's, a flat's number: "number A one two three"), #ThrowbackThursday, #100DaysOfCode (hashtags)."""
_VERSION = re.compile(r"(?<![\w.])v(\d+(?:\.\d+)+|\d+\b)(?![\w])")


_VERSIONED = re.compile(r"\b((?:[Vv]ersion|[Rr]elease|Python|iOS|iPadOS|macOS|Android|Windows|Node|Java|Ubuntu|Debian|Fedora|"
                        r"Firefox|Chrome|Kotlin|PHP)\s+)(\d+\.\d{2,})(?![\w]|[.,]\d)")
"""``Python 3.12``, ``version 1.10``: a version's two numbers, the second of two digits or more, each read whole ("three point
twelve"; the decimal reading said "three point one two"). A version of three numbers or more is left as written."""


def _versions(text: str, table: Table) -> str:
    """Python 3.12, release 1.10: Python three point twelve, release one point ten."""
    return _VERSIONED.sub(lambda m: m.group(1) + " point ".join(num.words(int(part), table) for part in m.group(2).split(".")),
                          text)


def _tags(text: str, table: Table) -> str:
    """#1: number one; #ThrowbackThursday: hashtag Throwback Thursday; @jack: at jack; v2.1.3: version 2.1.3 (Whisper
    heard "#blessed" as "U-SASH BLUST", "v2.1.3" as "be 2.1.3")."""

    def spelled(code: str) -> str:  # letters as capitals: espeak reads a lone "a" as the article
        return " ".join(num.words(int(ch), table) if ch.isdigit() else ch.upper() for ch in code)

    def hashtag(m: re.Match[str]) -> str:
        if m.group(1):
            return f"number {m.group(1)}"
        if m.group(2):  # "order #A123" was "hashtag A one hundred twenty-three"
            return f"number {spelled(m.group(2))}"
        # "#100DaysOfCode" was left as written
        return "hashtag " + re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])|_", " ", m.group(3)).replace("  ", " ")

    text = _HANDLE.sub(r"at \1", text)  # "@jack" (an e-mail address was read before: its "@" is gone)
    text = _COLOUR.sub(lambda m: f"{table.symbols['#']} {spelled(m.group(1) or m.group(2))}", text)  # hash F F zero...
    return _VERSION.sub(r"version \1", _HASHTAG.sub(hashtag, text))


_SCALED = re.compile(r"(?<![\w.,$€£¥-])(\d+(?:\.\d+)?)(M|mn|B|bn)(?!\w)(?=(\s+(?!(?:on|in|at|of|to|and|or|is|was|has|had|"
                     r"with|for|from|where|which|that|the|a|an)\b)[a-z])?)")
"""1.5M downloads, 7B parameters, 2bn: a scale. A whole number's lone M or B before no word in lower case, or before a small
word ("on", "was", "and"), is a flat's or a house's letter ("221B Baker Street", "Flat 4B,", "Room 12B on the third
floor": was "two hundred twenty-one billion")."""
_KAY = re.compile(r"(?<![\w.,$€£¥-])(\d+(?:\.\d+)?)[kK](?!\w)")
"""A 5k run, 4K video, 10k followers: said "five K" (the text kept "5k" for engines reading text, XTTS)."""
_PENCE = re.compile(r"(?<![\w.,$€£¥-])(\d{1,2})p(?!\w)")
"""``25p``, ``a 50p coin``: pence (left as written); three digits and more are a video's lines ("1080p")."""
_BY = re.compile(r"(?<![\w.,])\d+(?:\.\d+)?(?:\s?x\s?\d+(?:\.\d+)?)+(?!\d|[.,]\d|x)(?=(?:mm|cm|m|km|in|ft|px|p)?\b)")
"""3x3, 10 x 20 x 30 cm, 10x20cm: each "x" between numbers is "by" (the second of three was "x": "ten by twenty x thirty");
a length's unit may follow it at once, another unit not ("3 x 1.5V" is three cells)."""
_TIMES = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?)x(?![\w])")


def _scaled(m: re.Match[str]) -> str:
    if m.group(2) in ("M", "B") and "." not in m.group(1) and not m.group(3):
        return f"{m.group(1)} {m.group(2)}"
    return f"{m.group(1)} {'million' if m.group(2) in ('M', 'mn') else 'billion'}"


def _multiples(text: str, table: Table) -> str:
    """1.5M downloads, 3x3, 10x faster, a 5k, 25p: one point five million, three by three, ten times, five K, twenty-five
    pence (were "1.5M", "3x3", "10x", "5k", "25p")."""
    text = _SCALED.sub(_scaled, text)
    text = _KAY.sub(r"\1 K", text)
    text = _PENCE.sub(lambda m: f"{m.group(1)} {'penny' if m.group(1) == '1' else 'pence'}", text)
    text = _BY.sub(lambda m: re.sub(r"\s?x\s?", " by ", m.group(0)), text)
    return _TIMES.sub(r"\1 times", text)


_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")
_DIALLED = re.compile(r"\b((?:call|dial|ring)(?:s|ed|ing|led|ling)?\s+)(911|999|112|111|000|211|311|411|988)(?![\w]|[.,]\d)",
                      re.IGNORECASE)
"""An emergency or service number after "call" or "dial"."""
_SERVICE = re.compile(r"(?<![\w.,$€£¥#/+-])([2-9]11|988)(?![\w%°'’]|[.,]\d|\s?[-–—/:x×+*=]\s?\d)")
"""A service's three digits (211 to 911, 988) where no "call" or "dial" is before them: "the line at 311", "911 is the
number" (were "three hundred eleven", "nine hundred eleven"), as a US reader says them."""
_SERVICE_NOUNS = re.compile(r"\s+(?:calls?|callers?|lines?|operators?|dispatch(?:ers?)?|cent(?:er|re)s?|services?|hotlines?|"
                            r"helplines?|apps?|systems?|requests?|reports?|relay|texts?|responders?|emergenc(?:y|ies))\b")
"""What a service's number names after it ("the 311 line", "a 911 call"): the number is the service's."""
_NOT_A_NOUN = frozenset({"is", "was", "are", "were", "will", "would", "can", "could", "should", "may", "might", "must", "and",
                         "or", "but", "for", "if", "to", "on", "in", "at", "from", "with", "by", "as", "then", "so", "when",
                         "now", "right", "first", "immediately", "again", "too", "also", "instead", "anytime", "directly",
                         "has", "had", "does", "did", "answered", "answers", "said", "says", "sent", "told", "asked", "any",
                         "today", "tonight", "back", "free", "yet"})
"""Words after a number that do not make it a count ("311 people"): verbs and small words ("911 is the number")."""
_COUNTED_BEFORE = frozenset({"in", "of", "from", "year", "years", "page", "pages", "p.", "pp.", "no.", "about", "around",
                             "over", "under", "nearly", "almost", "than", "only", "just", "some", "exactly", "roughly",
                             "approximately", "all", "those", "these", "first", "last", "top", "until", "since", "by", "ad",
                             "bc", "circa", "c.", "ca.", "total", "was", "were", "reached", "hit", "rose", "fell", "grew",
                             "had", "has", "have", "with", "scored", "weighed", "cost", "costs", "chapter", "part", "section",
                             "volume", "vol.", "room", "suite", "flight", "bus", "route", "apartment", "apt.", "unit", "floor",
                             "figure", "fig.", "table", "item", "step", "verse", "track", "episode"})
"""Words before a number that make it a count, a year or a page ("in 911", "page 311", "a total of 411")."""
_SERVICE_CUES = re.compile(r"\b(?:call\w*|dial\w*|phon\w*|text\w*|line|hotline|helpline|number|emergenc\w*|crisis|"
                           r"services?|operator|dispatch\w*|director\w*|report\w*|non-emergency)\b", re.IGNORECASE)
"""Words in a sentence that say its 211 to 811 or 988 is a service to call (911 needs none)."""


_CODE = re.compile(r"\b((?:code|PIN|OTP|passcode)(?:\s+(?:is|was))?:?\s+)(\d{3,8})(?![\w]|[.,]\d|\s+[a-z]+s\b)", re.IGNORECASE)
"""A code to type or say back: "Your verification code is 483920", "zip code 90210", "PIN: 1234"."""
_EXTENSION = re.compile(r"\b((?:(?:zero|one|two|three|four|five|six|seven|eight|nine) ){3})x(\d{1,5})\b")
"""``555-0100 x23``: an extension after a telephone number (the telephone pass has read its digits already: three digit
words before the "x")."""
_VANITY = re.compile(r"(?<![\w-])1[- ](8(?:00|88|77|66|55|44|33))[- ]([A-Z]{2,}(?:-[A-Z]+)*)(?![\w-])")
"""``1-800-FLOWERS``: a toll-free number spelled as a word, said "one eight hundred flowers" (was "one to eight
hundred-FLOWERS": the range pass took "1-800")."""
_HIGHWAY = re.compile(r"(?<![\w.-])(?:(I|US|SR|SH)-|((?:Interstate|Highway|Hwy\.?|Route|Rte\.?|State Route) ))(\d{1,3})"
                      r"(?![\w]|[.,:]\d|\s?[-–/]\s?\d)")
"""``I-405``, ``US-101``, ``Highway 101``, ``Route 128``: a road, its number of three digits read in two (was "I-four hundred
five", "US-one hundred one")."""


_LETTERED_ROAD = re.compile(r"(?<![\w.#/-])([ABM])([1-9]\d\d)(?=\(M\)|(?![\w]|[.,:]\d|\s?[-–/]\s?\d))")
"""``A303``, ``M180``: a British road (or an airliner, A380) of three digits, read in two ("A three oh three"; was "A three
hundred three")."""


def road_number(number: int, table: Table) -> str:
    """A road's number as a US driver says it: 5, 95; 405 "four oh five", 101 "one oh one", 280 "two eighty"."""
    if number < 100 or number % 100 == 0:
        return num.words(number, table)
    rest = number % 100
    return f"{num.words(number // 100, table)} {'oh ' if rest < 10 else ''}{num.words(rest, table)}"


def _highways(text: str, table: Table) -> str:
    """I-405, I-5, US-101, Highway 1: I four oh five, I five, US one oh one, Highway one (the dash was read as a range's
    or a minus, the number as a count). Before the range and telephone passes' readings of dashes."""
    # the letter joined to its number by dashes: "A three" was "uh three", the article
    text = _LETTERED_ROAD.sub(lambda m: f"{m.group(1)}-" + road_number(int(m.group(2)), table).replace(" ", "-"), text)
    if "-" not in text and not re.search(r"Interstate|Highway|Hwy|Route|Rte", text):
        return text
    return _HIGHWAY.sub(lambda m: (f"{m.group(1)} " if m.group(1) else m.group(2)) + road_number(int(m.group(3)), table), text)


_ORDINAL_RANGE = re.compile(r"\b(\d+(?:st|nd|rd|th))\s?[-–]\s?(\d+(?:st|nd|rd|th))\b")
"""``1st-3rd``: a range of ordinals ("first-third")."""


_ISBN = re.compile(r"\b(ISBN(?:-1[03])?:?\s?)(97[89](?:[ -]?\d){10}|\d(?:[ -]?\d){8}[ -]?[\dX])(?![\w-]|[.,]\d)")
"""``ISBN 978-3-16-148410-0``: read digit by digit, a pause between its groups (was "nine hundred seventy-eight-three-sixteen-...").
Its thirteen digits or ten (the last may be X), no more: "ISBN 0-306-40615-2 12 copies" took the count into the ISBN."""
_CIRCA = re.compile(r"(?<![\w.])(?:c|ca)\.\s?(?=\d{3,4}\b)")
"""``c. 1850``, ``ca. 1850``: circa, before a year (was "c. eighteen fifty")."""
_LABEL = re.compile(r"(?<![\w.])([abc])[.)][ \t]")
"""A list's label ("a. 1990, b. 2000, c. 2010"; one a line)."""


def _opener(text: str, at: int) -> str:
    """What is written before ``at``, spaces aside: its last mark, or a line's start."""
    return text[max(0, at - 40): at].rstrip(" \t")[-1:] or "\n"


def _third_label(m: re.Match[str]) -> bool:
    """Whether the "c." of ``m`` is a list's third label: the two labels just before it are "a." and "b.", and "b." is
    set off as it is (after a comma, at a line's start), not "(b. 1809)", born."""
    labels = list(_LABEL.finditer(m.string, max(0, m.start() - 200), m.start()))[-2:]
    return ([label.group(1) for label in labels] == ["a", "b"] and
            _opener(m.string, labels[1].start()) == _opener(m.string, m.start()))


def _isbns(text: str, table: Table) -> str:
    """ISBNs digit by digit; c. and ca. before a year as circa. Before the telephone pass's and the range pass's
    readings of their digits and dashes."""

    def isbn(m: re.Match[str]) -> str:
        groups = [g for g in re.split(r"[ -]", m.group(2)) if g]
        return m.group(1) + ", ".join(" ".join("X" if d == "X" else num.words(int(d), table) for d in g) for g in groups)

    def circa(m: re.Match[str]) -> str:  # "a. 1990, b. 2000, c. 2010" was "... circa twenty ten"
        return m.group(0) if m.group(0).startswith("c.") and _third_label(m) else "circa "

    return _CIRCA.sub(circa, _ISBN.sub(isbn, text))


def _ordinal_ranges(text: str, table: Table) -> str:
    """1st-3rd: first to third. After the day-and-month pass ("3rd-5th March": the third to the fifth of March)."""
    return _ORDINAL_RANGE.sub(r"\1 to \2", text)


def _codes(text: str, table: Table) -> str:
    """192.168.1.1: one hundred ninety-two dot one hundred sixty-eight dot one dot one (left to espeak, whose reading of
    four dotted numbers varies); call 911: nine one one (was "nine hundred eleven"); code 483920: four eight three nine two
    zero."""

    def address(m: re.Match[str]) -> str:
        parts = [int(g) for g in m.groups()]
        if any(p > 255 for p in parts) or re.search(r"(?:version|release)\s*$", m.string[max(0, m.start() - 12): m.start()],
                                                                  re.IGNORECASE):
            return m.group(0)
        return f" {table.symbols['.']} ".join(num.words(p, table) for p in parts)

    def typed(m: re.Match[str]) -> str:  # a unit after it says a measure: "a pin 300 mm long" was "three zero zero mm"
        unit = re.match(r"\s?([^\s,;:!?]+?)\.?(?=[\s,;:!?]|$)", m.string[m.end():])
        return m.group(0) if unit and unit.group(1) in table.units else m.group(1) + num.digits(m.group(2), table)

    text = _VANITY.sub(lambda m: f"one {'eight hundred' if m.group(1) == '800' else num.digits(m.group(1), table)} "
                       + m.group(2).replace("-", " "), text)
    text = _EXTENSION.sub(r"\1extension \2", text)  # was "x23"
    # digit by digit, as it is typed: "code is 483920" was "four hundred eighty-three thousand nine hundred twenty"
    text = _CODE.sub(typed, text)
    text = _IPV4.sub(address, text)
    text = _DIALLED.sub(lambda m: m.group(1) + num.digits(m.group(2), table), text)
    return _SERVICE.sub(lambda m: num.digits(m.group(1), table) if _a_service(m) else m.group(0), text)


def _a_service(m: re.Match[str]) -> bool:
    """Whether the three digits of ``m`` (:data:`_SERVICE`) are a service to call: a service's word after them ("the 311
    line"); else not a count (no noun after, "311 people"; no name before, "Room 311"; no "in", "page" or "of" before)
    and, but for 911, a word of calling in the sentence ("the line at 311")."""
    if _SERVICE_NOUNS.match(m.string, m.end()):
        return True
    after = re.match(r"\s+([A-Za-z]+)", m.string[m.end(): m.end() + 24])
    if after and (after.group(1)[0].isupper() or after.group(1) not in _NOT_A_NOUN):
        return False  # "311 people", "311 Main Street"
    before = m.string[max(0, m.start() - 120): m.start()]
    words = re.findall(r"\S+", before[-40:])
    if words and not re.search(r"[,;:(\"“]$", words[-1]):
        last = words[-1]
        opens = len(words) == 1 and re.search(r"(?:^|[.!?\n]\s*)\S+\s*$", before) is not None or (
            len(words) > 1 and re.search(r"[.!?]['\"”’]?$", words[-2]) is not None)
        if last.lower() in _COUNTED_BEFORE or (last[0].isupper() and not opens):
            return False  # "in 911", "Room 311"
    if m.group(1) == "911":
        return True
    sentence = re.split(r"[.!?\n]", before)[-1] + re.split(r"[.!?\n]", m.string[m.end(): m.end() + 80])[0]
    return _SERVICE_CUES.search(sentence) is not None


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
          "December")
SHORT_MONTHS = r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\b\.?"
"""A month's abbreviation, with or without its dot: read as the month next to a day, as its full name is
("7 Dec 2026" was "seven Dec twenty twenty-six": espeak said "seven December", not "the seventh of December")."""


def month(written: str) -> str:
    """The month ``written`` names in full or in short (``Dec.`` -> ``December``)."""
    return next(name for name in MONTHS if name.startswith(written.rstrip(".")[:3]))


_DAY_MONTH = re.compile(rf"(?<![\w.,/])(\d{{1,2}})(?:st|nd|rd|th)?(?:\s?[-–]\s?(\d{{1,2}})(?:st|nd|rd|th)?)?\s+"
                        rf"({'|'.join(MONTHS)}|{SHORT_MONTHS})(?:\b|(?<=\.))(?:,?\s+(\d{{4}})\b)?")


def _day_month(text: str, table: Table) -> str:
    """4 July 1776, 4th July, 1-15 Jan: the fourth of July, seventeen seventy-six (was "four July"), the first to the
    fifteenth of January, as British books write dates."""

    def said(m: re.Match[str]) -> str:
        day, last = int(m.group(1)), int(m.group(2)) if m.group(2) else None
        if not 1 <= day <= 31 or (last is not None and not day < last <= 31):
            return m.group(0)
        year = f", {num.words(int(m.group(4)), table, 'year')}" if m.group(4) else ""
        article = "" if re.search(r"\bthe\s+$", m.string[max(0, m.start() - 8): m.start()], re.IGNORECASE) else "the "
        # "on 3 Mar." at a sentence's end: the dot is the sentence's too
        stop = "." if m.group(3).endswith(".") and not year and re.match(r"\s*(?:[A-Z]|$)", m.string[m.end():]) else ""
        days = num.ordinal(day, table) + (f" to the {num.ordinal(last, table)}" if last else "")  # "1-15 Jan" was "one-the fifteenth"
        return f"{article}{days} of {month(m.group(3))}{year}{stop}"

    return _DAY_MONTH.sub(said, text)


_RATIO = re.compile(r"(?<![\w.,:])(\d{1,3}):(\d{1,3})(?![\w:]|[.,]\d|[-–]\d)")
_VERSE_BOOKS = frozenset({"Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth", "Samuel",
                          "Kings", "Chronicles", "Ezra", "Nehemiah", "Esther", "Job", "Psalm", "Psalms", "Proverbs",
                          "Ecclesiastes", "Song", "Songs", "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea",
                          "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
                          "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "Corinthians", "Galatians",
                          "Ephesians", "Philippians", "Colossians", "Thessalonians", "Timothy", "Titus", "Philemon", "Hebrews",
                          "James", "Peter", "Jude", "Revelation", "Sura", "Surah"})
"""Books whose chapter and verse are written N:M (Genesis 1:1 is "Genesis one one", as John 3:16 is read as a time)."""


def _ratios(text: str, table: Table) -> str:
    """16:9, 1:1, 3:2, 1:100: sixteen to nine, one to one (was "sixteen:nine", heard "sixteen colon nine"). What the
    time pass left: a minute of one digit or three is no time. After a capitalised word that does not open the sentence,
    or a book of scripture, it is a chapter and verse (Genesis 1:1, Psalm 23:4): the two numbers."""

    def said(m: re.Match[str]) -> str:
        before = m.string[max(0, m.start() - 30): m.start()]
        word = re.search(r"([A-Z][a-z]+)\s+$", before)
        opens = word is not None and re.search(r"(?:^|[.!?:;]\s+|\n\s*)$", before[: word.start()]) is not None
        if word and (word.group(1) in _VERSE_BOOKS or not opens):
            return f"{m.group(1)} {m.group(2)}"
        return f"{m.group(1)} to {m.group(2)}"

    return _RATIO.sub(said, text)


_BOOK_SHORT = {"Gen": "Genesis", "Ex": "Exodus", "Exod": "Exodus", "Lev": "Leviticus", "Num": "Numbers", "Deut": "Deuteronomy",
               "Josh": "Joshua", "Judg": "Judges", "Sam": "Samuel", "Kgs": "Kings", "Chr": "Chronicles", "Chron": "Chronicles",
               "Neh": "Nehemiah", "Esth": "Esther", "Ps": "Psalm", "Psa": "Psalm", "Prov": "Proverbs", "Eccl": "Ecclesiastes",
               "Isa": "Isaiah", "Jer": "Jeremiah", "Lam": "Lamentations", "Ezek": "Ezekiel", "Dan": "Daniel", "Hos": "Hosea",
               "Obad": "Obadiah", "Mic": "Micah", "Hab": "Habakkuk", "Zeph": "Zephaniah", "Hag": "Haggai", "Zech": "Zechariah",
               "Mal": "Malachi", "Matt": "Matthew", "Mt": "Matthew", "Mk": "Mark", "Lk": "Luke", "Jn": "John", "Rom": "Romans",
               "Cor": "Corinthians", "Gal": "Galatians", "Eph": "Ephesians", "Phil": "Philippians", "Col": "Colossians",
               "Thess": "Thessalonians", "Tim": "Timothy", "Heb": "Hebrews", "Jas": "James", "Pet": "Peter", "Rev": "Revelation"}
"""Books of scripture as references shorten them; before a chapter and verse "Gen. 1:1" is Genesis (was "general one to one")."""
_NAMES_TOO = frozenset({"Ex", "Num", "Josh", "Sam", "Dan", "Mic", "Hab", "Mal", "Rom", "Col", "Phil", "Tim", "Pet", "Lam", "Matt",
                        "Lev"})
"""Short forms that are names or words as well ("Dan 3:15" may be a man at a time, "Matt 10:30" was "Matthew ten thirty"): a
book only with their full stop."""
_NUMBERED_BOOKS = ("Samuel", "Kings", "Chronicles", "Corinthians", "Thessalonians", "Timothy", "Peter", "John", "Sam", "Kgs",
                   "Chr", "Chron", "Cor", "Thess", "Tim", "Pet", "Jn")
_VERSE = re.compile(rf"\b(?:([1-3])\s+(?=(?:{'|'.join(_NUMBERED_BOOKS)})\b))?"
                    rf"({'|'.join(sorted(_VERSE_BOOKS | set(_BOOK_SHORT), key=len, reverse=True))})\b(\.?)"
                    r"\s*(\d{1,3}):([1-9]\d{0,2})(?:\s?[-–]\s?([1-9]\d{0,2}))?(?![\d:]|[.,]\d|\s?[ap]\.?m\b)")
"""``1 Corinthians 13:4-7``, ``Gen. 1:1``: a book of scripture, its chapter and a verse or a range of verses."""


def _verses(text: str, table: Table) -> str:
    """1 Corinthians 13:4-7, John 3:16-18, Gen. 1:1: First Corinthians thirteen four to seven, John three sixteen to
    eighteen, Genesis one one (were "one Corinthians thirteen:four to seven": the range hid the verse from the ratio pass;
    "John three sixteen-eighteen": the time pass took "3:16"; "general one to one"). Before the time pass."""

    def said(m: re.Match[str]) -> str:
        numbered, written, dot = m.group(1), m.group(2), m.group(3)
        if written in _NAMES_TOO and not dot:
            return m.group(0)
        book = (("First", "Second", "Third")[int(numbered) - 1] + " " if numbered else "") + _BOOK_SHORT.get(written, written)
        verses = num.words(int(m.group(5)), table) + (f" to {num.words(int(m.group(6)), table)}" if m.group(6) else "")
        return f"{book} {num.words(int(m.group(4)), table)} {verses}"

    return _VERSE.sub(said, text)


_LAP = re.compile(r"(?<![\d.,:])\b(\d{1,2}):([0-5]\d)\.(\d{1,3})(?![\d:]|[.,]\d)")
"""``1:05.3``: a race's time, minutes, seconds and their tenths."""


def _laps(text: str, table: Table) -> str:
    """A lap of 1:05.3, 59:59.99: one oh five point three (the time pass took "1:05" and left ".3": "one oh five.3").
    Before the time pass."""

    def said(m: re.Match[str]) -> str:
        seconds = int(m.group(2))
        return (f"{num.words(int(m.group(1)), table)} {'oh ' if seconds < 10 else ''}{num.words(seconds, table) if seconds else 'oh'}"
                f" {table.decimal_word} {num.digits(m.group(3), table)}")

    return _LAP.sub(said, text)


_WEEKDAYS = {"Mon": "Monday", "Tue": "Tuesday", "Tues": "Tuesday", "Wed": "Wednesday", "Thu": "Thursday", "Thur": "Thursday",
             "Thurs": "Thursday", "Fri": "Friday", "Sat": "Saturday", "Sun": "Sunday"}
_WEEKDAY = r"(?:Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\.?"
_WEEKDAY_RUN = re.compile(rf"(?<![\w.]){_WEEKDAY}(?:\s*(?:[-–—/,&]|\b(?:to|and|or|through|thru)\b)\s*{_WEEKDAY})+(?!\w)")
_DATE_OR_TIME = (rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{SHORT_MONTHS}|(?:{'|'.join(MONTHS)})\b)|\d{{1,2}}(?:st|nd|rd|th)\b|"
                 rf"\d{{1,2}}[:/]\d|\d{{1,2}}\s?[ap]\.?m\b|{SHORT_MONTHS}|(?:{'|'.join(MONTHS)})\b")
"""What after a weekday's abbreviation says it is one: a date or a time (Sat 5 Dec, Sat 5th, Mon 9:00, Wed 9am, Fri Jan 7),
not any number ("Sat 3 hours in the waiting room", "the Sun 5 times brighter": "Saturday", "Sunday")."""
_WEEKDAY_ALONE = re.compile(rf"(?<![\w.])({_WEEKDAY})(?!\w)(?=(,?\s+(?:{_DATE_OR_TIME}))?)")
_WEEKDAY_LABEL = re.compile(rf"^([ \t]*(?:[-*+•][ \t]+)?)({_WEEKDAY})(?=:)", re.MULTILINE)
"""A weekday's abbreviation labelling a line ("Sat: 10:00–14:00", "Sun: closed", an assistant's opening hours or forecast):
was read "sat", "sun"."""
_JOINERS = {"-": " to ", "–": " to ", "—": " to ", "/": ", ", ",": ", ", "&": " and "}


def _weekday(written: str, following: str) -> str:
    """A weekday's abbreviation as its name; its full stop kept where the sentence ends with it ("Open Mon. to Fri.")."""
    stop = written.endswith(".") and re.match(r"\s*(?:[A-Z]|$)", following) is not None
    return _WEEKDAYS[written.rstrip(".")] + ("." if stop else "")


def _weekdays(text: str, table: Table) -> str:
    """Mon-Fri, Mon. to Fri., Sat 5 Dec, Wed., Jan 7: Monday to Friday, Saturday... (espeak said "Mon to Fry"). An
    abbreviation without its full stop ("Sun", "Sat", "Wed" are words too) only beside another weekday, before a date
    or a time, or labelling a line ("Sun: closed"); "Sun." only so (the Sun.)."""

    def run(m: re.Match[str]) -> str:
        pieces = re.split(rf"({_WEEKDAY})(?!\w)", m.group(0))
        said = []
        for at, piece in enumerate(pieces):
            if at % 2:
                said.append(_weekday(piece, m.string[m.end():] if at == len(pieces) - 2 else "x"))
            elif piece.strip() in _JOINERS:
                said.append(_JOINERS[piece.strip()])
            else:
                said.append(piece)
        return "".join(said)

    def alone(m: re.Match[str]) -> str:
        written = m.group(1)
        if m.group(2) or (written.endswith(".") and written != "Sun."):
            return _weekday(written, m.string[m.end():] if not m.group(2) else "x")
        return written

    text = _WEEKDAY_LABEL.sub(lambda m: m.group(1) + _WEEKDAYS[m.group(2).rstrip(".")], text)
    return _WEEKDAY_ALONE.sub(alone, _WEEKDAY_RUN.sub(run, text))


_HANDLE = re.compile(r"(?<![\w@.])@([A-Za-z_]\w*)")


EARLY = (_weekdays, _isbns, _verses, _laps, _highways)
"""English passes before the dates and times ("Sat 5 Dec 9:00" is a weekday by the digits after it, "John 3:16-18" a verse)."""
PASSES = (_about, _per, _plus_minus, _and_over, _shillings, _powers, _tags, _versions, _amounts, _feet_inches, _inches, _ratings, _fractions, _sums,
          _durations, _decades, _early_years, _roman, _multiples, _codes, _day_month, _ordinal_ranges, _ratios)
"""English passes, in order: hashtags and versions before fractions (#1/2 is no fraction), sums before the range pass."""
