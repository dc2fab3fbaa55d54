"""Books in: plain text, Markdown and EPUB turned into titled chapters of paragraphs.

Rules a reader can see (``book --dry-run`` lists what each did):

- ``.txt``: paragraphs are separated by blank lines (hard-wrapped lines are joined); a paragraph
  that is one short line starting with Chapter, Part, Book, Prologue or Epilogue (or such a line and
  the chapter's title on the next) starts a chapter. No such line: the whole text is one chapter
  named after the file. A Project Gutenberg file is read between its START and END lines, its
  header's Title and Author taken as the book's.
- Markdown: headings are chapters. With one level-1 heading and level-2 headings below it, the
  level-1 heading is the book's title and level-2 headings are chapters; otherwise the highest
  level used is. Lower headings are read as paragraphs; code blocks, raw HTML and images are not read.
- EPUB: the spine gives the reading order and the table of contents (EPUB 3 ``nav``, else EPUB 2
  ``toc.ncx``) the chapters and their titles; a spine document the contents do not name continues
  the chapter before it. Spine items marked ``linear="no"`` are skipped. Title, author, language
  and cover come from the package document.
- Everywhere: a chapter whose title (or EPUB structural type) is front or back matter — cover,
  title page, copyright, contents, dedication, acknowledgements, colophon, index, "also by" — is
  skipped unless ``keep_front_matter``; a chapter with no words is skipped.

An EPUB is a zip of XML from anywhere: member count and sizes are capped before anything is
inflated, members are read with a byte cap (a zip's declared sizes can lie), XML that declares
entities is refused, a DRM-protected EPUB is refused (font obfuscation is not DRM), and XML is parsed with entity
expansion, DTD loading and network access off. Content documents go through lxml's
HTML parser, which loads nothing from outside either.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote

from demod_voice.errors import DependencyError, InputError

FRONT_MATTER = re.compile(
    r"^\s*(cover|title\s*page|half\s*title|copyright( page)?|(table of )?contents|toc|dedication|epigraph|"
    r"acknowledge?ments?|colophon|imprint|index|also by.*|about the publisher|other books.*|praise for.*)\s*$",
    re.IGNORECASE)
"""Chapter titles taken for front or back matter."""
FRONT_TYPES = {"cover", "titlepage", "halftitlepage", "copyright-page", "toc", "dedication", "acknowledgments",
               "colophon", "imprint", "index", "landmarks", "loi", "lot", "frontmatter-toc", "other-credits"}
"""EPUB structural types (``epub:type`` on the body or section, or the guide's ``type``) of front and back matter."""
_ROMAN = r"(?=[mdclxvi])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_NUMBER = (rf"(?:\d+|{_ROMAN}|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-\w+)?|one|two|three|four|five|six|"
           r"seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|the \w+)")
_TITLE = r"[^.!?;,\n]{0,70}[^.!?;,\s]"
_TXT_HEADING = re.compile(rf"^(?:(?:chapter|part|book)\s+{_NUMBER}(?:\.|(?:\s*[:.\-–—]\s*|\s+){_TITLE})?|"
                          rf"(?:prologue|epilogue)(?:\s*[:.\-–—]\s*{_TITLE})?)$", re.IGNORECASE)
"""A plain-text chapter heading on a line of its own: "Chapter 4", "CHAPTER ONE", "Part II: Winter", "Book the First",
"Prologue". A sentence that starts with one of those words ("Book him, he said.", "Part of her wanted to follow.") is
text: it took a chapter's place, and its own words were dropped as a chapter with none."""
_PG_MARK = re.compile(r"^[ \t]*\*{3}[ \t]*(?P<which>START|END) OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b[^\n]*$",
                      re.IGNORECASE | re.MULTILINE)
"""Project Gutenberg's lines around a book's own text ("*** START OF THE PROJECT GUTENBERG EBOOK ALICE ***")."""
_COVERS = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
"""The cover images an m4b holds, by their first bytes (a manifest's media type can be wrong)."""
_HEADING_ROMAN = re.compile(rf"^((?:chapter|part|book)\s+)({_ROMAN})\b(\s*)(.*)$", re.IGNORECASE)
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "section", "article", "tr", "br",
           "dt", "dd", "figcaption", "pre", "hr", "aside", "header", "footer", "td", "th"}
_UNREAD = {"script", "style", "head", "title", "svg", "math", "object", "iframe", "nav", "img", "audio", "video"}
_EPUB_NS = "http://www.idpf.org/2007/ops"
_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
"""``encryption.xml``'s other use, font obfuscation (IDPF, Adobe): fonts mangled against copying, the text left as it is;
such an EPUB is read. Any other method (AES: Adobe ADEPT, Readium LCP, store DRM) makes a member ciphertext."""
_OPF_NS = {"opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpubLimits:
    """Caps on an EPUB before and while it is unpacked (``book.*`` in the config)."""

    max_members: int = 2000
    """Files the zip may hold."""
    max_member_bytes: int = 16 << 20
    """Unpacked size of any one file."""
    max_total_bytes: int = 256 << 20
    """Unpacked size of all files together."""


@dataclass(frozen=True)
class Chapter:
    """A chapter to be read: its title and its paragraphs (the title not among them)."""

    title: str
    paragraphs: tuple[str, ...]
    source: str
    """Where it came from (an EPUB document, a Markdown or text line), for messages."""
    titled: bool = True
    """The title is the book's own (a heading), so it is read; a title made up from a file name is not."""

    @property
    def chars(self) -> int:
        return sum(len(p) for p in self.paragraphs)


@dataclass(frozen=True)
class Skipped:
    """A part of the book that is not read, and the rule that left it out."""

    title: str
    source: str
    reason: str


@dataclass
class Book:
    """A book as read: metadata, the chapters to read, and what was left out."""

    title: str
    author: str = ""
    language: str = ""
    cover: Optional[bytes] = None
    """Cover image bytes (JPEG or PNG) from the EPUB."""
    cover_type: str = ""
    """``image/jpeg`` or ``image/png``."""
    chapters: list[Chapter] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def read_book(path: Path, limits: EpubLimits = EpubLimits(), keep_front_matter: bool = False, max_chars: int = 0) -> Book:
    """Read ``path`` (.txt, .md/.markdown, .epub); raise :class:`InputError` with one line for anything unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".md", ".markdown", ".epub"):
        raise InputError(f"cannot tell what kind of book {path.name} is: give a .txt, .md or .epub file")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the book's .txt, .md or .epub file")
    if not path.is_file():
        raise InputError(f"book {path} not found; check the path")
    if suffix == ".epub":
        book = _read_epub(path, limits)
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
    Part or Book, in a heading of the form the reader takes for one (:data:`_TXT_HEADING`), as a number ("CHAPTER XIV":
    "CHAPTER 14", "PART II Winter": "PART 2, Winter"), which normalisation then says; espeak-ng said "Roman fourteen".
    Empty for any other title; running text is never read this way ("I", "MIX")."""
    found = _HEADING_ROMAN.match(title) if _TXT_HEADING.match(title) else None
    if found is None or not found[2].isupper():
        return ""
    keyword, numeral, space, rest = found.groups()
    digits = [_ROMAN_VALUES[letter] for letter in numeral.lower()]
    value = sum(-d if d < after else d for d, after in zip(digits, [*digits[1:], 0], strict=True))
    return f"{keyword}{value}" + (f", {rest}" if space and rest[:1].isalnum() else f"{space}{rest}")


def _select(book: Book, keep_front_matter: bool) -> Book:
    kept: list[Chapter] = []
    for chapter in book.chapters:
        chapter = dataclasses.replace(chapter, paragraphs=tuple(p for p in chapter.paragraphs if speakable(p)))
        if not chapter.paragraphs:
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
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path.name} is not UTF-8 (byte {err.start}); save it as UTF-8") from None


def clean(text: str) -> str:
    """White space folded to single spaces; soft hyphens and zero-width characters removed."""
    return " ".join(text.replace("\u00ad", "").replace("\u200b", "").replace("\ufeff", "").split())


# --- plain text ------------------------------------------------------------------------------


def _read_txt(text: str, path: Path) -> Book:
    book = Book(title=path.stem)
    text, line = _gutenberg(text.replace("\r\n", "\n"), book)
    title, source, paragraphs, titled = book.title, f"{path.name}:{line}", [], False
    for block in re.split(r"\n[ \t]*\n", text):
        start = line
        line += block.count("\n") + 2
        paragraph = clean(block)
        if not paragraph:
            continue
        heading = _txt_heading(block)
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
    tokens = MarkdownIt("commonmark").parse(text)
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    book = Book(title=path.stem)
    if not levels:
        book.chapters.append(Chapter(path.stem, tuple(_md_paragraphs(tokens)), f"{path.name}:1", titled=False))
        return book
    chapter_level = min(levels)
    if levels.count(1) == 1 and 2 in levels:
        chapter_level = 2
    sections: list[tuple[str, str, list[Any]]] = [(path.stem, f"{path.name}:1", [])]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open" and int(token.tag[1]) <= chapter_level:
            heading = clean(_inline_text(tokens[index + 1]))
            line = f"{path.name}:{(token.map or [0])[0] + 1}"
            if int(token.tag[1]) < chapter_level:
                book.title = heading or book.title
            else:
                sections.append((heading or f"Chapter {len(sections)}", line, []))
            index += 3
            continue
        sections[-1][2].append(token)
        index += 1
    first_title, first_source, first_tokens = sections[0]
    if not _md_paragraphs(first_tokens):
        sections = sections[1:]
    else:
        sections[0] = (book.title, first_source, first_tokens)
    book.chapters = [Chapter(title, tuple(_md_paragraphs(body)), source) for title, source, body in sections]
    return book


def _md_paragraphs(tokens: list[Any]) -> list[str]:
    """Paragraphs, list items and lower headings, in order; code, HTML and images are not read."""
    out = []
    for token in tokens:
        if token.type == "inline":
            text = clean(_inline_text(token))
            if text:
                out.append(text)
    return out


def _inline_text(token: Any) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


# --- EPUB ------------------------------------------------------------------------------------


def _lxml() -> Any:
    try:
        from lxml import etree, html
    except ImportError:
        raise DependencyError("reading EPUB needs lxml; install it with: pip install 'demod-voice[book]'") from None
    return etree, html


class _Epub:
    """The zip, opened with its caps checked before anything is inflated."""

    def __init__(self, path: Path, limits: EpubLimits) -> None:
        self.name = path.name
        self.limits = limits
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise InputError(f"{path.name} is not a readable EPUB (not a zip: {err}); check the file") from None
        infos = self.zip.infolist()
        if len(infos) > limits.max_members:
            raise InputError(f"{path.name} holds {len(infos)} files, more than book.max_epub_members ({limits.max_members}); "
                             "it is not read")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise InputError(f"{path.name} unpacks to {declared >> 20} MB, more than book.max_unpacked_mb "
                             f"({limits.max_total_bytes >> 20}); it is not read")
        self.names = {i.filename for i in infos}
        self.read_bytes = 0
        self.encrypted: set[str] = set()
        """Members held as ciphertext: one read is a DRM refusal, not text (:meth:`refuse_drm`)."""

    def refuse_drm(self) -> None:
        """Refuse a DRM-protected EPUB (Adobe ADEPT's ``rights.xml``), and note the members ``encryption.xml`` encrypts
        by other means than font obfuscation: lxml's HTML parser made text of their ciphertext, and a book of it was
        minutes of babble with bytes in its captions, exit 0."""
        if "META-INF/rights.xml" in self.names:
            raise self.drm("META-INF/rights.xml")
        if "META-INF/encryption.xml" not in self.names:
            return
        for data in self.xml("META-INF/encryption.xml").iter():
            if _local(data.tag) != "EncryptedData":
                continue
            method = next((e.get("Algorithm") for e in data.iter() if _local(e.tag) == "EncryptionMethod"), None)
            uri = next((e.get("URI") for e in data.iter() if _local(e.tag) == "CipherReference"), None)
            if uri and method not in _OBFUSCATION:
                self.encrypted.add(_join("", uri))

    def drm(self, why: str) -> InputError:
        return InputError(f"{self.name} is DRM-protected ({why}); it cannot be read: use a DRM-free copy")

    def read(self, name: str) -> bytes:
        """A member's bytes, at most ``max_member_bytes`` whatever the zip declares."""
        if name not in self.names:
            raise InputError(f"{self.name} is not a valid EPUB: it names {name!r}, which it does not hold")
        if name in self.encrypted:
            raise self.drm(f"META-INF/encryption.xml encrypts {name}")
        try:
            with self.zip.open(name) as handle:
                data = handle.read(self.limits.max_member_bytes + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError) as err:
            raise InputError(f"{self.name}: cannot unpack {name} ({err}); the EPUB is damaged") from None
        if len(data) > self.limits.max_member_bytes:
            raise InputError(f"{self.name}: {name} unpacks to more than book.max_member_mb "
                             f"({self.limits.max_member_bytes >> 20} MB); the EPUB is not read")
        self.read_bytes += len(data)
        if self.read_bytes > self.limits.max_total_bytes:
            raise InputError(f"{self.name} unpacks to more than book.max_unpacked_mb ({self.limits.max_total_bytes >> 20} MB); "
                             "it is not read")
        return data

    def xml(self, name: str) -> Any:
        """Parse a member as XML: one that declares entities is refused; no entity expansion, no DTD, no network, no
        huge trees either way."""
        etree, _ = _lxml()
        data = self.read(name)
        if b"<!ENTITY" in data:
            raise InputError(f"{self.name}: {name} declares XML entities (<!ENTITY>), which no EPUB needs and XXE attacks use; "
                             "it is not read")
        parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, remove_pis=True)
        try:
            return etree.fromstring(data, parser)
        except etree.XMLSyntaxError as err:
            raise InputError(f"{self.name}: {name} is not well-formed XML ({err.msg}); the EPUB is damaged") from None

    def html(self, name: str) -> Any:
        """Parse a content document with lxml's HTML parser (it loads no DTD and nothing from outside)."""
        etree, html = _lxml()
        data = self.read(name)
        parser = html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False)
        try:
            return html.document_fromstring(data, parser=parser)
        except (etree.ParserError, ValueError) as err:
            raise InputError(f"{self.name}: {name} is not readable (X)HTML ({err}); the EPUB is damaged") from None


def _read_epub(path: Path, limits: EpubLimits) -> Book:
    epub = _Epub(path, limits)
    with epub.zip:
        epub.refuse_drm()
        container = epub.xml("META-INF/container.xml")
        rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile" and e.get("full-path")), None)
        if not rootfile:
            raise InputError(f"{path.name} is not a valid EPUB: META-INF/container.xml names no package document")
        opf = epub.xml(rootfile)
        base = posixpath.dirname(rootfile)
        manifest = {item.get("id"): item for item in opf.iterfind(".//opf:manifest/opf:item", _OPF_NS)}
        book = Book(title=_dc(opf, "title") or path.stem, author=_dc(opf, "creator"), language=_dc(opf, "language"))
        _epub_cover(epub, opf, manifest, base, book)
        titles = _epub_toc(epub, opf, manifest, base)
        guide = {_join(base, r.get("href", "")).partition("#")[0]: r.get("type", "")
                 for r in opf.iterfind(".//opf:guide/opf:reference", _OPF_NS)}
        spine = opf.find(".//opf:spine", _OPF_NS)
        if spine is None:
            raise InputError(f"{path.name} is not a valid EPUB: its package document has no spine")
        _epub_chapters(epub, spine, manifest, base, titles, guide, book)
    return book


def _epub_chapters(epub: _Epub, spine: Any, manifest: dict, base: str, titles: dict[str, str], guide: dict[str, str],
                   book: Book) -> None:
    current: Optional[Chapter] = None
    for ref in spine.iterfind("opf:itemref", _OPF_NS):
        item = manifest.get(ref.get("idref"))
        if item is None or "html" not in (item.get("media-type") or ""):
            continue
        name = _join(base, item.get("href", ""))
        if ref.get("linear") == "no":
            book.skipped.append(Skipped(titles.get(name, name), name, "marked non-linear in the spine"))
            continue
        root = epub.html(name)
        kind = _epub_type(root) or guide.get(name, "")
        title = titles.get(name) or (None if titles and current else _document_title(root, book, current))
        if kind in FRONT_TYPES:
            book.skipped.append(Skipped(title or name, name, f"front or back matter (epub:type {kind})"))
            continue
        paragraphs = html_paragraphs(root)
        if title is None and current is not None:  # a document the contents do not name continues the chapter before it
            current = dataclasses.replace(current, paragraphs=current.paragraphs + tuple(paragraphs))
            continue
        if paragraphs and title and clean(paragraphs[0]).lower() == clean(title).lower():
            paragraphs = paragraphs[1:]  # the heading is the title, spoken once as such
        if current is not None:
            book.chapters.append(current)
        # no title of its own: one for the chapter marks, never spoken
        current = Chapter(title or f"Chapter {len(book.chapters) + 1}", tuple(paragraphs), name, titled=title is not None)
    if current is not None:
        book.chapters.append(current)


def _document_title(root: Any, book: Book, current: Optional[Chapter]) -> Optional[str]:
    """A document's title where no table of contents names it: its first heading, else its ``<title>`` (then the
    front-matter rule sees a "Copyright" page, read as "Chapter 1" before) unless that is the book's title or the
    chapter's before it (one chapter split over files); ``None``: it has none."""
    heading = _first_heading(root)
    if heading:
        return heading
    found = root.find(".//head/title")
    title = clean(found.text_content()) if found is not None else ""
    return title if title and title not in (book.title, current.title if current else "") else None


def html_paragraphs(root: Any) -> list[str]:
    """The readable text of an (X)HTML tree as paragraphs: block elements end a paragraph;
    scripts, styles, images, navigation and footnote references are not read."""
    body = root.find(".//body")
    text = _Paragraphs()
    text.walk(body if body is not None else root)
    text.flush()
    return text.out


class _Paragraphs:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.current: list[str] = []

    def flush(self) -> None:
        text = clean("".join(self.current))
        if text:
            self.out.append(text)
        self.current.clear()

    def walk(self, element: Any) -> None:
        tag = _local(element.tag)
        if tag in _UNREAD or _noteref(element):
            self.current.append(element.tail or "")
            return
        block = tag in _BLOCKS
        if block:
            self.flush()
        if element.text and tag:
            self.current.append(element.text)
        for child in element:
            self.walk(child)
        if block:
            self.flush()
        self.current.append(element.tail or "")


def _noteref(element: Any) -> bool:
    """A footnote reference (a superscript number a listener need not hear)."""
    return "noteref" in (element.get(f"{{{_EPUB_NS}}}type") or element.get("epub:type") or "").split()


def _first_heading(root: Any) -> Optional[str]:
    for tag in ("h1", "h2", "h3"):
        found = root.find(f".//{tag}")
        if found is not None:
            text = clean(found.text_content())
            if text:
                return text
    return None


def _epub_type(root: Any) -> str:
    for element in (root.find(".//body"), root.find(".//body/section")):
        if element is not None:
            for key in (f"{{{_EPUB_NS}}}type", "epub:type"):
                value = element.get(key)
                if value:
                    return value.split()[0].lower()
    return ""


def _epub_toc(epub: _Epub, opf: Any, manifest: dict, base: str) -> dict[str, str]:
    """Document -> its first title in the table of contents (EPUB 3 nav, else the NCX)."""
    titles: dict[str, str] = {}
    nav = next((i for i in manifest.values() if "nav" in (i.get("properties") or "").split()), None)
    if nav is not None:
        name = _join(base, nav.get("href", ""))
        root = epub.html(name)
        toc = next((n for n in root.iter("nav") if (n.get(f"{{{_EPUB_NS}}}type") or n.get("epub:type") or "") == "toc"), None)
        for link in (toc if toc is not None else root).iter("a"):
            href, text = link.get("href"), clean(link.text_content())
            if href and text:
                titles.setdefault(_join(posixpath.dirname(name), href).partition("#")[0], text)
        if titles:
            return titles
    spine = opf.find(".//opf:spine", _OPF_NS)
    ncx = manifest.get(spine.get("toc")) if spine is not None else None
    if ncx is None:
        return titles
    name = _join(base, ncx.get("href", ""))
    root = epub.xml(name)
    for point in root.iter():
        if _local(point.tag) != "navPoint":
            continue
        label = next((clean("".join(t.itertext())) for t in point.iter() if _local(t.tag) == "text"), "")
        content = next((c.get("src") for c in point if _local(c.tag) == "content"), None)
        if content and label:
            titles.setdefault(_join(posixpath.dirname(name), content).partition("#")[0], label)
    return titles


def _epub_cover(epub: _Epub, opf: Any, manifest: dict, base: str, book: Book) -> None:
    item = next((i for i in manifest.values() if "cover-image" in (i.get("properties") or "").split()), None)
    if item is None:
        meta = next((m.get("content") for m in opf.iterfind(".//opf:metadata/opf:meta", _OPF_NS) if m.get("name") == "cover"), None)
        item = manifest.get(meta) if meta else None
    if item is None:
        return
    name = _join(base, item.get("href", ""))
    data = epub.read(name) if name in epub.names else b""
    kind = next((kind for kind, magic in _COVERS.items() if data.startswith(magic)), "") if data else ""
    if not kind:
        why = "is not a PNG or JPEG image" if data else "is not in it"
        log.warning("%s: its cover %s %s; the book is made without a cover", epub.name, name, why)
        return
    book.cover, book.cover_type = data, kind


def _dc(opf: Any, name: str) -> str:
    found = opf.find(f".//opf:metadata/dc:{name}", _OPF_NS)
    return clean("".join(found.itertext())) if found is not None else ""


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href))) if href else ""


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
