"""The page's own temporary folder: Gradio's uploads and cache (people's recordings) and the downloads the page makes.

Left to itself Gradio keeps them in ``$TMPDIR/gradio`` (or ``$GRADIO_TEMP_DIR``), in folders any local user can
read, after the server has stopped. A server's page uses a folder of its own instead, made inside that one
(``demod-voice-page-PID-*``, mode 0700), and removes it when it stops; one left by a server that was killed is removed
by the next server to start there.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

PREFIX = "demod-voice-page-"

_folder: Optional[Path] = None
_base: Optional[str] = None


def folder() -> Path:
    """This process's page folder, made (and handed to Gradio through ``GRADIO_TEMP_DIR``) on first use."""
    global _folder, _base
    if _folder is not None and _folder.is_dir():
        return _folder
    if _base is None:
        _base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    base = Path(_base)
    base.mkdir(parents=True, exist_ok=True)
    sweep(base)
    _folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    os.environ["GRADIO_TEMP_DIR"] = str(_folder)
    atexit.register(remove)
    return _folder


KEEP_SECONDS = 3600.0
"""How long a file of the page's (an upload, a download) is kept, as Gradio's own clean-up (``delete_cache``, which runs every
ten minutes) keeps it; :func:`used_bytes` removes what is older as it measures, so that a full page has room again at once."""
KEPT = frozenset({"vibe_edit_history"})
"""Gradio's own entries of the folder, never removed while the server runs."""


def used_bytes(keep: float = KEEP_SECONDS, at: Optional[float] = None) -> int:
    """The disk space the page's folder takes, once its entries older than ``keep`` seconds are removed (blocks, not
    sizes: a thousand files of a byte take a thousand blocks)."""
    root = folder()
    at = time.time() if at is None else at
    used = 0
    for entry in root.iterdir():
        try:
            if entry.name not in KEPT and at - entry.lstat().st_mtime > keep:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                continue
        except OSError:
            continue
        used += _blocks(entry)
    return used


def _blocks(entry: Path) -> int:
    """Bytes of disk ``entry`` (a file or a folder and what it holds) takes."""
    total = 0
    try:
        total += entry.lstat().st_blocks * 512
        if not entry.is_dir() or entry.is_symlink():
            return total
        for parent, folders, files in os.walk(entry):
            for name in (*folders, *files):
                total += os.lstat(os.path.join(parent, name)).st_blocks * 512
    except OSError:
        pass
    return total


def remove() -> None:
    """Remove this process's page folder and everything in it (the server is stopping)."""
    if _folder is not None:
        shutil.rmtree(_folder, ignore_errors=True)


def sweep(base: Path) -> None:
    """Remove the page folders in ``base`` of this user's servers that are no longer running."""
    for old in base.glob(f"{PREFIX}*"):
        pid = old.name[len(PREFIX):].partition("-")[0]
        try:
            if not pid.isdigit() or old.stat().st_uid != os.getuid() or _running(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(old, ignore_errors=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
