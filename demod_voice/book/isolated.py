"""A book from an untrusted upload, read in a short-lived child process with memory and CPU limits.

Reading an EPUB means inflating a zip and parsing XML and HTML from anywhere: a 230 KB EPUB of
small paragraphs unpacks to 256 MB (within ``book.max_unpacked_mb``) and took a server from 250 MB
to 1.3 GB while lxml held its trees. The server therefore never parses a client's book itself:
a child does (:func:`read_isolated`), and hands back the book as read, as JSON (no pickle: what
crosses back is data), which the server keeps beside the upload (:func:`save_read`) so that the
book's job reads that instead of the upload (:func:`load_read`).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from demod_voice.book.contents import Book, Chapter, EpubLimits, Skipped
from demod_voice.book.read import read_book
from demod_voice.errors import InputError
from demod_voice.paths import write_text_atomic
from demod_voice.sandbox import confine, reader_child
from demod_voice.speech_text.prepare import text_problem

MEMORY_LIMIT = 1 << 30
"""Address space of the reading child (bytes)."""
CPU_SECONDS = 60
TIMEOUT = 90


def read_isolated(source: Path, limits: EpubLimits, max_chars: int, target: Path) -> Book:
    """Read ``source`` as :func:`~demod_voice.book.read.read_book` does, in a limited child, and save what it read at
    ``target``; :class:`InputError` with the child's one-line message, or when it passes its memory or time."""
    command = [*reader_child("from demod_voice.book.isolated import _child; _child()"), str(source), str(target),
               str(limits.max_members), str(limits.max_member_bytes), str(limits.max_total_bytes), str(max_chars)]
    too_much = (f"{source.name} could not be read within the server's limits for a book ({MEMORY_LIMIT >> 20} MB of memory, "
                f"{CPU_SECONDS} s): send a smaller or simpler file")
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        target.unlink(missing_ok=True)
        raise InputError(too_much) from None
    try:
        answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        target.unlink(missing_ok=True)
        raise InputError(too_much) from None
    if answer.get("error"):
        raise InputError(str(answer["error"]))
    return load_read(target)


def save_read(book: Book, target: Path) -> None:
    """``book`` as JSON at ``target`` (atomically)."""
    data: dict[str, Any] = asdict(book)
    data["cover"] = base64.b64encode(book.cover).decode("ascii") if book.cover else None
    write_text_atomic(target, json.dumps(data, ensure_ascii=False))


def load_read(path: Path) -> Book:
    """A book saved by :func:`save_read`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    chapters = [Chapter(c["title"], tuple(c["paragraphs"]), c["source"], bool(c.get("titled", True))) for c in data["chapters"]]
    skipped = [Skipped(s["title"], s["source"], s["reason"]) for s in data.get("skipped", [])]
    cover = base64.b64decode(data["cover"]) if data.get("cover") else None
    return Book(data["title"], data.get("author", ""), data.get("language", ""), cover, data.get("cover_type", ""), chapters, skipped)


def _child() -> None:
    """In the child: read ``argv[1]``, save it at ``argv[2]``; print one JSON line (``{}`` or ``{"error": ...}``)."""
    confine(MEMORY_LIMIT, CPU_SECONDS)
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    members, member_bytes, total_bytes, max_chars = (int(value) for value in sys.argv[3:7])
    try:
        book = read_book(source, EpubLimits(members, member_bytes, total_bytes), max_chars=max_chars)
        _check_text(book, source.name)
        save_read(book, target)
    except InputError as err:
        print(json.dumps({"error": str(err)}))
        return
    print(json.dumps({}))


def _check_text(book: Book, name: str) -> None:
    """:class:`InputError` for text no engine can take (a NUL, a lone surrogate), refused at upload rather than take by
    take once the book runs."""
    for chapter in book.chapters:
        for text in (chapter.title, *chapter.paragraphs):
            problem = text_problem(text)
            if problem:
                raise InputError(f"{name}: chapter '{chapter.title[:40]}' {problem}; save the book as plain UTF-8 text")
