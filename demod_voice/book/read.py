"""Books in: plain text, Markdown and EPUB turned into titled chapters of paragraphs.

Rules a reader can see (``book --dry-run`` lists what each did):

- ``.txt``: paragraphs are separated by blank lines (hard-wrapped lines are joined); a paragraph
  that is one short line starting with Chapter, Part, Book, Prologue or Epilogue (or such a line and
  the chapter's title on the next) starts a chapter. No such line: the whole text is one chapter
  named after the file. A one-line paragraph that is a front or back matter title ("Contents") starts
  such a chapter, skipped with what follows it up to the next heading (a list of contents). Picture
  marks ("[Illustration: ...]") and footnotes ("late.[1]", "[1] A note.") are not read. A Project Gutenberg file is read between its START and
  END lines, its header's Title and Author taken as the book's, its credits ("Produced by ...") left out.
- Markdown: headings are chapters. With one level-1 heading and level-2 headings below it, the
  level-1 heading is the book's title and level-2 headings are chapters; otherwise the highest
  level used is, and the level below it too when every heading of that level is a part's ("# Part One" over "## Chapter
  1"). Lower headings are read as paragraphs; code blocks, raw HTML and images are not read.
- EPUB: the spine gives the reading order and the table of contents (EPUB 3 ``nav``, else EPUB 2
  ``toc.ncx``) the chapters and their titles; a spine document the contents do not name continues
  the chapter before it. Spine items marked ``linear="no"`` are skipped. Title, author, language
  and cover come from the package document.
- Everywhere: a chapter whose title (or EPUB structural type) is front or back matter — cover,
  title page, copyright, contents, dedication, acknowledgements, colophon, index, "also by" — is
  skipped unless ``keep_front_matter``; a chapter with no words is skipped, unless it is a part over chapters
  with words (:func:`is_part`).

An EPUB is a zip of XML from anywhere: member count and sizes are capped before anything is
inflated, members are read with a byte cap (a zip's declared sizes can lie), XML that declares
entities is refused, a DRM-protected EPUB is refused (font obfuscation is not DRM), and XML is parsed with entity
expansion, DTD loading and network access off. Content documents go through lxml's
HTML parser, which loads nothing from outside either.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any, Optional

from demod_voice.book.contents import FRONT_MATTER, Book, Chapter, EpubLimits, Skipped, clean
from demod_voice.book.epub import read_epub
from demod_voice.errors import DependencyError, InputError
from demod_voice.speech_text.english import roman_value

_ROMAN = r"(?=[mdclxvi])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_NUMBER = (rf"(?:\d+|{_ROMAN}|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-\w+)?|one|two|three|four|five|six|"
           r"seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|the \w+)")
_TITLE = r"[^.!?;,\n]{0,70}[^.!?;,\s]"
_ROMAN_CAPS = r"(?=[CLXVI])C{0,3}(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
"""A chapter's number in Roman capitals, I to CCCXCIX: without M and D, words such as "MIX" and "DIM" are no numbers."""
_BARE_ROMAN = re.compile(rf"({_ROMAN_CAPS})\.?")
"""A heading that is a Roman numeral alone ("IV", "IV."), with no title: a letter's signature ("L.") looks the same."""
_NUMBERED = rf"\s+{_NUMBER}(?:\.|(?:\s*[:.\-–—]\s*|\s+){_TITLE})?"
"""A heading's number and title after its Chapter, Part or Book: " 4", " II: Winter", " the First"."""
_TXT_HEADING = re.compile(rf"^(?:(?:chapter|part|book){_NUMBERED}|"
                          rf"(?:prologue|epilogue)(?:\s*[:.\-–—]\s*{_TITLE})?|"
                          rf"(?-i:{_ROMAN_CAPS})(?:\.(?:\s+{_TITLE})?)?)$", re.IGNORECASE)
"""A plain-text chapter heading on a line of its own: "Chapter 4", "CHAPTER ONE", "Part II: Winter", "Book the First",
"Prologue", or a Roman numeral in capitals alone ("IV", "IV.") or with a title ("I. A SCANDAL IN BOHEMIA"), as many
classics number their chapters (such a book was one chapter of many hours); a number alone is not one (a scanned book's
page numbers are). A sentence that starts with one of
those words ("Book him, he said.", "Part of her wanted to follow.") is text: it took a chapter's place, and its own
words were dropped as a chapter with none."""
_PART_HEADING = re.compile(rf"^(?:part|book){_NUMBERED}$", re.IGNORECASE)
"""A part's heading ("Part One", "PART II: Winter", "Book the First"), in any kind of book."""
_PG_MARK = re.compile(r"^[ \t]*\*{3}[ \t]*(?P<which>START|END) OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b[^\n]*$",
                      re.IGNORECASE | re.MULTILINE)
"""Project Gutenberg's lines around a book's own text ("*** START OF THE PROJECT GUTENBERG EBOOK ALICE ***")."""
_ILLUSTRATION = re.compile(r"\[(?:illustration|picture)(?::[^\]]*)?\]", re.IGNORECASE)
"""Where a text marks a picture ("[Illustration]", "[Illustration: Alice and the Rabbit]", Project Gutenberg's form):
not read (it was, as words)."""
_TXT_NOTE_MARK = re.compile(r"(?<=[^\s\[\d])\[(\d{1,3})\](?![\[\w=(]|\.\w)")
"""A footnote's mark in plain text, right after a word or its punctuation ("late.[1]", Project Gutenberg's form): not read
(it was, "late. one")."""
_TXT_NOTE = re.compile(r"^\[(?:(\d{1,3})\]\s|footnote\s+(\d{1,3})\s*:)", re.IGNORECASE)
"""The note itself: a paragraph that starts with the number of a mark before it ("[1] A footnote.") or Project Gutenberg's
"[Footnote 1: ...]": not read, as a Markdown or an EPUB book's notes are not."""
_CREDITS = re.compile(r"^(?:produced by|e-?text prepared by|transcribed (?:from|by)|transcriber['’]?s note)\b", re.IGNORECASE)
"""Who made a Project Gutenberg text, the first lines after its START line: not read."""
_MD_NOTE = re.compile(r"\[\^[^\]\s]+\]")
"""A Markdown footnote's mark ("[^1]", "[^note]", as Pandoc and GitHub write them; CommonMark leaves it as text): not read,
and a paragraph that starts with one and a colon is the note itself, not read either; both were read aloud."""
_HEADING_ROMAN = re.compile(rf"^((?:chapter|part|book)\s+|)({_ROMAN})\b(\s*)(.*)$", re.IGNORECASE)
log = logging.getLogger(__name__)


def read_book(path: Path, limits: Optional[EpubLimits] = None, keep_front_matter: bool = False, max_chars: int = 0) -> Book:
    """Read ``path`` (.txt, .md/.markdown, .epub); raise :class:`InputError` with one line for anything unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".md", ".markdown", ".epub"):
        raise InputError(f"cannot tell what kind of book {path.name} is: give a .txt, .md or .epub file")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the book's .txt, .md or .epub file")
    if not path.is_file():
        raise InputError(f"book {path} not found; check the path")
    if suffix == ".epub":
        book = read_epub(path, limits or EpubLimits())
    else:
        text = _read_text(path, max_chars)
        book = _read_markdown(text, path) if suffix in (".md", ".markdown") else _read_txt(text, path)
    book = _select(book, keep_front_matter)
    total = sum(c.chars for c in book.chapters)
    if max_chars and total > max_chars:
        raise InputError(f"{path.name} holds {total} characters to read, more than book.max_chars ({max_chars}); "
                         "split it, or raise the limit")
    if not book.chapters:
        front = sum(s.reason.startswith("front or back matter") for s in book.skipped)
        if front:  # only without --keep-front-matter: with it, nothing is skipped as such
            raise InputError(f"{path.name} has no text to read ({front} part(s) skipped as front or back matter; "
                             "--keep-front-matter reads them)")
        raise InputError(f"{path.name} has no words to read; check that it is the book you meant")
    return book


def speakable(paragraph: str) -> bool:
    """Whether a paragraph has words to speak: a scene break ("***", "* * *", "---", "—", "…") has none, and is left
    out (the paragraph pause before it stays): it was read aloud ("asterisk") or, with nothing a voice can say, failed
    its take and with it the book."""
    return any(ch.isalnum() for ch in paragraph)


def said_title(title: str) -> str:
    """How a chapter's heading is said where that is not as it is written: a Roman numeral in capitals after Chapter,
    Part or Book (in lower case too, "Chapter iv") or alone at its start ("IV. The Storm"), in a heading of the form the reader takes for one
    (:data:`_TXT_HEADING`), as a number ("CHAPTER XIV": "CHAPTER 14", "PART II Winter": "PART 2, Winter"), which
    normalisation then says; espeak-ng said "Roman fourteen".
    Empty for any other title; running text is never read this way ("I", "MIX")."""
    heading = _TXT_HEADING.match(title) or _TXT_HEADING.match(title.partition(":")[0])  # "II" over "The Return": "II: The Return"
    found = _HEADING_ROMAN.match(title) if heading else None
    if found is None or not (found[2].isupper() or (found[1] and found[2].islower() and re.fullmatch(_ROMAN_CAPS, found[2].upper()))):
        return ""  # "Chapter iv" as small capitals print it (was "chapter Roman four"); never a numeral alone in lower case
    keyword, numeral, space, rest = found.groups()
    value = roman_value(numeral.upper())
    if not keyword:  # a numeral alone, "IV." or "I. A SCANDAL IN BOHEMIA": "4." was "I V"
        return f"{value}{space}{rest}"
    return f"{keyword}{value}" + (f", {rest}" if space and rest[:1].isalnum() else f"{space}{rest}")


def is_part(chapter: Chapter) -> bool:
    """Whether a chapter is a part's heading: its contents entry has entries under it, or its title is a Part or Book
    heading ("Part One", "PART II: Winter", "Book the First")."""
    return chapter.titled and (chapter.part or _PART_HEADING.match(chapter.title) is not None)


def _heads_words(chapters: list[Chapter], index: int) -> bool:
    """Whether a chapter with no words of its own is a part over chapters with words, kept and its title read, as
    audiobooks announce parts: a page that was only "Part One" was skipped, and a listener never heard it. Parts in a
    list of contents whose lines are headings stand over chapters with no words, and stay unread."""
    if not is_part(chapters[index]):
        return False
    kind = chapters[index].title.split()[0].casefold()  # a Book over its Parts; a Part after a Part is a list
    below = next((c for c in chapters[index + 1:] if c.paragraphs or not is_part(c) or c.title.split()[0].casefold() == kind), None)
    return below is not None and bool(below.paragraphs)


def _select(book: Book, keep_front_matter: bool) -> Book:
    kept: list[Chapter] = []
    chapters = [dataclasses.replace(c, paragraphs=tuple(p for p in c.paragraphs if speakable(p))) for c in book.chapters]
    for index, chapter in enumerate(chapters):
        if not chapter.paragraphs and not _heads_words(chapters, index):
            book.skipped.append(Skipped(chapter.title, chapter.source, "no words"))
        elif not keep_front_matter and FRONT_MATTER.match(chapter.title):
            book.skipped.append(Skipped(chapter.title, chapter.source, "front or back matter (by its title)"))
        else:
            kept.append(chapter)
    book.chapters = kept
    return book


def _read_text(path: Path, max_chars: int) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    if max_chars and len(data) > 8 * max_chars:
        raise InputError(f"{path.name} is {len(data) >> 20} MB, far more than book.max_chars ({max_chars}) allows; split it")
    # Windows' "Unicode" text (Notepad's, Word's) is UTF-16 with a byte-order mark, which says so: it was "not UTF-8 (byte 0)"
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1  # a byte's offset alone is hard to find in a book
        wanted = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise InputError(f"{path.name} is not {wanted} (line {line}, byte {err.start}); save it as UTF-8") from None


# --- plain text ------------------------------------------------------------------------------


def _read_txt(text: str, path: Path) -> Book:
    book = Book(title=path.stem)
    text, line = _gutenberg(text.replace("\r\n", "\n"), book)
    title, source, paragraphs, titled = book.title, f"{path.name}:{line}", [], False
    gutenberg = line > 1  # read from after its START line
    numbered = 0  # the last numeral alone that was a heading (a story's sections, a part's chapters may count from I again)
    marks: set[str] = set()  # footnotes' numbers marked so far
    for block in re.split(r"\n[ \t]*\n", text):
        start = line + block[:len(block) - len(block.lstrip())].count("\n")  # after more than one blank line
        line += block.count("\n") + 2
        paragraph = clean(_ILLUSTRATION.sub(" ", block))
        note = _TXT_NOTE.match(paragraph)
        if note and (note[1] is None or note[1] in marks):
            continue
        marks.update(_TXT_NOTE_MARK.findall(paragraph))
        paragraph = _TXT_NOTE_MARK.sub("", paragraph)
        if not paragraph:
            continue
        if gutenberg and not titled and not paragraphs and _CREDITS.match(paragraph):
            book.skipped.append(Skipped(paragraph[:60], f"{path.name}:{start}", "Project Gutenberg's credits"))
            continue
        heading = _txt_heading(block) or (paragraph if "\n" not in block.strip() and FRONT_MATTER.match(paragraph) else "")
        bare = _BARE_ROMAN.fullmatch(heading)
        if bare and bare[1]:
            value = roman_value(bare[1])
            # a numeral out of the book's order is text: a letter signed "L." or "C." began a chapter called "50."
            heading, numbered = (heading, value) if value == 1 or numbered < value <= numbered + 2 else ("", numbered)
        if heading:
            if paragraphs or titled:
                book.chapters.append(Chapter(title, tuple(paragraphs), source, titled))
            title, source, paragraphs, titled = heading, f"{path.name}:{start}", [], True
            continue
        paragraphs.append(paragraph)
    book.chapters.append(Chapter(title, tuple(paragraphs), source, titled))
    return book


def _txt_heading(block: str) -> str:
    """The chapter heading a paragraph is ("" if none): one line of the heading grammar (:data:`_TXT_HEADING`), or such
    a line with the chapter's title on the next, Project Gutenberg's form ("CHAPTER I." / "The Beginning": "CHAPTER I.
    The Beginning"), which was read as text and left the book one chapter."""
    lines = [clean(line) for line in block.strip().split("\n")]
    if not _TXT_HEADING.match(lines[0]) or len(lines) > 2:
        return ""
    if len(lines) == 1:
        return lines[0]
    name = lines[1][:-1] if lines[1].endswith(".") and lines[1].isupper() else lines[1]  # "THE END." is a title, "It ended." not
    if _TXT_HEADING.match(lines[1]) or not re.fullmatch(_TITLE, name):
        return ""  # two headings (a list of contents), or a sentence after a heading
    return f"{lines[0]} {name}" if lines[0][-1] in ".:-–—" else f"{lines[0]}: {name}"


def _gutenberg(text: str, book: Book) -> tuple[str, int]:
    """A Project Gutenberg file's own text, between its ``*** START OF THE PROJECT GUTENBERG EBOOK ... ***`` and
    ``*** END OF ...`` lines, with the line it starts on; its header's Title and Author as the book's. Read whole, the
    header went into the first chapter and some 18,000 characters of licence into the last. Other text: as it is."""
    start = _PG_MARK.search(text)
    if start is None or start["which"].upper() != "START":
        return text, 1
    header = text[:start.start()]
    for key in ("title", "author"):
        found = re.search(rf"^{key}:[ \t]*(\S.*(?:\n[ \t]+\S.*)*)", header, re.IGNORECASE | re.MULTILINE)
        if found:
            setattr(book, key, clean(found[1]))
    end = next((m for m in _PG_MARK.finditer(text, start.end()) if m["which"].upper() == "END"), None)
    return text[start.end():end.start() if end else len(text)], text.count("\n", 0, start.end()) + 1


# --- Markdown --------------------------------------------------------------------------------


def _read_markdown(text: str, path: Path) -> Book:
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise DependencyError("reading Markdown needs markdown-it-py; install it with: pip install 'demod-voice[book]'") from None
    book = Book(title=path.stem)
    text, line = _front_matter(text.replace("\r\n", "\n"), book)  # Windows line endings: the front matter was text
    tokens = MarkdownIt("commonmark").enable("table").parse(text)  # a GFM table was one run-on paragraph of its pipes
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    if not levels:
        book.chapters.append(Chapter(book.title, tuple(_md_paragraphs(tokens)), f"{path.name}:{line}", titled=False))
        return book
    chapter_level = min(levels)
    if levels.count(1) == 1 and 2 in levels:
        chapter_level = 2
    deepest = _chapter_depth(tokens, chapter_level, levels)
    sections: list[tuple[str, str, list[Any]]] = [(book.title, f"{path.name}:{line}", [])]
    named = book.title != path.stem  # by the front matter: a title of the book's own, read
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open" and int(token.tag[1]) <= deepest:
            heading = clean(_inline_text(tokens[index + 1]))
            where = f"{path.name}:{(token.map or [0])[0] + line}"
            if int(token.tag[1]) < chapter_level:
                book.title = heading or book.title
                named = named or bool(heading)
            else:
                sections.append((heading or f"Chapter {len(sections)}", where, []))
            index += 3
            continue
        sections[-1][2].append(token)
        index += 1
    first_title, first_source, first_tokens = sections[0]
    intro = bool(_md_paragraphs(first_tokens))
    if not intro:
        sections = sections[1:]
    else:
        sections[0] = (book.title, first_source, first_tokens)
    # the text before the first heading is read under the book's title, which is not spoken when it is the file's name
    book.chapters = [Chapter(title, tuple(_md_paragraphs(body)), source, titled=named or not (intro and number == 0))
                     for number, (title, source, body) in enumerate(sections)]
    return book


def _chapter_depth(tokens: list[Any], level: int, levels: list[int]) -> int:
    """The lowest heading level that starts a chapter: ``level``, or the one below it when every heading at ``level`` is
    a part's ("# Part One" over "## Chapter 1"): the chapters' headings were read as paragraphs, and only the parts had
    chapter marks."""
    headings = [clean(_inline_text(tokens[n + 1])) for n, t in enumerate(tokens) if t.type == "heading_open" and int(t.tag[1]) == level]
    parts = all(_PART_HEADING.match(heading) for heading in headings)
    return level + 1 if parts and level + 1 in levels else level


def _front_matter(text: str, book: Book) -> tuple[str, int]:
    """A Markdown file's YAML front matter (``---`` lines around ``title: ...``, as Pandoc and static site generators
    write it) taken off the text, its title, author and language the book's; with the line the text goes on from. It
    was read aloud as the first chapter ("title colon The Long Road author colon..."), under the file's name."""
    found = re.match(r"---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|$)", text, re.DOTALL)
    if found is None:
        return text, 1
    import yaml

    try:
        meta = yaml.safe_load(found[1])
    except yaml.YAMLError:
        return text, 1  # not front matter after all: read as it is
    if not isinstance(meta, dict):
        return text, 1
    for key, names in (("title", ("title",)), ("author", ("author", "creator")), ("language", ("lang", "language"))):
        value = next((meta[name] for name in names if meta.get(name)), None)
        value = ", ".join(map(str, value)) if isinstance(value, list) else value
        if value is not None:
            setattr(book, key, clean(str(value)))
    return text[found.end():], found[0].count("\n") + 1


def _md_paragraphs(tokens: list[Any]) -> list[str]:
    """Paragraphs, list items and lower headings, in order; code, HTML, images and footnotes are not read."""
    out: list[str] = []
    row: Optional[list[str]] = None  # a table row's cells: one paragraph, as an EPUB's table rows are read
    numbers = _item_numbers(tokens)
    for index, token in enumerate(tokens):
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            out.extend([_row(row)] if row else [])
            row = None
        elif token.type == "inline" and not re.match(rf"{_MD_NOTE.pattern}:", token.content.lstrip()):
            text = clean(_MD_NOTE.sub("", _inline_text(token)))
            if text:
                (out if row is None else row).append(numbers.get(index, "") + text)
    return out


def _item_numbers(tokens: list[Any]) -> dict[int, str]:
    """Token index of each numbered list item's first words -> its number as printed (``"2. "``: the list's start and
    the item's place, as CommonMark numbers them); the numbers were lost, and with them the order of a recipe's steps."""
    numbers: dict[int, str] = {}
    lists: list[Optional[int]] = []  # the next number of each open list, innermost last (None: a bullet list)
    pending = ""
    for index, token in enumerate(tokens):
        if token.type in ("ordered_list_open", "bullet_list_open"):
            lists.append(int(token.attrs.get("start", 1)) if token.type == "ordered_list_open" else None)
        elif token.type in ("ordered_list_close", "bullet_list_close"):
            lists.pop()
        elif token.type == "list_item_open" and lists and lists[-1] is not None:
            pending, lists[-1] = f"{lists[-1]}. ", lists[-1] + 1
        elif token.type == "inline" and pending:
            numbers[index], pending = pending, ""
    return numbers


def _row(cells: list[str]) -> str:
    """A table row's cells said one after another, a comma between them where a cell does not end in punctuation."""
    said = [cells[0]]
    for before, cell in zip(cells, cells[1:], strict=False):
        said.append(f"{' ' if before[-1] in ',.;:!?' else ', '}{cell}")
    return "".join(said)


def _inline_text(token: Any) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)
