"""An append-only JSON Lines file in the folder of takes: one entry per line, each written and fsynced as
one write; a torn last line (a crash mid-write) is dropped on reading. Verdicts (:mod:`.verify`) and
Piper's word timings (:mod:`.timings`) are kept this way, per take file."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from demod_voice.paths import os_error
from demod_voice.resume import whole_lines


class JsonLines:
    """The entries of ``folder/name`` as read at start (:attr:`read`), and appending one more (:meth:`append`)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / name
        self.read: list[dict] = []
        lines, torn_at = whole_lines(self.path, str(self.path))
        if torn_at is not None:
            with contextlib.suppress(OSError):
                os.truncate(self.path, torn_at)
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    self.read.append(entry)
        self._handle: Any = None

    def append(self, entry: dict, what: str) -> None:
        """Write ``entry`` as one line and fsync it (``what``: how an error names it)."""
        try:
            if self._handle is None:
                self._handle = open(self.path, "a", encoding="utf-8")  # closed in close()
            self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise os_error(f"cannot record {what} in {self.path}", err) from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
