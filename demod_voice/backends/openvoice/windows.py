"""Long sources in windows: the source cut into overlapping windows (memory stays that of two
windows), each converted alone, and their outputs joined with a cross-fade in the middle of each
overlap, where both windows are furthest from their own edges. Pure numpy: no engine here.

Positions are in output samples. A window of ``n`` source samples starting at ``s`` gives
``n - lost`` output samples covering ``[s, s + n - lost)`` (the converter's spectrogram is not
centred: it loses ``n_fft - hop`` samples at the end, the same for a whole clip).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """Window and overlap lengths in samples, multiples of the hop so every window's frames line up with a whole clip's."""

    window: int
    """Samples per window."""
    overlap: int
    """Samples consecutive windows share."""

    @property
    def step(self) -> int:
        """From one window's start to the next's."""
        return self.window - self.overlap


def plan(window_seconds: float, overlap_seconds: float, rate: int, hop: int, lost: int) -> Plan:
    """Window and overlap in whole hops; the overlap is at least twice what a window loses and at most half a window."""
    window = max(4 * hop, round(window_seconds * rate / hop) * hop)
    overlap = round(overlap_seconds * rate / hop) * hop
    overlap = min(max(overlap, 2 * lost + 2 * hop), (window // 2) // hop * hop)
    return Plan(window, overlap)


def windows(blocks: Iterator[Any], layout: Plan) -> Iterator[tuple[int, Any]]:
    """``(start, samples)`` of each window, from an iterator of float32 blocks (any sizes).

    Only the current window is held. The last window is whatever follows the previous one's
    start plus a step (it may be shorter than a window); a source that fits one window is one window.
    """
    import numpy as np

    buffer = np.zeros(0, dtype=np.float32)
    start = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= layout.window + 1:  # one sample more: a window that ends the source is the last one
            yield start, buffer[: layout.window]
            buffer = buffer[layout.step:]
            start += layout.step
    if len(buffer) or start == 0:
        yield start, buffer


def join(converted: Iterator[tuple[int, Any]]) -> Iterator[Any]:
    """The converted windows ``(start, output)`` as one continuous signal, yielded piece by piece.

    Where two outputs overlap, the first is kept up to the middle half of the overlap, the second
    from its end, and in between the two are cross-faded linearly.
    """
    import numpy as np

    carry = None
    emitted = 0
    for start, output in converted:
        if carry is None:
            carry = (start, output)
            continue
        before, previous = carry
        overlap_end = before + len(previous)
        if overlap_end <= start:  # no overlap (cannot happen with a plan; kept safe): butt-join
            yield previous[emitted - before:]
            emitted = overlap_end
            if start > emitted:
                yield np.zeros(start - emitted, dtype=np.float32)
                emitted = start
            carry = (start, output)
            continue
        fade = (overlap_end - start) // 2
        fade_start = start + (overlap_end - start - fade) // 2
        yield previous[emitted - before: fade_start - before]
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32) + np.float32(0.5 / max(fade, 1))
        yield previous[fade_start - before: fade_start - before + fade] * (1 - ramp) + output[fade_start - start: fade_start - start + fade] * ramp
        emitted = fade_start + fade
        carry = (start, output)
    if carry is not None:
        yield carry[1][emitted - carry[0]:]
