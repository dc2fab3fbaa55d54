"""EPUB books: the spine gives the reading order and the table of contents the chapters and their titles (rules in
:mod:`.read`). An EPUB is a zip of XML from anywhere: its caps are checked before anything is inflated, XML that declares
entities is refused, a DRM-protected EPUB is refused, and content documents go through lxml's HTML parser, which loads
nothing from outside."""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote

from demod_voice.book.contents import FRONT_TYPES, Book, Chapter, EpubLimits, Skipped, clean
from demod_voice.errors import DependencyError, InputError

log = logging.getLogger(__name__)

_COVERS = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
"""The cover images an m4b holds, by their first bytes (a manifest's media type can be wrong)."""
_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "section", "article", "tr", "br",
           "dt", "dd", "figcaption", "pre", "hr", "aside", "header", "footer"}
_INVISIBLE = "\u00ad\u200b\ufeff"
"""What :func:`~demod_voice.book.contents.clean` removes besides white space."""
_CELLS = {"td", "th"}
"""A table's cells: a row is one paragraph, its cells said one after another with a comma between them (each cell was a
paragraph of its own, "Ann" and "31" a paragraph pause apart); what a cell holds in paragraphs is run on."""
_UNREAD = {"script", "style", "head", "title", "svg", "math", "object", "iframe", "nav", "img", "audio", "video"}
_EPUB_NS = "http://www.idpf.org/2007/ops"
_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
"""``encryption.xml``'s other use, font obfuscation (IDPF, Adobe): fonts mangled against copying, the text left as it is;
such an EPUB is read. Any other method (AES: Adobe ADEPT, Readium LCP, store DRM) makes a member ciphertext."""
_OPF_NS = {"opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}


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
        """Parse a content document with lxml's HTML parser (it loads no DTD and nothing from outside); :class:`_NotText`
        for binary data in its place."""
        etree, html = _lxml()
        data = self.read(name)
        if b"\0" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff", b"<\0", b"\0<")):  # UTF-16 holds NULs
            raise _NotText(f"{self.name}: {name} is not text (binary data, such as an image, where a page should be); the "
                           "EPUB is damaged")
        encoding = _xhtml_encoding(data)
        if encoding not in (None, "utf-8"):  # Python's codecs, not libxml2's: it knows no "cp437" or "mac-roman"
            data, encoding = data.decode(encoding, "replace").encode("utf-8"), "utf-8"
        parser = html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False, encoding=encoding)
        try:
            return html.document_fromstring(data, parser=parser)
        except (etree.ParserError, ValueError) as err:
            raise InputError(f"{self.name}: {name} is not readable (X)HTML ({err}); the EPUB is damaged") from None


class _NotText(InputError):
    """A content document that is binary data (an image or a font listed as a page): the parser read its bytes as
    Latin-1 letters, and a book spoke a chapter of them."""


def _xhtml_encoding(data: bytes) -> Optional[str]:
    """The encoding of a content document: an XML document without a byte order mark or an encoding declaration is
    UTF-8 (as EPUB's XHTML must be); lxml's HTML parser took it for Latin-1, and "Été" was read as "Ã‰tÃ©" (a heading
    so garbled no longer matched its title, and was read twice). ``None``: a BOM or a declaration says, or the bytes are
    no UTF-8 (the parser's own guess, as before). Bytes that are no UTF-8 are read in the encoding their declaration
    names ("windows-1252", "shift_jis"): the HTML parser reads no XML declaration, and each accented letter and curly
    quote was a replacement character."""
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None
    declared = re.match(rb"\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)", data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return _declared(declared.group(1).decode("ascii")) if declared else None
    return None if re.match(rb"\s*<\?xml[^>]*encoding", data) else "utf-8"


def _declared(name: str) -> Optional[str]:
    """``name`` when Python knows it as an encoding, but not UTF-16 or UTF-32 (the parser tells those by their bytes), else
    ``None``."""
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    return None if codec.name.startswith(("utf-16", "utf-32")) else name


def read_epub(path: Path, limits: EpubLimits) -> Book:
    epub = _Epub(path, limits)
    with epub.zip:
        epub.refuse_drm()
        if "META-INF/container.xml" not in epub.names:  # said "it names 'META-INF/container.xml', which it does not hold"
            raise InputError(f"{path.name} is not a valid EPUB: it has no META-INF/container.xml (a zip of pages is not an "
                             "EPUB); convert it with an EPUB editor such as Calibre, or give the text as .txt or .md")
        container = epub.xml("META-INF/container.xml")
        rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile" and e.get("full-path")), None)
        if not rootfile:
            raise InputError(f"{path.name} is not a valid EPUB: META-INF/container.xml names no package document")
        opf = epub.xml(rootfile)
        base = posixpath.dirname(rootfile)
        manifest = {item.get("id"): item for item in opf.iterfind(".//opf:manifest/opf:item", _OPF_NS)}
        book = Book(title=_dc(opf, "title") or path.stem, author=_dc(opf, "creator"), language=_dc(opf, "language"))
        _epub_cover(epub, opf, manifest, base, book)
        toc = _epub_toc(epub, opf, manifest, base)
        guide = {_join(base, r.get("href", "")).partition("#")[0]: r.get("type", "")
                 for r in opf.iterfind(".//opf:guide/opf:reference", _OPF_NS)}
        spine = opf.find(".//opf:spine", _OPF_NS)
        if spine is None:
            raise InputError(f"{path.name} is not a valid EPUB: its package document has no spine")
        _epub_chapters(epub, spine, manifest, base, _naming_pages(toc, spine, manifest, base, path.name), guide, book)
    return book


def _naming_pages(toc: _Contents, spine: Any, manifest: dict, base: str, name: str) -> _Contents:
    """The contents, unless they name none of the spine's pages (links to another folder, as a converter left them): then
    none, and each page is titled by its own heading. Every page continued the chapter before it (the contents name
    them all), and a whole book was one chapter, its chapters' headings read as paragraphs."""
    pages = {_join(base, item.get("href", "")) for item in (manifest.get(ref.get("idref")) for ref in spine.iterfind("opf:itemref", _OPF_NS))
             if item is not None}
    if not toc.titles or not pages.isdisjoint(toc.titles):
        return toc
    log.warning("%s: its table of contents names none of its pages; each page's own heading is taken as its chapter's title", name)
    return _Contents()


def _epub_chapters(epub: _Epub, spine: Any, manifest: dict, base: str, toc: _Contents, guide: dict[str, str],
                   book: Book) -> None:
    current: Optional[Chapter] = None
    for ref in spine.iterfind("opf:itemref", _OPF_NS):
        item = manifest.get(ref.get("idref"))
        if item is None or "html" not in (item.get("media-type") or ""):
            continue
        name = _join(base, item.get("href", ""))
        named = toc.titles.get(name, [])
        if ref.get("linear") == "no":
            book.skipped.append(Skipped(named[0] if named else name, name, "marked non-linear in the spine"))
            continue
        try:
            root = epub.html(name)
        except _NotText:
            book.skipped.append(Skipped(named[0] if named else name, name, "not text (binary data, such as an image)"))
            continue
        kind = _epub_type(root) or guide.get(name, "")
        title = named[0] if named else (None if toc.titles and current else _document_title(root, book, current))
        if kind in FRONT_TYPES:
            book.skipped.append(Skipped(title or name, name, f"front or back matter (epub:type {kind})"))
            continue
        (paragraphs, _), *later = _parts(root, toc.sections.get(name, {}))
        if title is None and current is not None:  # a document the contents do not name continues the chapter before it
            current = dataclasses.replace(current, paragraphs=current.paragraphs + tuple(paragraphs))
        else:
            if current is not None:
                book.chapters.append(current)
            *whole, current = _titled(named or [title], paragraphs, name, len(book.chapters), toc.parts)
            book.chapters.extend(whole)
        for part, (part_title, anchor) in later:  # the contents name a place inside the document: a chapter starts there
            book.chapters.append(current)
            source = f"{name}#{anchor}"
            current = _chapter(part_title, part, source, len(book.chapters), (source, part_title) in toc.parts)
    if current is not None:
        book.chapters.append(current)


def _titled(titles: list[Optional[str]], paragraphs: list[str], source: str, before: int, parts: set[tuple[str, str]]) -> list[Chapter]:
    """A document's chapters by the titles of the contents entries that name it whole: one, or a part and its first
    chapter ("Part I" > "Chapter One", both ``part1.xhtml``), cut where the later title's heading is, else (under a
    part) right after the part's. The part's title was the chapter's: the chapter's own was read as a paragraph and
    marked nowhere. Flat contents that name a document again without its heading ("Chapter 1", then "Begin Reading")
    leave it one chapter under the first title."""
    if len(titles) == 1:
        return [_chapter(titles[0], paragraphs, source, before, (source, titles[0]) in parts)]
    headings = _Headings(titles, paragraphs)
    chapters = []
    begin = 0
    for number, title in enumerate(titles):
        part = (source, title) in parts  # entries nested under it: its chapter's heading may be left out of the page
        lines = headings.lines(title, begin)
        cut = len(paragraphs)
        if number + 1 < len(titles):
            found = headings.first(titles[number + 1], begin + lines)
            if found is None and not part:
                return [*chapters, _chapter(title, paragraphs[begin:], source, before + number, part, lines)]
            cut = begin + lines if found is None else found
        chapters.append(_chapter(title, paragraphs[begin:cut], source, before + number, part, lines))
        begin = cut
    return chapters


def _chapter(title: Optional[str], paragraphs: list[str], source: str, before: int, part: bool = False,
             heading: Optional[int] = None) -> Chapter:
    """``heading``: how many of the first paragraphs are the title (``None``: found here)."""
    heading = _heading_paragraphs(title, paragraphs) if heading is None else heading
    paragraphs = paragraphs[heading:]  # the heading is the title, spoken once as such
    # no title of its own: one for the chapter marks, never spoken
    return Chapter(title or f"Chapter {before + 1}", tuple(paragraphs), source, titled=title is not None, part=part)


_HEADING_LINES = 3
"""Paragraphs a heading may be written over."""


def _heading_paragraphs(title: Optional[str], paragraphs: list[str]) -> int:
    """How many leading paragraphs are the title over again: by their letters and digits, so a heading written over
    lines ("Chapter 1<br/>The Storm") or punctuated otherwise than the contents ("1 The Storm" for "1. The Storm") is
    the title too; it was read after it."""
    return _heading_lines(_letters(title or ""), (_letters(p) for p in paragraphs[:_HEADING_LINES]))


def _heading_lines(wanted: str, lines: Iterable[str]) -> int:
    """How many of ``lines`` (paragraphs as their letters) spell ``wanted`` from the first: 0 for none."""
    if not wanted:
        return 0
    seen = ""
    for count, line in enumerate(lines, 1):
        seen += line
        if not wanted.startswith(seen):
            return 0
        if seen == wanted:
            return count
    return 0


class _Headings:
    """Where a document's titles are written as headings, its paragraphs' letters worked out once: the next title's
    heading is then a look-up. It was looked for paragraph by paragraph from each title's place, which took time growing
    with titles x paragraphs: a document of parts whose chapters' headings only the contents hold was searched whole
    for each chapter's."""

    def __init__(self, titles: list[Optional[str]], paragraphs: list[str]) -> None:
        self.letters = [_letters(p) for p in paragraphs]
        wanted = {_letters(t or "") for t in titles} - {""}
        longest = max(map(len, wanted), default=0)
        self.places: dict[str, list[int]] = {}
        """A title's letters -> the paragraphs its heading starts at, in order."""
        for at in range(len(paragraphs)):
            seen = ""
            for line in self.letters[at:at + _HEADING_LINES]:
                seen += line
                if len(seen) > longest:
                    break
                if seen in wanted:
                    places = self.places.setdefault(seen, [])
                    if not places or places[-1] != at:  # once per place, though an empty line spells it again
                        places.append(at)

    def lines(self, title: Optional[str], at: int) -> int:
        """How many paragraphs from ``at`` are ``title``'s heading (0: it is not there)."""
        return _heading_lines(_letters(title or ""), self.letters[at:at + _HEADING_LINES])

    def first(self, title: Optional[str], start: int) -> Optional[int]:
        """The first paragraph from ``start`` on that ``title``'s heading starts at."""
        places = self.places.get(_letters(title or ""), [])
        found = bisect.bisect_left(places, start)
        return places[found] if found < len(places) else None


def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


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
    return _parts(root, {})[0][0]


def _parts(root: Any, anchors: dict[str, str]) -> list[tuple[list[str], tuple[str, str]]]:
    """A document's paragraphs cut where the elements with the ids of ``anchors`` (id -> title) begin: the first part,
    then each part with its (title, id). A book in one document, its chapters named by the contents as
    ``book.xhtml#c2``, was one chapter with one mark."""
    body = root.find(".//body")
    text = _Paragraphs(dict(anchors))
    text.walk(body if body is not None else root)
    text.flush()
    cuts = [(0, ("", ""))] + text.cuts + [(len(text.out), ("", ""))]
    return [(text.out[start:end], mark) for (start, mark), (end, _) in zip(cuts, cuts[1:], strict=False)]


class _Paragraphs:
    def __init__(self, anchors: Optional[dict[str, str]] = None) -> None:
        self.out: list[str] = []
        self.current: list[str] = []
        self.anchors = anchors or {}
        self.cuts: list[tuple[int, tuple[str, str]]] = []
        """Where a part starts: (its first paragraph's index, (its title, its anchor))."""
        self.cells = 0
        """How deep in table cells the walk is: inside one, a block element ends no paragraph."""
        self.number = ""
        """A numbered list item's number ("3. "), said before its first words."""

    def flush(self) -> None:
        text = clean("".join(self.current))
        if text:  # an item that prints its own number (a list styled without one) is not numbered twice
            self.out.append(text if not self.number or text.startswith(self.number.strip()) else self.number + text)
            self.number = ""
        self.current.clear()

    def walk(self, element: Any, number: str = "") -> None:
        """Read ``element``; ``number``: its number as printed, for an item of a numbered list ("3. ")."""
        tag = _local(element.tag)
        anchor = element.get("id")
        if anchor in self.anchors:
            self.flush()
            self.cuts.append((len(self.out), (self.anchors.pop(anchor), anchor)))
        if tag in _UNREAD or _noteref(element) or _boilerplate(element):
            self.current.append(element.tail or "")
            return
        cell = tag in _CELLS
        if cell:
            self.next_cell()
        block = tag in _BLOCKS and not self.cells
        self.edge(tag, block, number)
        if element.text and tag:
            self.current.append(element.text)
        self.cells += cell
        for child, child_number in _numbered(element, tag):
            self.walk(child, child_number)
        self.cells -= cell
        self.edge(tag, block)
        self.current.append(element.tail or "")

    def edge(self, tag: str, block: bool, number: Optional[str] = None) -> None:
        """A block element's start (with ``number``) or end: a paragraph's end, or inside a table cell a space. A numbered
        list's item starts with its number, as it is printed ("2. Drop the seed in."): the numbers were lost, and with
        them the order of a recipe's steps."""
        if block:
            self.flush()
        elif tag in _BLOCKS:
            self.current.append(" ")
        if tag == "li":
            self.number = number if block and number is not None else ""

    def next_cell(self) -> None:
        """A comma between a row's cells, where the cell before does not end in punctuation of its own."""
        last = self.trim_end()
        self.current.append(", " if last and last not in ",.;:!?" else " ")

    def trim_end(self) -> str:
        """Drop what :func:`clean` drops at the end of the paragraph so far (white space, invisible characters), and return
        its last character ("" for none). Cleaning the whole row at each cell took time growing with the square of a
        row's cells; each character is dropped here once, and a piece kept whole is not copied."""
        while self.current:
            piece = self.current[-1]
            end = len(piece)
            while end and (piece[end - 1].isspace() or piece[end - 1] in _INVISIBLE):
                end -= 1
            if end:
                if end < len(piece):
                    self.current[-1] = piece[:end]
                return piece[end - 1]
            self.current.pop()
        return ""


def _numbered(element: Any, tag: str) -> Iterator[tuple[Any, str]]:
    """``element``'s children, each with its number as printed: ``"3. "`` for the third ``<li>`` of an ``<ol>`` (counted
    from its ``start``), else "". Counting each item's earlier siblings took time growing with the square of a list's
    items (a list of 8,000 took 12 s)."""
    if tag != "ol":
        yield from ((child, "") for child in element)
        return
    try:
        count = int(element.get("start") or 1)
    except ValueError:
        count = 1
    for child in element:
        if _local(child.tag) == "li":
            yield child, f"{count}. "
            count += 1
        else:
            yield child, ""


_NOTES = {"noteref", "footnote", "footnotes", "endnote", "endnotes", "rearnote", "rearnotes", "doc-noteref", "doc-footnote",
          "doc-endnote", "doc-endnotes", "pagebreak", "doc-pagebreak"}
"""``epub:type`` and DPUB-ARIA ``role`` values of note references, of the notes themselves and of the printed book's page
numbers: none is read. A note read where it is printed ("1. A footnote body.") broke into the chapter's text, and a page
number into a sentence ("the old 212 house")."""
_NOTE_CLASSES = {"footnote", "footnotes", "endnote", "endnotes", "pagenum"}
"""Classes that mark notes and page numbers where no type does (Project Gutenberg's ``<div class="footnote">`` and
``<span class="pagenum">[Pg 12]</span>``, which was read "P g twelve" inside a sentence)."""
_NOTE_MARK = re.compile(r"[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3})[\])]?")
"""What a link to a note shows ("2", "[12]", "*", "†")."""


def _boilerplate(element: Any) -> bool:
    """Project Gutenberg's header and licence in its EPUBs (``<section class="pg-boilerplate pgfooter">``), not read, as
    in its text files: the licence was the book's last chapter, some 18,000 characters read aloud."""
    return "pg-boilerplate" in (element.get("class") or "").split() or element.get("id") in ("pg-header", "pg-footer")


def _noteref(element: Any) -> bool:
    """A footnote reference (a superscript number a listener need not hear) or a note: marked by ``epub:type`` or
    ``role``, or a link within the book whose text is a note mark alone (EPUB 2 has no types; most books mark a note
    ``<sup><a href="notes.xhtml#n2">2</a></sup>``: "the map2" was read "the map two")."""
    kinds = f"{element.get(f'{{{_EPUB_NS}}}type') or element.get('epub:type') or ''} {element.get('role') or ''}".split()
    if _NOTES.intersection(kinds) or _NOTE_CLASSES.intersection((element.get("class") or "").split()):
        return True
    href = element.get("href") or ""
    return (_local(element.tag) == "a" and "#" in href and "://" not in href
            and _NOTE_MARK.fullmatch(clean(element.text_content())) is not None)


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


@dataclasses.dataclass
class _Contents:
    """The table of contents (EPUB 3 nav, else the NCX) as the reader uses it."""

    titles: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Document -> the titles of its entries that name it whole, in order: more than one is a part and its first
    chapter in one document ("Part I" > "Chapter One", both ``part1.xhtml``)."""
    sections: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Document -> its later entries that name a place in it (id -> title), where chapters start inside it."""
    parts: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    """(href, title) of the entries with entries under them: parts (:attr:`Chapter.part`)."""


def _epub_toc(epub: _Epub, opf: Any, manifest: dict, base: str) -> _Contents:
    toc = _Contents()
    named: set[tuple[str, str]] = set()  # (document, title) already in toc.titles: a list's `in` was titles x titles
    for href, text, nested in _nav_entries(epub, manifest, base) or _ncx_entries(epub, opf, manifest, base):
        document, _, anchor = href.partition("#")
        if nested:
            toc.parts.add((href, text))
        if document not in toc.titles or (not anchor and (document, text) not in named):
            toc.titles.setdefault(document, []).append(text)
            named.add((document, text))
        elif anchor:
            toc.sections.setdefault(document, {}).setdefault(anchor, text)
    return toc


def _nav_entries(epub: _Epub, manifest: dict, base: str) -> list[tuple[str, str, bool]]:
    """The EPUB 3 nav's entries in order: (href from the package's folder, title, whether entries are nested under it)."""
    nav = next((i for i in manifest.values() if "nav" in (i.get("properties") or "").split()), None)
    if nav is None:
        return []
    name = _join(base, nav.get("href", ""))
    root = epub.html(name)
    toc = next((n for n in root.iter("nav") if (n.get(f"{{{_EPUB_NS}}}type") or n.get("epub:type") or "") == "toc"), None)
    for br in root.iter("br"):  # "Chapter 1<br/>The Storm" is "Chapter 1 The Storm", not "Chapter 1The Storm"
        br.tail = " " + (br.tail or "")
    links = ((link.get("href"), clean(link.text_content()), _nested(link)) for link in (toc if toc is not None else root).iter("a"))
    return [(_join(posixpath.dirname(name), href), text, nested) for href, text, nested in links if href and text]


def _nested(link: Any) -> bool:
    """Whether a nav link's list item holds a list of entries of its own (``<li><a>Part I</a><ol>...``)."""
    item = link.getparent()
    return item is not None and any(_local(child.tag) in ("ol", "ul") for child in item)


def _ncx_entries(epub: _Epub, opf: Any, manifest: dict, base: str) -> list[tuple[str, str, bool]]:
    """The EPUB 2 NCX's entries in order: (href from the package's folder, title, whether entries are nested under it)."""
    spine = opf.find(".//opf:spine", _OPF_NS)
    ncx = manifest.get(spine.get("toc")) if spine is not None else None
    if ncx is None:
        return []
    name = _join(base, ncx.get("href", ""))
    entries = []
    for point in epub.xml(name).iter():
        if _local(point.tag) != "navPoint":
            continue
        label = next((clean("".join(t.itertext())) for t in point.iter() if _local(t.tag) == "text"), "")
        content = next((c.get("src") for c in point if _local(c.tag) == "content"), None)
        if content and label:
            entries.append((_join(posixpath.dirname(name), content), label, any(_local(c.tag) == "navPoint" for c in point)))
    return entries


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
