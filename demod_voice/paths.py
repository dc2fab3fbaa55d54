"""Checking where outputs may go, before any work starts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demod_voice.errors import InputError


def check_output_path(path: Path) -> Path:
    """Return ``path`` made absolute if a file can be created there; else raise :class:`InputError`.

    Checked up front so that a typo in the directory fails in milliseconds, not after a model load.
    """
    path = path.expanduser().absolute()
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name such as {path / 'speech.wav'}")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist; create it first (mkdir -p {parent})")
    if not can_create_in(parent):
        raise InputError(f"output directory {parent} is not writable; choose another --output")
    return path


def can_create_in(directory: Path) -> bool:
    """Try it: permission bits say nothing for root, read-only mounts or full quotas."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".demod-voice-probe.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def confined_output(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root``; else :class:`InputError`.

    Refused: absolute paths, ``..`` components, and any existing symlink on the way (a link
    inside the output directory could point anywhere).
    """
    text = relative.strip()
    if not text:
        raise InputError("the output is empty")
    path = Path(text)
    if path.is_absolute():
        raise InputError(f"output '{text}' is an absolute path; give a path relative to the output directory")
    if ".." in path.parts:
        raise InputError(f"output '{text}' climbs out of the output directory with '..'")
    target = root / path
    node = root
    for part in path.parts:
        node = node / part
        if node.is_symlink():
            raise InputError(f"output '{text}' goes through the symbolic link {node}; outputs may not follow links")
    if not target.resolve().is_relative_to(root.resolve()):
        raise InputError(f"output '{text}' resolves outside the output directory")
    return target


def temp_beside(target: Path) -> Path:
    """A new empty hidden file in ``target``'s folder (same filesystem, so a rename is atomic)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on any failure it is removed.

    Every file this program writes goes through here (or through :class:`audio.FileSink`), so no
    reader ever sees half a file.
    """
    tmp = temp_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
