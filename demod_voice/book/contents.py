"""What a book is once read: its chapters of paragraphs, what was left out and why, and the caps on reading an EPUB
(:mod:`.read` reads text and Markdown, :mod:`.epub` EPUB)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

FRONT_MATTER = re.compile(
    r"^\s*(cover|title\s*page|half\s*title|copyright( page)?|(table of )?contents|toc|dedication|epigraph|"
    r"acknowledge?ments?|colophon|imprint|index|also by.*|about the publisher|other books.*|praise for.*)\s*$",
    re.IGNORECASE)
"""Chapter titles taken for front or back matter."""
FRONT_TYPES = {"cover", "titlepage", "halftitlepage", "copyright-page", "toc", "dedication", "acknowledgments",
               "colophon", "imprint", "index", "landmarks", "loi", "lot", "frontmatter-toc", "other-credits"}
"""EPUB structural types (``epub:type`` on the body or section, or the guide's ``type``) of front and back matter."""

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
    part: bool = False
    """Its contents entry has entries under it (EPUB): a part, kept and its title read with no words of its own."""

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


def clean(text: str) -> str:
    """White space folded to single spaces; soft hyphens and zero-width characters removed."""
    return " ".join(text.replace("\u00ad", "").replace("\u200b", "").replace("\ufeff", "").split())
