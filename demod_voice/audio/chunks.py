"""Audio as it flows from a backend: chunks of float samples, and the one int16 conversion."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class AudioChunk:
    """A piece of mono audio as produced by a backend."""

    samples: Any
    """float32 numpy array in [-1, 1], mono."""
    sample_rate: int
    """Samples per second."""


def to_int16(samples: Any) -> Any:
    """float32 [-1, 1] -> little-endian int16 array, clipped; the one conversion every output uses."""
    import numpy as np

    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")


def silence(seconds: float, rate: int) -> AudioChunk:
    """``seconds`` of silence at ``rate``."""
    import numpy as np

    return AudioChunk(np.zeros(int(round(seconds * rate)), dtype=np.float32), rate)


def with_pauses(sentences: Iterable[Iterable[AudioChunk]], seconds: float, rate: int) -> Iterator[AudioChunk]:
    """Each sentence's chunks in turn, with ``seconds`` of silence between sentences (none before the first)."""
    pause = silence(seconds, rate)
    for index, chunks in enumerate(sentences):
        if index and len(pause.samples):
            yield AudioChunk(pause.samples, rate)
        yield from chunks


