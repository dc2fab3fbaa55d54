"""Word timings that the voice itself gave with a take (Piper: from the durations its graph outputs,
:mod:`demod_voice.backends.piper.timing`), kept per take file in ``timings.jsonl`` beside the takes.

A take's job value carries ``words`` ([start, end, word], seconds into the take's file, the words of
the text the voice was given) when the backend knows them. They are recorded with the take file's
size, so a rerun that reuses the take still has them, and a take set aside and put back by
verification finds its own again. Captions prefer these over the recogniser's (``--verify``): they
are where the voice put each word, not where a recogniser heard it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional

from demod_voice.book.ledger import JsonLines

TIMINGS = "timings.jsonl"

Words = tuple[tuple[float, float, str], ...]


def value_words(value: Any) -> Words:
    """The ``words`` of a job's value as (start, end, word); ``()`` when it has none."""
    out = []
    items = value.get("words") if isinstance(value, dict) else None
    for item in items or ():
        with contextlib.suppress(TypeError, ValueError, IndexError):
            out.append((float(item[0]), float(item[1]), str(item[2])))
    return tuple(out)


class Timings:
    """Word timings by take key and take file size."""

    def __init__(self, folder: Path) -> None:
        self.lines = JsonLines(folder, TIMINGS)
        self.entries: dict[tuple[str, int], Words] = {}
        for entry in self.lines.read:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.entries[(str(entry["key"]), int(entry["size"]))] = value_words(entry)

    def words(self, key: str, path: Path) -> Words:
        """The voice's word timings for the take file at ``path`` as it is now; ``()`` if none were recorded."""
        try:
            size = path.stat().st_size
        except OSError:
            return ()
        return self.entries.get((key, size), ())

    def record(self, key: str, path: Path, value: Optional[dict]) -> None:
        """Keep the word timings of a take just made (nothing when its value has none)."""
        words = value_words(value)
        if not words:
            return
        size = path.stat().st_size
        self.lines.append({"key": key, "size": size, "timing": str((value or {}).get("timing", "")),
                           "words": [list(w) for w in words]}, "word timings")
        self.entries[(key, size)] = words

    def close(self) -> None:
        self.lines.close()
