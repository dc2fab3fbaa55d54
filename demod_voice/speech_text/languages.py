"""What normalisation knows of each language: words num2words does not give (months, units,
currencies, symbols, abbreviations) and how the language writes numbers.

Tables exist for en, de, fr, es, it, pt, nl and pl. Any other language (the other XTTS ones,
any espeak voice) gets what :func:`table` can give without words of its own: numbers as
num2words reads them where it knows the language, and everything else left to the engine;
:data:`MISSING` says so per XTTS language.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True, eq=False)
class Table:
    """One language's words and number conventions."""

    code: str
    """num2words' language code (``en``, ``pt``...)."""
    group: str = ","
    """Thousands separator(s) written in numbers (any one character of this string)."""
    decimal: str = "."
    """Decimal mark."""
    decimal_word: str = "point"
    """How the decimal mark is read."""
    minus: str = "minus"
    """How a leading minus is read."""
    range_word: str = ""
    """What a dash between two numbers is read as (``1990-1995``: "to"); empty: ranges are left as written."""
    months: tuple[str, ...] = ()
    """Month names, January first (empty: dates are left to the engine)."""
    date_order: str = "dmy"
    """Order of a numeric date like 05/12/2026: ``mdy`` (US English) or ``dmy``."""
    percent: str = ""
    """The word after a percentage."""
    units: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Unit symbol -> (singular, plural) or, for Polish, (one, few, many)."""
    currencies: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    """Currency symbol or ISO code -> (main unit forms, hundredth forms)."""
    currency_and: str = "and"
    """What joins the main unit and the cents."""
    abbreviations: dict[str, str] = field(default_factory=dict)
    """Written abbreviation (with its dots) -> words; matched case-sensitively as a whole word."""
    sentence_final: frozenset[str] = frozenset()
    """Abbreviations whose dot may also end the sentence (``etc.``): the dot is kept."""
    symbols: dict[str, str] = field(default_factory=dict)
    """Words for the parts of URLs and e-mail addresses: ``.``, ``@``, ``/``, ``:``, ``-``, ``_``."""
    feminine: dict[int, str] = field(default_factory=dict)
    """Feminine forms of the numbers hours are read with (``una`` in Spanish)."""
    ordinal_suffixes: Optional[str] = None
    """A regular expression for the suffix written after an ordinal's digits (``st|nd|rd|th``)."""
    headings: tuple[str, ...] = ()
    """Words that number what follows them (``Chapter``, ``No.``): a number written with leading zeros after one is read
    as the number ("Chapter 01" is chapter one); elsewhere leading zeros make a code, read digit by digit ("Agent 007")."""


EN = Table(
    code="en", range_word="to",
    months=("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
            "November", "December"),
    date_order="mdy",
    percent="percent",
    units={"km/h": ("kilometer per hour", "kilometers per hour"), "mph": ("mile per hour", "miles per hour"),
           "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
           "m": ("meter", "meters"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
           "ml": ("milliliter", "milliliters"), "l": ("liter", "liters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
           "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"), "°C": ("degree Celsius", "degrees Celsius"),
           "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
           "kB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
           "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"), "kW": ("kilowatt", "kilowatts"),
           "kWh": ("kilowatt hour", "kilowatt hours"), "ms": ("millisecond", "milliseconds"), "min": ("minute", "minutes"),
           "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"), "mins": ("minute", "minutes"),
           "sec": ("second", "seconds"), "secs": ("second", "seconds"), "yd": ("yard", "yards"), "yds": ("yard", "yards"),
           # an assistant's shorthand ("in 5 yrs", "1-2 wks", "-450 pts" were left as written)
           "yr": ("year", "years"), "yrs": ("year", "years"), "wk": ("week", "weeks"), "wks": ("week", "weeks"),
           "mos": ("month", "months"), "pts": ("point", "points"),
           # a recipe's ("2 tsp baking powder" was left as written)
           "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"), "Tbsp": ("tablespoon", "tablespoons"),
           "fl oz": ("fluid ounce", "fluid ounces"), "qt": ("quart", "quarts"),
           # a home's sensors ("1013 hPa", "35 µg/m³", "420 ppm" were left as written)
           "hPa": ("hectopascal", "hectopascals"), "kPa": ("kilopascal", "kilopascals"), "mbar": ("millibar", "millibars"),
           "ppm": ("part per million", "parts per million"), "ppb": ("part per billion", "parts per billion"),
           "µg/m³": ("microgram per cubic meter", "micrograms per cubic meter"),
           "\u03bcg/m³": ("microgram per cubic meter", "micrograms per cubic meter"), "lx": ("lux", "lux"),
           # a spec sheet's units ("48 kHz" was heard "48K HZ", "100 Mbps" "100 MBPS")
           "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"),
           "GHz": ("gigahertz", "gigahertz"), "bps": ("bit per second", "bits per second"),
           "kbps": ("kilobit per second", "kilobits per second"), "Mbps": ("megabit per second", "megabits per second"),
           "Gbps": ("gigabit per second", "gigabits per second"), "Mb/s": ("megabit per second", "megabits per second"),
           "Gb/s": ("gigabit per second", "gigabits per second"), "MB/s": ("megabyte per second", "megabytes per second"),
           "GB/s": ("gigabyte per second", "gigabytes per second"), "fps": ("frame per second", "frames per second"),
           "rpm": ("revolution per minute", "revolutions per minute"), "mAh": ("milliamp hour", "milliamp hours"),
           "dB": ("decibel", "decibels"), "W": ("watt", "watts"), "V": ("volt", "volts"), "ns": ("nanosecond", "nanoseconds"),
           "µs": ("microsecond", "microseconds"), "dpi": ("dot per inch", "dots per inch"), "px": ("pixel", "pixels"),
           # a physics book's and a floor plan's ("340 m/s" heard "340 m slash S", "25 m²" "25M2")
           "m/s": ("meter per second", "meters per second"), "km/s": ("kilometer per second", "kilometers per second"),
           "s": ("second", "seconds"), "m²": ("square meter", "square meters"), "km²": ("square kilometer", "square kilometers"),
           "cm²": ("square centimeter", "square centimeters"), "ft²": ("square foot", "square feet"),
           "sq ft": ("square foot", "square feet"), "sq m": ("square meter", "square meters"), "m³": ("cubic meter", "cubic meters"),
           "cm³": ("cubic centimeter", "cubic centimeters"),
           # a parts list's ("0.1 µF, 10 kΩ" were left as written)
           "µF": ("microfarad", "microfarads"), "nF": ("nanofarad", "nanofarads"), "pF": ("picofarad", "picofarads"),
           "Ω": ("ohm", "ohms"), "kΩ": ("kilohm", "kilohms"), "MΩ": ("megohm", "megohms"), "mA": ("milliamp", "milliamps"),
           "mV": ("millivolt", "millivolts"), "kV": ("kilovolt", "kilovolts"), "mW": ("milliwatt", "milliwatts"),
           # the same written with the Greek mu and the ohm sign, as keyboards and fonts give them
           "\u03bcF": ("microfarad", "microfarads"), "\u03bcs": ("microsecond", "microseconds"), "\u2126": ("ohm", "ohms"),
           "k\u2126": ("kilohm", "kilohms"), "M\u2126": ("megohm", "megohms")},
    currencies={"$": (("dollar", "dollars"), ("cent", "cents")), "USD": (("dollar", "dollars"), ("cent", "cents")),
                "€": (("euro", "euros"), ("cent", "cents")), "EUR": (("euro", "euros"), ("cent", "cents")),
                "£": (("pound", "pounds"), ("penny", "pence")), "GBP": (("pound", "pounds"), ("penny", "pence")),
                "¥": (("yen", "yen"), ("sen", "sen")), "zł": (("zloty", "zlotys"), ("grosz", "groszy")),
                "¢": (("cent", "cents"), ("cent", "cents")),
                # other dollars, the rupee, the Swiss franc ("US$5", "A$20", "₹500" were "US$five", "A$twenty", "₹five hundred")
                "US$": (("US dollar", "US dollars"), ("cent", "cents")), "A$": (("Australian dollar", "Australian dollars"), ("cent", "cents")),
                "AU$": (("Australian dollar", "Australian dollars"), ("cent", "cents")),
                "AUD": (("Australian dollar", "Australian dollars"), ("cent", "cents")),
                "C$": (("Canadian dollar", "Canadian dollars"), ("cent", "cents")),
                "CA$": (("Canadian dollar", "Canadian dollars"), ("cent", "cents")),
                "CAD": (("Canadian dollar", "Canadian dollars"), ("cent", "cents")),
                "NZ$": (("New Zealand dollar", "New Zealand dollars"), ("cent", "cents")),
                "HK$": (("Hong Kong dollar", "Hong Kong dollars"), ("cent", "cents")),
                "S$": (("Singapore dollar", "Singapore dollars"), ("cent", "cents")),
                "₹": (("rupee", "rupees"), ("paisa", "paise")), "INR": (("rupee", "rupees"), ("paisa", "paise")),
                "JPY": (("yen", "yen"), ("sen", "sen")), "CHF": (("Swiss franc", "Swiss francs"), ("centime", "centimes"))},
    abbreviations={"Dr.": "doctor", "Mr.": "mister", "Mrs.": "missus", "Ms.": "miz", "Prof.": "professor", "Jr.": "junior",
                   "Sr.": "senior", "St.": "saint", "Mt.": "mount", "Ave.": "avenue", "Rd.": "road", "etc.": "et cetera",
                   "e.g.": "for example", "i.e.": "that is", "vs.": "versus", "approx.": "approximately", "ext.": "extension", "No.": "number",
                   "Co.": "company", "Ltd.": "limited", "Inc.": "incorporated", "Jan.": "January", "Feb.": "February",
                   "Aug.": "August", "Sept.": "September", "Oct.": "October", "Nov.": "November", "Dec.": "December",
                   "Apr.": "April", "pp.": "pages", "Fig.": "figure", "Vol.": "volume", "Ch.": "chapter", "Gov.": "governor",
                   "Sen.": "senator", "Rep.": "representative", "Gen.": "general", "Capt.": "captain", "Lt.": "lieutenant",
                   "Col.": "colonel", "Sgt.": "sergeant", "Rev.": "reverend", "Hon.": "honorable", "Blvd.": "boulevard",
                   # a product list's ("w/o box, incl. VAT" was heard "double U slash O box and call that")
                   "incl.": "including", "excl.": "excluding", "qty": "quantity", "qty.": "quantity", "ref.": "reference",
                   "no.": "number", "pcs": "pieces", "pcs.": "pieces", "w/": "with", "w/o": "without", "avg.": "average",
                   "dept.": "department",
                   # a technical book's ("as in eq. (4), cf. Sec. 3" was heard "as in Act 4, CDF, SEC-3")
                   "eq.": "equation", "eqs.": "equations", "cf.": "compare", "Sec.": "section", "Sect.": "section",
                   "Figs.": "figures", "resp.": "respectively", "w.r.t.": "with respect to",
                   # a book's references, in lower case only before a number ("see ch. 4, vol. 2, p. 17": "ch four")
                   "ch.": "chapter", "vol.": "volume", "fig.": "figure", "p.": "page", "sec.": "section"},
    sentence_final=frozenset({"etc.", "Co.", "Ltd.", "Inc.", "St.", "Ave.", "Rd.", "Jr.", "Sr.", "dept.", "pcs.", "qty."}),
    symbols={".": "dot", "@": "at", "/": "slash", ":": "colon", "-": "dash", "_": "underscore", "?": "question mark",
             "=": "equals", "&": "and", "#": "hash", "~": "tilde"},
    ordinal_suffixes=r"st|nd|rd|th",
    headings=("chapter", "part", "track", "episode", "volume", "vol.", "book", "section", "act", "scene", "lesson", "unit",
              "step", "level", "round", "season", "disc", "disk", "issue", "page", "figure", "fig.", "table", "verse", "stage",
              "item", "exercise", "question", "no.", "number", "day", "week", "psalm", "canto", "movement", "op."),
)

DE = Table(
    code="de", range_word="bis", group=".", decimal=",", decimal_word="Komma",
    months=("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
            "Dezember"),
    percent="Prozent",
    units={"km/h": ("Kilometer pro Stunde",) * 2, "km": ("Kilometer",) * 2, "cm": ("Zentimeter",) * 2, "mm": ("Millimeter",) * 2,
           "m": ("Meter",) * 2, "kg": ("Kilogramm",) * 2, "mg": ("Milligramm",) * 2, "g": ("Gramm",) * 2, "ml": ("Milliliter",) * 2,
           "l": ("Liter",) * 2, "°C": ("Grad Celsius",) * 2, "kB": ("Kilobyte",) * 2, "MB": ("Megabyte",) * 2, "GB": ("Gigabyte",) * 2,
           "TB": ("Terabyte",) * 2, "kW": ("Kilowatt",) * 2, "kWh": ("Kilowattstunde", "Kilowattstunden"),
           "ms": ("Millisekunde", "Millisekunden"), "min": ("Minute", "Minuten"), "h": ("Stunde", "Stunden")},
    currencies={"€": (("Euro", "Euro"), ("Cent", "Cent")), "EUR": (("Euro", "Euro"), ("Cent", "Cent")),
                "$": (("Dollar", "Dollar"), ("Cent", "Cent")), "USD": (("Dollar", "Dollar"), ("Cent", "Cent")),
                "£": (("Pfund", "Pfund"), ("Penny", "Pence")), "CHF": (("Franken", "Franken"), ("Rappen", "Rappen"))},
    currency_and="und",
    abbreviations={"Dr.": "Doktor", "Prof.": "Professor", "Hr.": "Herr", "Fr.": "Frau", "z.B.": "zum Beispiel",
                   "z. B.": "zum Beispiel", "d.h.": "das heißt", "d. h.": "das heißt", "usw.": "und so weiter",
                   "bzw.": "beziehungsweise", "ca.": "circa", "Nr.": "Nummer", "Str.": "Straße", "St.": "Sankt",
                   "evtl.": "eventuell", "ggf.": "gegebenenfalls", "inkl.": "inklusive", "vgl.": "vergleiche",
                   "u.a.": "unter anderem"},
    sentence_final=frozenset({"usw.", "Str.", "u.a."}),
    symbols={".": "Punkt", "@": "at", "/": "Schrägstrich", ":": "Doppelpunkt", "-": "Bindestrich", "_": "Unterstrich",
             "?": "Fragezeichen", "=": "gleich", "&": "und", "#": "Raute", "~": "Tilde"},
    feminine={1: "ein"},
    headings=("Kapitel", "Teil", "Band", "Folge", "Nr.", "Nummer", "Seite", "Abschnitt", "Lektion", "Staffel", "Akt", "Szene",
              "Track", "Tag", "Woche", "Schritt", "Stufe", "Runde", "Ausgabe", "Abbildung", "Abb.", "Tabelle"),
)

FR = Table(
    code="fr", range_word="à", group="\u00a0\u202f ", decimal=",", decimal_word="virgule", minus="moins",
    months=("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
            "décembre"),
    percent="pour cent",
    units={"km/h": ("kilomètre par heure", "kilomètres par heure"), "km": ("kilomètre", "kilomètres"),
           "cm": ("centimètre", "centimètres"), "mm": ("millimètre", "millimètres"), "m": ("mètre", "mètres"),
           "kg": ("kilogramme", "kilogrammes"), "mg": ("milligramme", "milligrammes"), "g": ("gramme", "grammes"),
           "ml": ("millilitre", "millilitres"), "l": ("litre", "litres"), "°C": ("degré Celsius", "degrés Celsius"),
           "Go": ("gigaoctet", "gigaoctets"), "Mo": ("mégaoctet", "mégaoctets"), "ko": ("kilooctet", "kilooctets"),
           "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowattheure", "kilowattheures"), "min": ("minute", "minutes"),
           "h": ("heure", "heures")},
    currencies={"€": (("euro", "euros"), ("centime", "centimes")), "EUR": (("euro", "euros"), ("centime", "centimes")),
                "$": (("dollar", "dollars"), ("cent", "cents")), "USD": (("dollar", "dollars"), ("cent", "cents")),
                "£": (("livre", "livres"), ("penny", "pence")), "CHF": (("franc", "francs"), ("centime", "centimes"))},
    currency_and="et",
    abbreviations={"M.": "monsieur", "MM.": "messieurs", "Mme": "madame", "Mmes": "mesdames", "Mlle": "mademoiselle",
                   "Dr": "docteur", "Pr": "professeur", "etc.": "et cetera", "p. ex.": "par exemple", "St": "saint",
                   "Ste": "sainte", "n°": "numéro", "av.": "avenue", "bd": "boulevard", "env.": "environ"},
    sentence_final=frozenset({"etc."}),
    symbols={".": "point", "@": "arobase", "/": "barre oblique", ":": "deux-points", "-": "tiret", "_": "tiret bas"},
    feminine={1: "une", 21: "vingt et une"},
    ordinal_suffixes=r"ers?|res?|ères?|èmes?|emes?|es?",
)

ES = Table(
    code="es", range_word="a", group=".", decimal=",", decimal_word="coma", minus="menos",
    months=("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre",
            "diciembre"),
    percent="por ciento",
    units={"km/h": ("kilómetro por hora", "kilómetros por hora"), "km": ("kilómetro", "kilómetros"),
           "cm": ("centímetro", "centímetros"), "mm": ("milímetro", "milímetros"), "m": ("metro", "metros"),
           "kg": ("kilogramo", "kilogramos"), "mg": ("miligramo", "miligramos"), "g": ("gramo", "gramos"),
           "ml": ("mililitro", "mililitros"), "l": ("litro", "litros"), "°C": ("grado Celsius", "grados Celsius"),
           "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes"), "kW": ("kilovatio", "kilovatios"),
           "min": ("minuto", "minutos"), "h": ("hora", "horas")},
    currencies={"€": (("euro", "euros"), ("céntimo", "céntimos")), "EUR": (("euro", "euros"), ("céntimo", "céntimos")),
                "$": (("dólar", "dólares"), ("centavo", "centavos")), "USD": (("dólar", "dólares"), ("centavo", "centavos")),
                "£": (("libra", "libras"), ("penique", "peniques"))},
    currency_and="con",
    abbreviations={"Sr.": "señor", "Sra.": "señora", "Srta.": "señorita", "Dr.": "doctor", "Dra.": "doctora",
                   "Ud.": "usted", "Uds.": "ustedes", "etc.": "etcétera", "p. ej.": "por ejemplo", "núm.": "número",
                   "Av.": "avenida", "aprox.": "aproximadamente", "Prof.": "profesor"},
    sentence_final=frozenset({"etc."}),
    symbols={".": "punto", "@": "arroba", "/": "barra", ":": "dos puntos", "-": "guion", "_": "guion bajo"},
    feminine={1: "una", 21: "veintiuna"},
    ordinal_suffixes=r"\.?[ºª°]",
)

IT = Table(
    code="it", range_word="a", group=".", decimal=",", decimal_word="virgola", minus="meno",
    months=("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
            "novembre", "dicembre"),
    percent="per cento",
    units={"km/h": ("chilometro orario", "chilometri orari"), "km": ("chilometro", "chilometri"),
           "cm": ("centimetro", "centimetri"), "mm": ("millimetro", "millimetri"), "m": ("metro", "metri"),
           "kg": ("chilogrammo", "chilogrammi"), "mg": ("milligrammo", "milligrammi"), "g": ("grammo", "grammi"),
           "ml": ("millilitro", "millilitri"), "l": ("litro", "litri"), "°C": ("grado Celsius", "gradi Celsius"),
           "GB": ("gigabyte", "gigabyte"), "MB": ("megabyte", "megabyte"), "kW": ("chilowatt", "chilowatt"),
           "min": ("minuto", "minuti"), "h": ("ora", "ore")},
    currencies={"€": (("euro", "euro"), ("centesimo", "centesimi")), "EUR": (("euro", "euro"), ("centesimo", "centesimi")),
                "$": (("dollaro", "dollari"), ("centesimo", "centesimi")), "USD": (("dollaro", "dollari"), ("centesimo", "centesimi")),
                "£": (("sterlina", "sterline"), ("penny", "pence"))},
    currency_and="e",
    abbreviations={"Sig.": "signor", "Sig.ra": "signora", "Sigg.": "signori", "Dott.": "dottor", "Dott.ssa": "dottoressa",
                   "Prof.": "professor", "Prof.ssa": "professoressa", "ecc.": "eccetera", "Avv.": "avvocato",
                   "Ing.": "ingegner", "p.es.": "per esempio", "ca.": "circa"},
    sentence_final=frozenset({"ecc."}),
    symbols={".": "punto", "@": "chiocciola", "/": "barra", ":": "due punti", "-": "trattino", "_": "trattino basso"},
    feminine={1: "una", 21: "ventuno"},
    ordinal_suffixes=r"\.?[ºª°]",
)

PT = Table(
    code="pt", range_word="a", group=".", decimal=",", decimal_word="vírgula", minus="menos",
    months=("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro",
            "dezembro"),
    percent="por cento",
    units={"km/h": ("quilômetro por hora", "quilômetros por hora"), "km": ("quilômetro", "quilômetros"),
           "cm": ("centímetro", "centímetros"), "mm": ("milímetro", "milímetros"), "m": ("metro", "metros"),
           "kg": ("quilograma", "quilogramas"), "mg": ("miligrama", "miligramas"), "g": ("grama", "gramas"),
           "ml": ("mililitro", "mililitros"), "l": ("litro", "litros"), "°C": ("grau Celsius", "graus Celsius"),
           "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes"), "kW": ("quilowatt", "quilowatts"),
           "min": ("minuto", "minutos"), "h": ("hora", "horas")},
    currencies={"€": (("euro", "euros"), ("cêntimo", "cêntimos")), "EUR": (("euro", "euros"), ("cêntimo", "cêntimos")),
                "$": (("dólar", "dólares"), ("centavo", "centavos")), "USD": (("dólar", "dólares"), ("centavo", "centavos")),
                "R$": (("real", "reais"), ("centavo", "centavos")), "BRL": (("real", "reais"), ("centavo", "centavos")),
                "£": (("libra", "libras"), ("pêni", "pence"))},
    currency_and="e",
    abbreviations={"Sr.": "senhor", "Sra.": "senhora", "Dr.": "doutor", "Dra.": "doutora", "Prof.": "professor",
                   "etc.": "et cetera", "p. ex.": "por exemplo", "nº": "número", "Av.": "avenida", "V. Exa.": "vossa excelência"},
    sentence_final=frozenset({"etc."}),
    symbols={".": "ponto", "@": "arroba", "/": "barra", ":": "dois pontos", "-": "hífen", "_": "sublinhado"},
    feminine={1: "uma", 2: "duas", 21: "vinte e uma", 22: "vinte e duas"},
    ordinal_suffixes=r"\.?[ºª°]",
)

NL = Table(
    code="nl", range_word="tot", group=".", decimal=",", decimal_word="komma", minus="min",
    months=("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november",
            "december"),
    percent="procent",
    units={"km/h": ("kilometer per uur",) * 2, "km": ("kilometer",) * 2, "cm": ("centimeter",) * 2, "mm": ("millimeter",) * 2,
           "m": ("meter",) * 2, "kg": ("kilo",) * 2, "mg": ("milligram",) * 2, "g": ("gram",) * 2, "ml": ("milliliter",) * 2,
           "l": ("liter",) * 2, "°C": ("graden Celsius",) * 2, "GB": ("gigabyte",) * 2, "MB": ("megabyte",) * 2,
           "kW": ("kilowatt",) * 2, "min": ("minuut", "minuten"), "h": ("uur",) * 2},
    currencies={"€": (("euro", "euro"), ("cent", "cent")), "EUR": (("euro", "euro"), ("cent", "cent")),
                "$": (("dollar", "dollar"), ("cent", "cent")), "USD": (("dollar", "dollar"), ("cent", "cent")),
                "£": (("pond", "pond"), ("penny", "pence"))},
    currency_and="en",
    abbreviations={"dhr.": "de heer", "mevr.": "mevrouw", "dr.": "dokter", "Dr.": "dokter", "prof.": "professor",
                   "bijv.": "bijvoorbeeld", "enz.": "enzovoort", "d.w.z.": "dat wil zeggen", "ca.": "circa", "nr.": "nummer",
                   "St.": "Sint", "o.a.": "onder andere", "m.b.v.": "met behulp van"},
    sentence_final=frozenset({"enz.", "o.a."}),
    symbols={".": "punt", "@": "apenstaartje", "/": "schuine streep", ":": "dubbele punt", "-": "streepje", "_": "laag streepje"},
    feminine={1: "een"},
    ordinal_suffixes=r"ste|de|e",
)

PL = Table(
    code="pl", range_word="do", group=".\u00a0\u202f ", decimal=",", decimal_word="przecinek", minus="minus",
    months=("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia", "września", "października",
            "listopada", "grudnia"),
    percent="procent",
    units={"km/h": ("kilometr na godzinę", "kilometry na godzinę", "kilometrów na godzinę"),
           "km": ("kilometr", "kilometry", "kilometrów"), "cm": ("centymetr", "centymetry", "centymetrów"),
           "mm": ("milimetr", "milimetry", "milimetrów"), "m": ("metr", "metry", "metrów"),
           "kg": ("kilogram", "kilogramy", "kilogramów"), "g": ("gram", "gramy", "gramów"), "l": ("litr", "litry", "litrów"),
           "ml": ("mililitr", "mililitry", "mililitrów"), "°C": ("stopień Celsjusza", "stopnie Celsjusza", "stopni Celsjusza"),
           "GB": ("gigabajt", "gigabajty", "gigabajtów"), "MB": ("megabajt", "megabajty", "megabajtów"),
           "min": ("minuta", "minuty", "minut"), "h": ("godzina", "godziny", "godzin")},
    currencies={"zł": (("złoty", "złote", "złotych"), ("grosz", "grosze", "groszy")),
                "PLN": (("złoty", "złote", "złotych"), ("grosz", "grosze", "groszy")),
                "€": (("euro", "euro", "euro"), ("cent", "centy", "centów")), "EUR": (("euro", "euro", "euro"), ("cent", "centy", "centów")),
                "$": (("dolar", "dolary", "dolarów"), ("cent", "centy", "centów")),
                "USD": (("dolar", "dolary", "dolarów"), ("cent", "centy", "centów"))},
    currency_and="i",
    abbreviations={"dr": "doktor", "prof.": "profesor", "np.": "na przykład", "itd.": "i tak dalej", "itp.": "i tym podobne",
                   "ul.": "ulica", "nr": "numer", "tzn.": "to znaczy", "ok.": "około", "godz.": "godzina", "tys.": "tysięcy",
                   "mln": "milionów", "mgr": "magister", "inż.": "inżynier", "św.": "święty"},
    sentence_final=frozenset({"itd.", "itp."}),
    symbols={".": "kropka", "@": "małpa", "/": "ukośnik", ":": "dwukropek", "-": "myślnik", "_": "podkreślnik"},
)

TABLES: dict[str, Table] = {t.code: t for t in (EN, DE, FR, ES, IT, PT, NL, PL)}

EN_DMY = dataclasses.replace(EN, date_order="dmy")
"""English outside the US (``en-gb``, ``en-au``...): 12/05/2026 is the twelfth of May."""

NUM2WORDS_ONLY = ("ar", "cs", "hu", "ja", "ko", "ru", "tr")
"""XTTS languages num2words reads numbers in, with no table of our own."""
MINUS = {"ar": "سالب", "cs": "minus", "hu": "mínusz", "ja": "マイナス", "ko": "마이너스", "ru": "минус", "tr": "eksi"}
"""How those languages read a leading minus (the English word was read in all of them)."""
DECIMAL = {"ar": "فاصلة", "hu": "egész", "ja": "点", "ru": "запятая", "tr": "virgül"}
"""How those languages read a decimal mark where num2words cannot say it ("3,5" was left as written; num2words reads
it "üçvirgülelli" in Turkish). Czech and Korean take num2words' own word."""
SPACE_GROUPED = ("cs", "hu", "ru")
"""Those languages write thousands with spaces ("1 000" was "один ноль ноль ноль")."""

MISSING: dict[str, str] = {
    **{code: "numbers (cardinals and decimals) only, through num2words; no dates, times, currencies, units or abbreviations"
       for code in NUM2WORDS_ONLY},
    "zh-cn": "nothing: num2words has no Chinese; XTTS's own tokenizer reads numbers (zh_num2words)",
    "hi": "nothing: num2words has no Hindi; digits are left to the engine",
}
"""What normalisation lacks in each XTTS language outside :data:`TABLES`."""


def base_code(language: str) -> str:
    """``en-us``, ``en_GB``, ``EN`` -> ``en``; ``zh-cn`` stays ``zh-cn`` (XTTS's code)."""
    code = language.strip().lower().replace("_", "-")
    return code if code == "zh-cn" else code.split("-")[0]


def table(language: str) -> Optional[Table]:
    """The full table for ``language``, or ``None`` when it has none."""
    return TABLES.get(base_code(language))


def numbers_only(language: str) -> Optional[Table]:
    """A bare table (numbers only, num2words' words) for a language with no table of ours, or ``None``."""
    code = base_code(language)
    if code == "en" and language.strip().lower().replace("_", "-") not in ("en", "en-us"):
        return EN_DMY
    if code in TABLES:
        return TABLES[code]
    if code in NUM2WORDS_ONLY:
        return Table(code=code, group="\u00a0\u202f " if code in SPACE_GROUPED else "",
                     decimal="," if code in ("cs", "hu", "ru", "tr") else ".", decimal_word=DECIMAL.get(code, ""),
                     minus=MINUS.get(code, "-"))
    return None
