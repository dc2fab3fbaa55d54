"""Numbers as words: num2words for the words themselves, our own rules for what it gets wrong or
lacks (plural forms, money amounts, Polish genitive ordinals, commas inside English numbers)."""

from __future__ import annotations

import re

from num2words import num2words

from demod_voice.speech_text.languages import Table

MAX_DIGITS = 15
"""Longer numbers are read digit by digit (nobody says a 20-digit number as one; num2words fails on some)."""


def words(value: int, table: Table, to: str = "cardinal") -> str:
    """``value`` read as ``to`` (``cardinal``, ``ordinal``, ``year``) in the table's language; the digits as
    written when num2words cannot read it in that language."""
    if abs(value) >= 10**MAX_DIGITS:
        return " ".join(words(int(d), table) for d in str(abs(value)))
    if to == "year" and table.code in ("fr", "es", "it", "pt", "pl") or to == "year" and value >= 2000 and table.code == "nl":
        to = "cardinal"  # these read years as plain numbers; num2words' Dutch year splits 2026 oddly
    try:
        try:
            said = num2words(value, lang=table.code, to=to)
        except NotImplementedError:
            said = num2words(value, lang=table.code)
    except Exception:  # noqa: BLE001 - num2words' language tables raise KeyError, IndexError, OverflowError on gaps
        return str(value)
    # num2words writes English thousands with commas ("one thousand, two hundred"): a comma is a pause when spoken;
    # and British "hundred and four", which American voices (en_US) do not say
    said = re.sub(r"\s*,\s*", " ", said).strip()
    return said.replace(" and ", " ") if table.code == "en" else said


def ordinal(value: int, table: Table, feminine: bool = False) -> str:
    """``value`` as an ordinal; ``feminine`` for the Romance languages' ``-a`` / ``première`` forms."""
    said = words(value, table, "ordinal")
    if feminine:
        if table.code == "fr" and value == 1:
            return "première"
        if table.code in ("es", "it", "pt"):
            return " ".join(w[:-1] + "a" if w.endswith("o") else w for w in said.split())
    return said


def genitive_ordinal_pl(value: int, table: Table) -> str:
    """A Polish ordinal in the genitive (``dwunastego``, ``dwa tysiące dwudziestego szóstego``), as dates read."""
    out = []
    for word in words(value, table, "ordinal").split():
        if word.endswith("i"):
            out.append(word + "ego")
        elif word.endswith("y"):
            out.append(word[:-1] + "ego")
        else:
            out.append(word)
    return " ".join(out)


def form(value: int, forms: tuple[str, ...], table: Table) -> str:
    """The noun form after ``value``: singular or plural, or Polish's one / few (2-4) / many."""
    if len(forms) == 3 and table.code == "pl":
        if value == 1:
            return forms[0]
        if 2 <= value % 10 <= 4 and not 12 <= value % 100 <= 14:
            return forms[1]
        return forms[2]
    return forms[0] if value == 1 else forms[-1] if len(forms) < 3 else forms[1]


def parse_number(written: str, table: Table) -> tuple[int, str]:
    """A written number (locale separators) -> (integer part, decimal digits as written, ``""`` if none)."""
    whole, _, fraction = written.partition(table.decimal) if table.decimal in written else (written, "", "")
    digits = re.sub(r"\D", "", whole)[: 4 * MAX_DIGITS]  # beyond this it is read digit by digit anyway
    return int(digits or "0"), fraction[: 4 * MAX_DIGITS]


def number(written: str, table: Table) -> str:
    """A written number read out: ``1,234.5`` -> ``one thousand two hundred thirty-four point five``."""
    whole, fraction = parse_number(written, table)
    said = words(whole, table)
    if fraction:
        point = table.decimal_word or _decimal_word(table)
        if not point:
            return written  # no word for the decimal mark in this language: left to the engine
        said += f" {point} " + " ".join(words(int(d), table) for d in fraction)
    return said


def _decimal_word(table: Table) -> str:
    """The decimal mark's word as num2words says it in 0.5 ("point"), or ``""`` when it cannot tell."""
    try:
        parts = num2words(0.5, lang=table.code).split()
    except Exception:  # noqa: BLE001 - see words()
        return ""
    return parts[1] if len(parts) == 3 else ""


def money(written: str, currency: tuple[tuple[str, ...], tuple[str, ...]], table: Table) -> str:
    """An amount in a currency: ``3.50`` dollars -> ``three dollars and fifty cents`` (cents only when not zero)."""
    whole, fraction = parse_number(written, table)
    main, hundredth = currency
    cents = int((fraction + "00")[:2]) if fraction else 0
    if whole == 0 and cents:
        return f"{words(cents, table)} {form(cents, hundredth, table)}"
    said = f"{words(whole, table)} {form(whole, main, table)}"
    if cents:
        said += f" {table.currency_and} {words(cents, table)} {form(cents, hundredth, table)}"
    return said


def digits(written: str, table: Table) -> str:
    """Each digit on its own (telephone numbers, say-as characters)."""
    return " ".join(words(int(d), table) for d in written if d.isdigit())
