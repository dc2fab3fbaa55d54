"""Pronunciation lexicons: word -> phonemes (Piper) and respelling (XTTS), as plain files.

A lexicon is a TSV file (``word<TAB>phonemes<TAB>respelling<TAB>flags``, ``#`` comments) or a
YAML file (``entries:`` a list of ``{word, phonemes, say, match_case}``), which a user can edit
and keep under version control. Words match whole (never inside a longer word), case-insensitively
unless the entry says ``match_case``; an entry with the exact case wins over one without, and the
longest word wins where entries overlap (``New York`` over ``York``).

Scopes, narrowest winning: the request's own entries > the API key's lexicon (``key.ID``) > the
voice's (``voice.NAME``) > the server's (``serve.lexicons``, and ``default``).
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from demod_voice.errors import InputError
from demod_voice.speech_text.script import Override, Part, check_phonemes

NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
"""A lexicon's name (its file name without the suffix)."""
SUFFIXES = (".tsv", ".yaml", ".yml")
MAX_ENTRIES = 10000
MAX_WORD = 100


@dataclass(frozen=True)
class Entry:
    """One word's pronunciation."""

    word: str
    """The word (or a few words) as written."""
    phonemes: str = ""
    """espeak-ng IPA for Piper voices (``ŋwˈiən``)."""
    respell: str = ""
    """A spelling that engines reading text say right (``new-yen``); Piper uses it when no phonemes are given."""
    match_case: bool = False
    """Only the exact case matches (``US`` but not ``us``)."""

    def key(self) -> tuple[bool, str]:
        """What identifies the entry within a lexicon (a narrower scope's equal key replaces it). A match_case entry and
        an any-case one are two entries even where their words fold alike (``nice`` the word, ``Nice`` the city, said
        as written only in that case): they were refused as one word listed twice."""
        return (self.match_case, self.word if self.match_case else fold(self.word))


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Entries in order; later ones replace earlier ones with the same key. Compared by identity: files read
    once are the same object until they change, so merged lexicons and their compiled matchers are cached."""

    entries: tuple[Entry, ...] = ()
    name: str = ""

    def __bool__(self) -> bool:
        return bool(self.entries)


EMPTY = Lexicon()


APOSTROPHES = "'\u2019\u02bc"
"""Apostrophes a text may write a word with (``O'Brien``, ``O’Brien``): one entry matches them all."""


def written_form(word: str) -> str:
    """``word`` as entries are kept and texts are matched: Unicode's composed form (an "é" typed as e and an accent
    missed "Chloé" typed the other way, and made two entries that look alike), apostrophes as ``'``."""
    word = unicodedata.normalize("NFC", word)
    return "".join("'" if ch in APOSTROPHES else ch for ch in word)


def fold(text: str) -> str:
    """``text`` as words are compared in any case: Unicode's full case folding (``Straße`` is ``STRASSE``), and a
    dotted or dotless ``i`` as ``i`` (Turkish ``İzmir``, ``ısparta``: folded apart, a Turkish name typed in capitals,
    or the same name typed without Turkish letters, missed its entry)."""
    return text.casefold().replace("i\u0307", "i").replace("\u0131", "i")


def entry(word: Any, phonemes: Any = "", respell: Any = "", match_case: Any = False, where: str = "lexicon") -> Entry:
    """A checked entry; :class:`InputError` says what is wrong."""
    if isinstance(word, (bool, int, float)):  # YAML 1.1: No, Yes, On, Off are true or false; 007 is 7
        said = str(word).lower() if isinstance(word, bool) else str(word)
        raise InputError(f"{where}: the word was read as {said}, not as text (YAML reads No, Yes, On, Off as true or false, "
                         "007 as 7); put it in quotes ('No': nˈoʊ)")
    if not isinstance(word, str) or not word.strip() or len(word) > MAX_WORD or any(not ch.isprintable() for ch in word):
        raise InputError(f"{where}: a word must be 1 to {MAX_WORD} printable characters")
    if word.strip().startswith("#"):  # a lexicon file's comment: the entry was said added, then never read back
        raise InputError(f"{where}: a word may not start with '#' (in a lexicon file that starts a comment); write "
                         f"'{word.strip()[1:]}' instead")
    word = written_form(word)
    if not isinstance(phonemes, str) or not isinstance(respell, str) or not isinstance(match_case, bool):
        raise InputError(f"{where}: phonemes and say must be text, match_case true or false")
    if not phonemes.strip() and not respell.strip():
        raise InputError(f"{where}: '{word.strip()}' needs phonemes (for Piper) or a respelling (say), or both")
    if len(respell) > 4 * MAX_WORD or any(not ch.isprintable() for ch in respell) or "[[" in respell:
        raise InputError(f"{where}: the respelling of '{word.strip()}' must be printable text, without '[['")
    return Entry(word.strip(), check_phonemes(phonemes, where), respell.strip(), match_case)


@functools.lru_cache(maxsize=256)
def merge(*lexicons: Optional[Lexicon]) -> Lexicon:
    """One lexicon from several, broadest first: a later (narrower) entry replaces an earlier one with its key."""
    chosen: dict[tuple[bool, str], Entry] = {}
    for lexicon in lexicons:
        for item in (lexicon.entries if lexicon else ()):
            chosen.pop(item.key(), None)
            chosen[item.key()] = item
    return Lexicon(tuple(chosen.values()), "+".join(x.name for x in lexicons if x and x.name))


# --- matching ----------------------------------------------------------------------------------


_UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
"""Thai, kana and CJK ideographs: scripts written without spaces between words, so that one of their characters next
to a word does not make it part of a longer word ("重庆" in "我去重庆了", "OpenAI" in "我喜欢OpenAI的产品")."""
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
_SEAM = re.compile(f"(?<=[{_UNSPACED}])(?=[^\\W{_UNSPACED}])|(?<=[^\\W{_UNSPACED}])(?=[{_UNSPACED}])")
"""Where text passes between those scripts and a letter or digit of any other. A NUL put there (text and entries alike)
makes a word's edge there (a lookaround class of those ranges in every entry's pattern made a lexicon of 200 entries take
a second to compile), and a word written in both ("卡拉OK", "Tシャツ") still matches: text looked at one script at a time
never held it."""
_TOKEN = re.compile(f"[{_UNSPACED}]|[^\\W{_UNSPACED}]+")
"""A word of text (one character of a script without spaces), case-folded: an entry can match only a text holding its
first word."""


def _seamed(text: str) -> tuple[str, list[int]]:
    """``text`` with a NUL at each :data:`_SEAM`, and where each NUL went (to find a match's place in ``text``)."""
    seams = [at + count for count, at in enumerate(match.start() for match in _SEAM.finditer(text))]
    return _SEAM.sub("\0", text), seams


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def _edged(ch: str) -> bool:
    """Whether a word that starts or ends with ``ch`` must not go on into more letters there (no: a character of a
    script without spaces, or punctuation such as the end of "C++")."""
    return (ch.isalnum() or ch == "_") and _UNSPACED_CHAR.match(ch) is None


@functools.lru_cache(maxsize=64)
def _index(lexicon: Lexicon) -> tuple[dict[str, tuple[Entry, ...]], dict[str, Entry], dict[str, Entry]]:
    """The entries by their first word (``""``: none, such as ``&&``), and by word, exact and in any case."""
    by_first: dict[str, list[Entry]] = {}
    for item in lexicon.entries:
        tokens = _tokens(item.word)
        by_first.setdefault(tokens[0] if tokens else "", []).append(item)
    exact = {e.word: e for e in lexicon.entries if e.match_case}
    loose = {fold(e.word): e for e in lexicon.entries if not e.match_case}
    return {first: tuple(items) for first, items in by_first.items()}, exact, loose


@functools.lru_cache(maxsize=256)
def _pattern(entries: tuple[Entry, ...]) -> re.Pattern[str]:
    """One pattern for ``entries``: only those a text may hold (one for a whole lexicon of 10,000 entries took 4 s to
    compile, and 0.8 s for each thousand characters of text)."""
    alternatives = []
    # longest first, exact case before any case, so the regex's first alternative is the one that wins
    for item in sorted(entries, key=lambda e: (-len(e.word), not e.match_case)):
        body = _letters(_seamed(item.word)[0], item.match_case)
        body = f"(?:{body})" if item.match_case else f"(?i:{body})"
        before = r"(?<!\w)" if _edged(item.word[:1]) else ""
        after = r"(?!\w)" if _edged(item.word[-1:]) else ""
        alternatives.append(f"{before}{body}{after}")
    return re.compile("|".join(alternatives))


_FOLDED = [(re.compile("ss|ß|ẞ", re.IGNORECASE), "(?:ss|ß|ẞ)"), (re.compile("[iİı]\u0307?", re.IGNORECASE), "[iİı]\u0307?")]
"""Letters that a regex's own (simple) case folding does not match as :func:`fold` does, and what matches them all."""


def _letters(word: str, match_case: bool) -> str:
    """The pattern of ``word``'s characters: any run of spaces, any apostrophe, and in any case, :data:`_FOLDED`."""
    pieces = []
    at = 0
    while at < len(word):
        folded = None if match_case else next(((m, said) for form, said in _FOLDED if (m := form.match(word, at))), None)
        if folded:
            pieces.append(folded[1])
            at = folded[0].end()
            continue
        ch = word[at]
        pieces.append(r"\s+" if ch == " " else f"[{APOSTROPHES}]" if ch == "'" else re.escape(ch))
        at += 1
    return "".join(pieces)


def split_words(text: str, lexicon: Lexicon, source: str = "lexicon") -> list[Part]:
    """``text`` as plain runs and :class:`Override` words, for each whole-word match of an entry."""
    by_first, exact, loose = _index(lexicon)
    if not by_first:
        return [text]
    text = unicodedata.normalize("NFC", text)  # as entries are kept (:func:`written_form`)
    present = set(_tokens(text)) | {""}
    relevant = tuple(sorted((e for first in present for e in by_first.get(first, ())), key=lambda e: (e.word, e.match_case)))
    if not relevant:
        return [text]
    pattern = _pattern(relevant)
    parts: list[Part] = []
    position = 0
    seamed, seams = _seamed(text)
    for match in pattern.finditer(seamed):
        start, end = (at - bisect.bisect_left(seams, at) for at in match.span())
        written = text[start:end]
        key = written_form(" ".join(written.split()))
        found = exact.get(key) or loose.get(fold(key))
        if found is None:
            continue
        if start > position:
            parts.append(text[position:start])
        parts.append(Override(written, found.phonemes, found.respell, source))
        position = end
    if position < len(text):
        parts.append(text[position:])
    return parts


# --- files -------------------------------------------------------------------------------------


class _RepeatedKey(Exception):
    """A mapping in a YAML lexicon gives one key twice with different values."""

    def __init__(self, key: Any, line: int, earlier: int, words: bool) -> None:
        super().__init__(key)
        self.key, self.line, self.earlier, self.words = key, line, earlier, words


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping with different values is :class:`_RepeatedKey`: PyYAML
    keeps the last one silently (``Nguyen: a`` then ``Nguyen: b`` read ``b``, and an edit of the first line changed
    nothing), where a TSV file's word listed twice is an error naming both lines."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._root = node
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, tuple[Any, int]] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
            value = self.construct_object(value_node, deep=True)
            line = key_node.start_mark.line + 1
            if earlier is not None and not _same(earlier[0], value, set()):
                raise _RepeatedKey(key, line, earlier[1], node is getattr(self, "_root", None))
            seen.setdefault(key, (value, line))
        return super().construct_mapping(node, deep)


def _same(a: Any, b: Any, met: set[tuple[int, int]]) -> bool:
    """Whether two values a YAML document made are equal, each pair of lists or mappings compared once (``met``): ``!=``
    compared a value's aliases again at every place they were used, and a key given twice with two such values, each
    of ten aliases of ten aliases... (1 KB) took time growing tenfold with each level (minutes at ten)."""
    if a is b:
        return True
    if type(a) is not type(b) or not isinstance(a, (list, dict)):
        return type(a) is type(b) and a == b
    if len(a) != len(b) or (isinstance(a, dict) and a.keys() != b.keys()):
        return False
    if (id(a), id(b)) in met:  # being compared, or found equal: its answer is the one being made
        return True
    met.add((id(a), id(b)))
    pairs = zip(a, b, strict=True) if isinstance(a, list) else ((a[key], b[key]) for key in a)
    return all(_same(x, y, met) for x, y in pairs)


def parse(text: str, fmt: str, where: str) -> Lexicon:
    """A lexicon from a file's text; ``fmt`` is ``tsv`` or ``yaml`` (JSON is YAML)."""
    text = text.removeprefix("\ufeff")  # Notepad's and Excel's byte order mark: not part of the first word
    if fmt == "tsv":
        return Lexicon(_cap(_tsv_entries(text, where), where))
    try:
        data = yaml.load(text, Loader=_Loader) if text.strip() else {}  # _Loader is a SafeLoader
    except _RepeatedKey as err:
        what = "listed twice with different pronunciations" if err.words else "given twice with different values"
        raise InputError(f"{where}, line {err.line}: '{err.key}' is {what} (also at line {err.earlier}); keep one of the two") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{where}: not valid YAML{at}") from None
    except RecursionError:
        raise InputError(f"{where}: nested too deeply to be a lexicon") from None
    return from_data(data, where)


def from_data(data: Any, where: str) -> Lexicon:
    """A lexicon from parsed YAML/JSON: ``{entries: [...]}``, a list of entries, or ``{WORD: PHONEMES or {...}}``."""
    if isinstance(data, Mapping) and "entries" in data:
        data = data["entries"]
    items: dict[tuple[bool, str], tuple[Entry, str]] = {}
    if isinstance(data, Mapping):
        for word, value in data.items():
            at = f"{where}, '{word}'" if isinstance(word, str) else where
            if isinstance(value, Mapping):
                _once(items, _from_mapping({"word": word, **value}, at), where, "")
            else:
                _once(items, entry(word, value if isinstance(value, str) else "", where=at), where, "")
    elif isinstance(data, list):
        for number, value in enumerate(data, 1):
            if not isinstance(value, Mapping):
                raise InputError(f"{where}: entry {number} must be a mapping such as {{word: Nguyen, phonemes: ŋwˈiən, say: new yen}}")
            _once(items, _from_mapping(value, f"{where}, entry {number}"), where, f"entry {number}")
    elif data is not None:
        raise InputError(f"{where}: expected entries (a list of {{word, phonemes, say}}) or a mapping WORD -> PHONEMES")
    return Lexicon(_cap([item for item, _ in items.values()], where))


def _from_mapping(value: Mapping[str, Any], where: str) -> Entry:
    unknown = sorted(set(value) - {"word", "phonemes", "ipa", "say", "respell", "match_case"})
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; use word, phonemes, say, match_case")
    return entry(value.get("word"), value.get("phonemes", value.get("ipa", "")) or "", value.get("say", value.get("respell", "")) or "",
                 False if value.get("match_case") is None else value["match_case"], where)


def _tsv_entries(text: str, where: str) -> list[Entry]:
    items: dict[tuple[bool, str], tuple[Entry, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) == 1 and " " in line.strip():  # an editor turned the tabs into spaces
            raise InputError(f"{where}, line {number}: no TAB in '{line.strip()[:60]}'; separate the word, its phonemes and "
                             "its respelling with TABs, not spaces")
        if len(cells) > 4:
            raise InputError(f"{where}, line {number}: expected 'word<TAB>phonemes<TAB>respelling<TAB>flags'")
        cells += [""] * (4 - len(cells))
        flags = {f.strip() for f in cells[3].split(",") if f.strip()}
        if flags - {"match_case"}:
            raise InputError(f"{where}, line {number}: unknown flag(s) {', '.join(sorted(flags - {'match_case'}))}; the one flag is match_case")
        _once(items, entry(cells[0], cells[1], cells[2], "match_case" in flags, f"{where}, line {number}"), where, f"line {number}")
    return [item for item, _ in items.values()]


def _once(items: dict[tuple[bool, str], tuple[Entry, str]], item: Entry, where: str, place: str) -> None:
    """Keep ``item`` (found at ``place`` of ``where``, if it has one) in ``items`` by its key. A word listed again the same way is
    kept once; listed with another pronunciation it is an error naming both places: which one was meant cannot be told,
    and the later one winning silently hid the other line's edit."""
    earlier = items.get(item.key())
    if earlier is None:
        items[item.key()] = (item, place)
    elif (earlier[0].phonemes, earlier[0].respell) != (item.phonemes, item.respell):
        also = f"also at {earlier[1]}" if earlier[1] else f"also as '{earlier[0].word}'"
        raise InputError(f"{where}{', ' + place if place else ''}: '{item.word}' is listed twice with different "
                         f"pronunciations ({also}); keep one of the two")


def _cap(items: list[Entry], where: str) -> tuple[Entry, ...]:
    if len(items) > MAX_ENTRIES:
        raise InputError(f"{where}: more than {MAX_ENTRIES} entries; split it")
    return tuple(items)


def to_tsv(lexicon: Lexicon) -> str:
    """The TSV text of ``lexicon``."""
    lines = ["# word\tphonemes (espeak-ng IPA, Piper)\trespelling (XTTS)\tflags (match_case)"]
    lines += [f"{e.word}\t{e.phonemes}\t{e.respell}\t{'match_case' if e.match_case else ''}".rstrip("\t") for e in lexicon.entries]
    return "\n".join(lines) + "\n"


def to_data(lexicon: Lexicon) -> list[dict[str, Any]]:
    """The entries as JSON/YAML-ready mappings."""
    return [{"word": e.word, "phonemes": e.phonemes, "say": e.respell, "match_case": e.match_case} for e in lexicon.entries]


class LexiconStore:
    """Named lexicons as files in one folder (``NAME.tsv`` or ``NAME.yaml``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Optional[Path]:
        """The existing file of lexicon ``name``, or ``None``."""
        check_name(name)
        for suffix in SUFFIXES:
            candidate = self.folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def names(self) -> list[str]:
        """The stored lexicons' names."""
        if not self.folder.is_dir():
            return []
        return sorted({p.name.rsplit(".", 1)[0] for p in self.folder.iterdir()
                       if p.suffix in SUFFIXES and NAME.match(p.stem) and not p.stem.endswith(SUFFIXES)})

    def load(self, name: str) -> Optional[Lexicon]:
        """Lexicon ``name``, or ``None`` when there is none."""
        path = self.path(name)
        return None if path is None else read_file(path, name)

    def save(self, name: str, lexicon: Lexicon) -> Path:
        """Write ``lexicon`` as ``name`` (atomically; in its existing format, TSV for a new one)."""
        path = self.path(name) or self.folder / f"{name}.tsv"
        if path.suffix == ".tsv":
            text = to_tsv(lexicon)
        else:
            text = yaml.safe_dump({"entries": to_data(lexicon)}, allow_unicode=True, sort_keys=False)
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        return path

    def add(self, name: str, item: Entry) -> Path:
        """Add ``item`` to lexicon ``name`` (created when missing), replacing an entry with its key."""
        return self.save(name, merge(self.load(name), Lexicon((item,))))

    def remove(self, name: str, word: str) -> bool:
        """Remove ``word`` (any case; both a case-matching and a loose entry) from lexicon ``name``; whether it was there."""
        lexicon = self.load(name) or EMPTY
        kept = tuple(e for e in lexicon.entries if fold(e.word) != fold(written_form(word.strip())))
        if len(kept) == len(lexicon.entries):
            return False
        self.save(name, Lexicon(kept, name))
        return True

    def merged(self, names: Iterable[str]) -> Lexicon:
        """The named lexicons that exist, merged in order (later ones narrower)."""
        return merge(*(self.load(name) for name in names))


def check_name(name: str) -> str:
    """``name`` if it can be a lexicon's name; :class:`InputError` otherwise."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise InputError(f"'{str(name)[:80]}' is not a lexicon name: letters, digits, '_', '.' or '-' (up to 64, not starting "
                         "with . - _)")
    if name.endswith(SUFFIXES):  # "--lexicon names.tsv" reads a file: stored as names.tsv.tsv, it was never read
        stem, suffix = name.rsplit(".", 1)
        raise InputError(f"'{name}' names a lexicon file, not a stored lexicon: give the name without .{suffix} ('{stem}'), "
                         "or edit the file itself")
    return name


_READ: dict[tuple[str, str], tuple[tuple[int, int], Lexicon]] = {}


def read_file(path: Path, name: str = "") -> Lexicon:
    """Lexicon in ``path`` (``.tsv``, ``.yaml`` / ``.yml``); the same object again while the file is unchanged."""
    try:
        stat = path.stat()
    except OSError as err:
        raise InputError(f"cannot read lexicon {name or path.name} ({err.strerror or type(err).__name__})") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _READ.get((str(path), name))
    if cached and cached[0] == stamp:
        return cached[1]
    lexicon = _read(path, name)
    if len(_READ) > 256:
        _READ.clear()
    _READ[(str(path), name)] = (stamp, lexicon)
    return lexicon


def _read(path: Path, name: str) -> Lexicon:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"lexicon {name or path.name} is not UTF-8 text; save it as UTF-8") from None
    except OSError as err:
        raise InputError(f"cannot read lexicon {name or path.name} ({err.strerror or type(err).__name__})") from None
    fmt = "tsv" if path.suffix == ".tsv" else "yaml"
    lexicon = parse(text, fmt, f"lexicon {name or path.name}")
    return Lexicon(lexicon.entries, name or path.stem)
