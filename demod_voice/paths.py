"""Checking where outputs may go, before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


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
