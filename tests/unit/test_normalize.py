"""Normalisation tables: hand-written expected words per language (never produced by num2words here)."""

from __future__ import annotations

import pytest

from demod_voice.speech_text.languages import MISSING, TABLES
from demod_voice.speech_text.normalize import normalize

CASES = {
    "en": [
        ("It costs $3.50.", "It costs three dollars and fifty cents."),
        ("€5 and £2", "five euros and two pounds"),
        ("on 12/05/2026", "on December fifth, twenty twenty-six"),
        ("2026-05-12", "May twelfth, twenty twenty-six"),
        ("at 9:05 pm", "at nine oh five PM"),
        ("at 14:30", "at fourteen thirty"),
        ("50% of 1,234 km", "fifty percent of one thousand two hundred thirty-four kilometers"),
        ("the 21st time", "the twenty-first time"),
        ("in 1990", "in nineteen ninety"),
        ("Dr. Smith met Mr. Jones", "doctor Smith met mister Jones"),
        ("St. Louis and Main St.", "saint Louis and Main street."),
        ("She lived on Main St. She was happy.", "She lived on Main street. She was happy."),
        ("42nd St. is long; the St. Lawrence river, in St. Paul", "forty-second street is long; the saint Lawrence river, in saint Paul"),
        ("It was -5°C outside, -10 kg and 5-10 kg", "It was minus five degrees Celsius outside, minus ten kilograms and five to ten kilograms"),
        ("From 1990-1995, in 2024–25, pages 10-12, 5–10%", "From nineteen ninety to nineteen ninety-five, in twenty twenty-four to "
                                                            "twenty-five, pages ten to twelve, five to ten percent"),
        ("The balance is -$5, $-2 and -€20.50.", "The balance is minus five dollars, minus two dollars and minus twenty euros and fifty cents."),
        ("I live at 5 St. Clair Ave. in Toronto.", "I live at five saint Clair avenue in Toronto."),
        ("We need 5 ft. of rope, 5 min., now", "We need five feet of rope, five minutes, now"),
        ("Population: 1 000 000 people, 12\u202f000 more", "Population: one million people, twelve thousand more"),
        ("call +1 555 123 456", "call one, five five five, one two three, four five six"),
        ("at 7 am, from 3pm to 5 p.m. today. Up at 6 a.m. Then", "at seven AM, from three PM to five PM today. Up at six AM. Then"),
        ("at 9.05pm, 11.30 a.m. Then 9.05 kg", "at nine oh five PM, eleven thirty AM. Then nine point zero five kilograms"),
        ("Agent 007, ZIP code 02134, 0.5 kg", "Agent zero zero seven, ZIP code zero two one three four, zero point five kilograms"),
        ("at 24:00, not 23:59", "at twenty-four o'clock, not twenty-three fifty-nine"),
        ("Jan. 5, 2026 and Sept. 3", "January fifth, twenty twenty-six and September third"),
        ("call 555-1234 on 2026-05-12", "call five five five, one two three four on May twelfth, twenty twenty-six"),
        ("apples, pears, etc. Then", "apples, pears, et cetera. Then"),
        ("mail me@example.com", "mail me at example dot com"),
        ("see https://www.example.com/a", "see www dot example dot com slash a"),
        ("-5 and 3.14", "minus five and three point one four"),
        ("call 555-1234", "call five five five, one two three four"),
        ("$3 million", "three million dollars"),
        ("room 214", "room two hundred fourteen"),
        ("1 kg", "one kilogram"),
    ],
    "de": [
        ("PLZ 01067, um 24:00 Uhr", "PLZ null eins null sechs sieben, um vierundzwanzig Uhr"),
        ("Das kostet 3,50 €.", "Das kostet drei Euro und fünfzig Cent."),
        ("Am 12.05.2026 um 14:30 Uhr, von 1990-1995", "Am zwölften Mai zweitausendsechsundzwanzig um vierzehn Uhr dreißig, von "
                                                      "neunzehnhundertneunzig bis neunzehnhundertfünfundneunzig"),
        ("am 12.05.2026", "am zwölften Mai zweitausendsechsundzwanzig"),
        ("Der 3. Oktober", "Der dritte Oktober"),
        ("Berlin, 3. Oktober 1990", "Berlin, dritter Oktober neunzehnhundertneunzig"),
        ("um 14:30", "um vierzehn Uhr dreißig"),
        ("50 % von 1.234 km", "fünfzig Prozent von eintausendzweihundertvierunddreißig Kilometer"),
        ("Dr. Müller, z.B. hier usw.", "Doktor Müller, zum Beispiel hier und so weiter."),
        ("1990 war", "neunzehnhundertneunzig war"),
    ],
    "fr": [
        ("Il a payé 3,50 €.", "Il a payé trois euros et cinquante centimes."),
        ("le 12/05/2026", "le douze mai deux mille vingt-six"),
        ("le 1er mai", "le premier mai"),
        ("la 1re fois", "la première fois"),
        ("à 14h30", "à quatorze heures trente"),
        ("50 % de 1 234 km", "cinquante pour cent de mille deux cent trente-quatre kilomètres"),
        ("M. Dupont et Mme Curie", "monsieur Dupont et madame Curie"),
    ],
    "es": [
        ("Pagó 3,50 €.", "Pagó tres euros con cincuenta céntimos."),
        ("el 12/05/2026", "el doce de mayo de dos mil veintiséis"),
        ("a las 14:30", "a las catorce y treinta"),
        ("la 1ª vez, el 2º", "la primera vez, el segundo"),
        ("El Sr. García", "El señor García"),
        ("50 % de 1.234 km", "cincuenta por ciento de mil doscientos treinta y cuatro kilómetros"),
    ],
    "it": [
        ("Ha pagato 3,50 €.", "Ha pagato tre euro e cinquanta centesimi."),
        ("il 12/05/2026", "il dodici maggio duemilaventisei"),
        ("alle 14:30", "alle quattordici e trenta"),
        ("Il Sig. Rossi", "Il signor Rossi"),
        ("il 2º posto", "il secondo posto"),
    ],
    "pt": [
        ("Pagou 3,50 €.", "Pagou três euros e cinquenta cêntimos."),
        ("em 12/05/2026", "em doze de maio de dois mil e vinte e seis"),
        ("às 14:30", "às catorze e trinta"),
        ("a 1ª vez", "a primeira vez"),
        ("O Sr. Silva", "O senhor Silva"),
    ],
    "nl": [
        ("Hij betaalde € 3,50.", "Hij betaalde drie euro en vijftig cent."),
        ("op 12-05-2026", "op twaalf mei tweeduizendzesentwintig"),
        ("om 14:30", "om veertien uur dertig"),
        ("de 3e keer", "de derde keer"),
        ("Dhr. Jansen, bijv. nu", "De heer Jansen, bijvoorbeeld nu"),
        ("50% van 1.234 km", "vijftig procent van duizendtweehonderdvierendertig kilometer"),
    ],
    "pl": [
        ("Zapłacił 3,50 zł.", "Zapłacił trzy złote i pięćdziesiąt groszy."),
        ("12.05.2026", "dwunastego maja dwa tysiące dwudziestego szóstego roku"),
        ("o 14:30", "o czternastej trzydzieści"),
        ("22 kg i 5 kg", "dwadzieścia dwa kilogramy i pięć kilogramów"),
        ("Dr Kowalski, np. tu", "Doktor Kowalski, na przykład tu"),
        ("50% z 1 km", "pięćdziesiąt procent z jeden kilometr"),
    ],
}


@pytest.mark.parametrize(("language", "written", "said"), [(lang, w, s) for lang, cases in CASES.items() for w, s in cases])
def test_normalised_words(language, written, said):
    assert normalize(written, language) == said


def test_every_table_language_is_tested():
    assert set(CASES) == set(TABLES)


def test_a_language_without_a_table_gets_numbers_only_or_nothing():
    assert normalize("3 и 21", "ru") == "три и двадцать один"
    assert normalize("Dr. 5 km", "tr").endswith("beş km")  # numbers read, abbreviations and units left alone
    assert normalize("ni 5", "sw") == "ni 5"  # no words for Swahili: left to the engine
    assert set(MISSING) >= {"ru", "tr", "cs", "hu", "ar", "ja", "ko", "zh-cn", "hi"}


def test_text_without_numbers_or_abbreviations_is_unchanged():
    text = "The sun was warm and the children played in the park."
    assert normalize(text, "en") == text


def test_version_strings_and_codes_are_not_mangled():
    assert normalize("version 1.2.3 of R2D2", "en") == "version 1.2.3 of R2D2"


def test_english_outside_the_us_reads_day_first():
    assert normalize("on 12/05/2026", "en-gb") == "on May twelfth, twenty twenty-six"
    assert normalize("on 12/05/2026", "en_US") == "on December fifth, twenty twenty-six"


def test_numbers_too_long_or_unknown_to_num2words_never_fail():
    assert normalize("card 12345678901234567", "en").startswith("card one two three four five six seven eight nine zero one")
    for language in ("en", "de", "pl", "ru", "tr", "cs", "ja", "ko", "ar", "hu"):
        for text in ("1" * 40, "$" + "9" * 30, "1" * 5000, "1." + "5" * 500 + " km", "3.5", "1,000,000,000,000,000,000,000"):
            assert isinstance(normalize(text, language), str)


@pytest.mark.parametrize(("language", "written", "said"), [
    ("ru", "3,5 и 1 000", "три запятая пять и одна тысяча"),
    ("tr", "3,5", "üç virgül beş"),
    ("hu", "3,5", "három egész öt"),
    ("ar", "3.5", "ثلاثة فاصلة خمسة"),
    ("ja", "3.5", "三 点 五"),
    ("cs", "3,5 a 1 000", "tři celá pět a tisíc"),
    ("hu", "1 000 000", "egymillió"),
])
def test_a_language_with_numbers_only_reads_decimals_and_thousands(language, written, said):
    """The docs say these languages get cardinals and decimals: "3,5" was left as written in Russian, Turkish, Hungarian,
    Arabic and Japanese (num2words has no word for the mark, or "üçvirgülelli"), and Russian "1 000" (thousands written
    with a space) was "один ноль ноль ноль"."""
    assert normalize(written, language) == said


@pytest.mark.parametrize(("written", "said"), [
    ("Paris, St. Louis and Rome", "Paris, saint Louis and Rome"),
    ("I met Mr. X, St. Louis was hot.", "I met mister X, saint Louis was hot."),
    ("Take 42nd St. She left.", "Take forty-second street. She left."),
    ("Jones, Dr. and nurse", "Jones, doctor and nurse"),
    ("Main St. She left. Elm Dr. is near.", "Main street. She left. Elm drive is near."),
])
def test_a_street_is_named_by_the_word_just_before_it(written, said):
    """"Paris, St. Louis" was "Paris, street. Louis" (a name across a comma made it a street, with a full stop), and
    "42nd St. She left." was "forty-second saint She left." (the ordinal, already in words, was not seen)."""
    assert normalize(written, "en") == said


def test_a_language_with_numbers_only_reads_its_own_minus():
    """Russian, Turkish, Japanese read "-5" with the English word "minus"."""
    assert normalize("-5 градусов", "ru") == "минус пять градусов"
    assert normalize("-5", "tr").startswith("eksi ")


@pytest.mark.parametrize(("written", "said"), [
    ("Chapter 01", "Chapter one"),
    ("CHAPTER 001: The Beginning", "CHAPTER one: The Beginning"),
    ("Part 02, Track 07 and Episode 010", "Part two, Track seven and Episode ten"),
    ("No. 05 in the list", "number five in the list"),
    ("Chapters 01-03.", "Chapters one to three."),
    ("Agent 007 and ZIP code 02134, PIN 0427", "Agent zero zero seven and ZIP code zero two one three four, PIN zero four two seven"),
    ("Track 07 at 09:30", "Track seven at nine thirty"),
])
def test_a_number_with_leading_zeros_after_a_heading_word_is_the_number(written, said):
    """"Chapter 01" was read "chapter zero one": leading zeros make a code only where no heading word numbers it."""
    assert normalize(written, "en") == said


def test_a_german_heading_number_is_the_number_too():
    assert normalize("Kapitel 03, PLZ 01067", "de") == "Kapitel drei, PLZ null eins null sechs sieben"


@pytest.mark.parametrize(("written", "said"), [
    ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
    ("(555) 123-4567", "five five five, one two three, four five six seven"),
    ("+1 555 123 4567", "one, five five five, one two three, four five six seven"),
    ("call 555 123 456 now", "call five five five, one two three, four five six now"),
    ("or 555.123.4567, or 555 123 4567", "or five five five, one two three, four five six seven, or five five five, one two three, "
                                         "four five six seven"),
    ("SSN 123-45-6789", "SSN one two three, four five, six seven eight nine"),
    ("London 020 7946 0958", "London zero two zero, seven nine four six, zero nine five eight"),
    ("100 000 000 people, 1 000 000 more", "one hundred million people, one million more"),
])
def test_telephone_numbers_in_groups_are_read_digit_by_digit(written, said):
    """"555 123 456" was one number (five hundred fifty-five million...), "555-123-4567" half a number and a minus."""
    assert normalize(written, "en") == said


def test_spaced_groups_stay_a_number_where_the_language_groups_thousands_with_spaces():
    assert normalize("123 456 789 habitants", "fr") == "cent vingt-trois millions quatre cent cinquante-six mille sept cent " \
                                                      "quatre-vingt-neuf habitants"


NARRATED = [  # what a narrator reads, and what it was read as before (espeak's or ours)
    ("King Henry VIII had six wives.", "King Henry the eighth had six wives."),  # "Roman eight"
    ("Louis XIV, Elizabeth I and Pope John Paul II", "Louis the fourteenth, Elizabeth the first and Pope John Paul the second"),
    ("After World War II, in Chapter IV", "After World War two, in Chapter four"),
    ("World War I ended. Then I left, and I think so.", "World War one ended. Then I left, and I think so."),  # "I" stays
    ("Rocky IV, Super Bowl LV, Washington DC, size XL, Malcolm X", "Rocky four, Super Bowl fifty-five, Washington DC, size XL, Malcolm X"),
    ("Add 1/2 cup and 1 1/2 tbsp, 3/4 of it, 2¾ miles", "Add one half cup and one and a half tbsp, three quarters of it, "
                                                      "two and three quarters miles"),  # "one/two"
    ("open 24/7, 7/13", "open twenty-four seven, seven/thirteen"),
    ("2+2=4 and 10 - 3 = 7, 3 × 4", "two plus two equals four and ten minus three equals seven, three times four"),  # "ten to three"
    ("the 1990s, the '90s, the 2010s, the 1800s, in his 60s", "the nineteen nineties, the nineties, the twenty-tens, "
                                                             "the eighteen hundreds, in his sixties"),  # "2010s" as digits
    ("He is 5'10\" and it is 3 ft 2 in long", "He is five feet ten inches and it is three feet two inches long"),  # "two in"
    ("€3,50, 3,50 €, $.50, 5¢ and .5 kg", "three euros and fifty cents, three euros and fifty cents, fifty cents, five cents "
                                          "and zero point five kilograms"),  # "three euros,50", "$.50", "five¢"
    ("#ThrowbackThursday and #blessed, the #1 hit, in C#", "hashtag Throwback Thursday and hashtag blessed, the number one hit, in C#"),
    ("update to v2.1.3", "update to version 2.1.3"),  # "vee" / "be"
]


@pytest.mark.parametrize(("written", "said"), NARRATED)
def test_what_a_narrator_meets_is_read_as_a_reader_would(written, said):
    assert normalize(written, "en") == said


@pytest.mark.parametrize(("written", "said"), [
    ("He lives at 12 Elm Dr. in Ohio. Dr. Jones lives on Oak Dr.", "He lives at twelve Elm drive in Ohio. doctor Jones lives on "
                                                                 "Oak drive."),  # "Elm doctor"
    ("She earned $50K, then $2bn; 1.5M downloads", "She earned fifty thousand dollars, then two billion dollars; one point five "
                                                   "million downloads"),  # "fifty dollarsK"
    ("Call 1-800-555-1234.", "Call one, eight zero zero, five five five, one two three four."),  # "one to eight hundred-five..."
    ("open 9am-5pm, or 9:00 a.m.–5:30 p.m.", "open nine AM to five PM, or nine AM to five thirty PM"),  # "9am-five PM"
    ("a 50-50 chance, a 3-2 win", "a fifty-fifty chance, a three to two win"),  # "fifty to fifty"
    ("3 hrs 20 mins, 10x faster, a 3x3 grid", "three hours twenty minutes, ten times faster, a three by three grid"),
    ("see pp. 10-20, Fig. 3; Gen. Lee", "see pages ten to twenty, figure three; general Lee"),
])
def test_more_of_what_a_narrator_meets(written, said):
    assert normalize(written, "en") == said


@pytest.mark.parametrize(("written", "said"), [
    ("The IP is 192.168.1.1, version 1.2.3.4", "The IP is one hundred ninety-two dot one hundred sixty-eight dot one dot one, "
                                               "version 1.2.3.4"),
    ("Call 911. Dial 999 now. Call 100 people.", "Call nine one one. Dial nine nine nine now. Call one hundred people."),
    ("He was born 4 July 1776; the 1 May deadline", "He was born the fourth of July, seventeen seventy-six; the first of May "
                                                    "deadline"),  # "four July"
    ("Ask @jack or mail me@x.org", "Ask at jack or mail me at x dot org"),
    ("It's 25° outside", "It's twenty-five degrees outside"),  # "twenty-five°"
])
def test_addresses_numbers_to_dial_british_dates_and_degrees(written, said):
    assert normalize(written, "en") == said


@pytest.mark.parametrize(("written", "said"), [
    ("Henry I think so. James I know. King James I ruled.", "Henry I think so. James I know. King James the first ruled."),
    ("In part I think. Type II diabetes, a phase III trial", "In part I think. Type two diabetes, a phase three trial"),
    ("After WWII and WWI", "After World War two and World War one"),
])
def test_the_pronoun_i_after_a_name_stays_and_lower_case_headings_read_roman_numerals(written, said):
    """"Henry I think so" was "Henry the first think so"; "type II" and "WWII" were left to espeak ("Roman two")."""
    assert normalize(written, "en") == said


def test_a_year_before_1100_is_a_year_after_a_word_that_says_so():
    """"in 1066" was "in one thousand sixty-six"."""
    assert normalize("In 1066 his army won; in 1066 years; 1066 people", "en") == \
        "In ten sixty-six his army won; in one thousand sixty-six years; one thousand sixty-six people"


def test_a_range_after_a_plural_heading_is_no_telephone_number():
    """'pages 100-1000' was read as the telephone number 'one zero zero, one zero zero zero'."""
    assert normalize("See pages 100-1000.", "en") == "See pages one hundred to one thousand."
    assert normalize("Read chapters 101-1203 next.", "en").startswith("Read chapters one hundred one to ")
    assert normalize("Call 555-1234 now.", "en") == "Call five five five, one two three four now."
    assert normalize("Call number 555-1234.", "en") == "Call number five five five, one two three four."
