"""A chapter's takes into one finished signal: each take's silence trimmed, set pauses between
takes, set silence at the chapter's edges, loudness to a target (ITU-R BS.1770, gated, through
pyloudnorm) and a true-peak ceiling held by a look-ahead limiter measured 4x oversampled.

Cue times come out of the assembly itself: a take's speech starts where it was placed, so each
caption starts and ends where its sentence's audio does (within the few milliseconds of margin
kept around speech).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from demod_voice.errors import DependencyError

FRAME = 0.01
"""Seconds per frame of the speech detector."""
FLOOR_DB = -50.0
"""Frames quieter than this (dBFS RMS), or more than :data:`RANGE_DB` under the take's loudest frame, are silence."""
RANGE_DB = 40.0
MARGIN = 0.02
"""Seconds of a take's own silence kept before and after its speech."""
OVERSAMPLE = 4
BLOCK = 1 << 20
"""Samples mastered at a time (under a minute at 22.05 kHz): the working memory of mastering a chapter of any length."""
FILTER_REACH = 64
"""Input samples on either side that one oversampled sample depends on (scipy's default filter spans 10)."""


LOUDNESS = (-40.0, -5.0)
"""The loudness targets a book may ask for, LUFS (louder than -5 cannot stay under a true-peak ceiling)."""
TRUE_PEAK = (-12.0, 0.0)
"""The true-peak ceilings a book may ask for, dBTP."""
SECONDS = (0.0, 10.0)
"""The silences and pauses a book may ask for, seconds."""


@dataclass(frozen=True)
class MasterSettings:
    """How chapters are finished."""

    loudness: float = -18.0
    """Integrated loudness target, LUFS."""
    true_peak: float = -1.0
    """True-peak ceiling, dBTP."""
    lead_silence: float = 0.5
    """Seconds of silence before a chapter's first words."""
    tail_silence: float = 1.0
    """Seconds of silence after its last words."""
    headroom: float = 0.0
    """Extra dB kept under the ceiling (lossy codecs overshoot the peaks they are given)."""


@dataclass(frozen=True)
class Cue:
    """Where one take's speech lies in its chapter, in seconds."""

    take: int
    start: float
    end: float
    text: str
    offset: float = 0.0
    """Where the take's file starts in the chapter's time line (its own times plus this are the chapter's)."""
    words: tuple[tuple[float, str], ...] = ()
    """Each word of :attr:`text` with its start, where known (:func:`demod_voice.book.captions.word_times`)."""

    def shifted(self, seconds: float) -> Cue:
        """The same cue ``seconds`` later (a chapter placed in the whole book)."""
        return Cue(self.take, self.start + seconds, self.end + seconds, self.text, self.offset + seconds,
                   tuple((at + seconds, word) for at, word in self.words))


def speech_bounds(samples: Any, rate: int) -> tuple[int, int]:
    """First and one-past-last sample of speech in ``samples`` (0, 0 when there is none)."""
    import numpy as np

    hop = max(1, int(rate * FRAME))
    frames = len(samples) // hop
    if frames == 0:
        return 0, 0
    rms = np.sqrt(np.mean(samples[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
    db = 20 * np.log10(rms)
    loud = db > max(FLOOR_DB, float(db.max()) - RANGE_DB)
    where = np.flatnonzero(loud)
    if not len(where):
        return 0, 0
    return int(where[0] * hop), int(min(len(samples), (where[-1] + 1) * hop))


def assemble(takes: list[tuple[Any, float, str]], rate: int, settings: MasterSettings) -> tuple[Any, list[Cue]]:
    """Join ``(samples, pause_after, text)`` takes into one chapter; return it and each take's cue.

    A take with no speech in it is kept whole (its silence is what a listener should hear about,
    and verification reports it)."""
    import numpy as np

    margin = int(MARGIN * rate)
    parts = [np.zeros(int(settings.lead_silence * rate), np.float32)]
    cues: list[Cue] = []
    position = len(parts[0])
    for number, (samples, pause, text) in enumerate(takes):
        samples = np.asarray(samples, np.float32)
        start, end = speech_bounds(samples, rate)
        if end > start:
            cut = samples[max(0, start - margin): min(len(samples), end + margin)]
            lead = min(margin, start)
        else:
            cut, lead = samples, 0
        speech = (end - start) if end > start else len(samples)
        skipped = max(0, start - margin) if end > start else 0
        cues.append(Cue(number, (position + lead) / rate, (position + lead + speech) / rate, text, (position - skipped) / rate))
        parts.append(cut)
        position += len(cut)
        if number < len(takes) - 1:
            gap = np.zeros(int(pause * rate), np.float32)
            parts.append(gap)
            position += len(gap)
    parts.append(np.zeros(int(settings.tail_silence * rate), np.float32))
    return np.concatenate(parts), cues


def loudness(samples: Any, rate: int) -> float:
    """Integrated loudness in LUFS (BS.1770-4, gated); ``-inf`` for silence or audio under 0.4 s.

    Measured a block at a time, as pyloudnorm's meter measures it (its K-weighting filters, carried from block to block,
    its 400 ms gating blocks every 100 ms): the meter itself took some 24 bytes per sample at once, so a chapter of a
    few hours (a book without chapter headings is one) ran out of memory after every take was made."""
    import numpy as np
    from scipy.signal import lfilter

    if len(samples) < int(0.4 * rate) + 1:
        return float("-inf")
    stages = [(f.b, f.a, f.passband_gain) for f in _k_weighting(rate)]
    states = [np.zeros(max(len(a), len(b)) - 1) for b, a, _ in stages]
    edges = [int(0.4 * (k * 0.25) * rate) for k in range(len(samples) * 10 // rate + 5)]  # 100 ms segments, as the meter cuts them
    energy = np.zeros(len(edges) - 1)
    per_chunk = max(1, BLOCK * 10 // rate)  # segments at a time
    for first in range(0, len(edges) - 1, per_chunk):
        last = min(first + per_chunk, len(edges) - 1)
        part = np.asarray(samples[edges[first]: edges[last]], np.float64)
        for n, (b, a, gain) in enumerate(stages):
            part, states[n] = lfilter(b, a, part, zi=states[n])
            part = part * gain
        bounds = np.asarray(edges[first: last + 1]) - edges[first]
        squares = np.concatenate([[0.0], np.cumsum(part * part)])
        energy[first:last] = squares[np.minimum(bounds[1:], len(part))] - squares[np.minimum(bounds[:-1], len(part))]
    blocks = int(np.round((len(samples) / rate - 0.4) / 0.1)) + 1
    z = np.convolve(energy, np.ones(4), "valid")[:blocks] / (0.4 * rate)
    with np.errstate(divide="ignore"):
        level = -0.691 + 10 * np.log10(z)
    gated = z[level >= -70.0]
    if not len(gated):
        return float("-inf")
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    kept = z[(level > relative) & (level > -70.0)]
    with np.errstate(divide="ignore"):
        return float(-0.691 + 10 * np.log10(kept.mean())) if len(kept) else float("-inf")


def _k_weighting(rate: int) -> list[Any]:
    """BS.1770's K-weighting as pyloudnorm builds it: a high shelf, then a high pass."""
    try:
        from pyloudnorm.iirfilter import IIRfilter
    except ImportError:
        raise DependencyError("loudness needs pyloudnorm; install it with: pip install 'demod-voice[book]'") from None
    import numpy as np

    return [IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"), IIRfilter(0.0, 0.5, 38.0, rate, "high_pass")]


def true_peak(samples: Any, rate: int) -> float:
    """True peak in dBTP: the signal's peak 4x oversampled (BS.1770-4 annex 2)."""
    import numpy as np

    peak = max((float(envelope.max()) for _, envelope in _envelopes(samples, 0) if len(envelope)), default=0.0)
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def true_peak_of(chunks: Iterable[Any]) -> float:
    """The true peak (dBTP) of the signal ``chunks`` make in turn (a decoder's frames), measured a block at a time as
    :func:`true_peak` measures an array: each block with the oversampling filter's reach on either side."""
    import numpy as np

    window = BLOCK + 2 * FILTER_REACH
    pieces, held, peak, start = [], 0, 0.0, 0  # joined once a block's worth is held: joining at each frame copied it all
    for chunk in chunks:
        pieces.append(np.asarray(chunk, np.float64).reshape(-1))
        held += len(pieces[-1])
        if held >= window:
            buffer = np.concatenate(pieces)
            while len(buffer) >= window:  # windows of true_peak's length: resample_poly took 8x as long on some others
                peak = max(peak, float(peak_envelope(buffer[:window])[start: window - FILTER_REACH].max()))
                buffer, start = buffer[window - 2 * FILTER_REACH:], FILTER_REACH
            pieces, held = [buffer], len(buffer)
    buffer = np.concatenate(pieces) if pieces else np.zeros(0)
    if len(buffer) > start:
        peak = max(peak, float(peak_envelope(buffer)[start:].max()))
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def peak_envelope(samples: Any) -> Any:
    """Per input sample, the largest magnitude of the 4x oversampled signal around it."""
    import numpy as np
    from scipy.signal import resample_poly

    x = np.asarray(samples, np.float64)
    if not len(x):
        return x
    up = np.abs(resample_poly(x, OVERSAMPLE, 1))[: len(x) * OVERSAMPLE]
    up = np.pad(up, (0, len(x) * OVERSAMPLE - len(up)))
    return np.maximum(up.reshape(len(x), OVERSAMPLE).max(axis=1), np.abs(x))


def _envelopes(samples: Any, reach: int) -> Iterator[tuple[slice, Any]]:
    """:func:`peak_envelope` a block of :data:`BLOCK` samples at a time, each computed over ``reach`` +
    :data:`FILTER_REACH` samples more on either side (the oversampling filter's own reach), so that it is the
    envelope of the whole signal there: ``(block, envelope over block widened by reach)``. A whole chapter at once took
    some 50 bytes per sample."""
    extra = reach + FILTER_REACH
    for start in range(0, len(samples), BLOCK):
        end = min(len(samples), start + BLOCK)
        lo, hi = max(0, start - extra), min(len(samples), end + extra)
        envelope = peak_envelope(samples[lo:hi])
        keep = max(0, start - reach) - lo
        yield slice(start, end), envelope[keep: len(envelope) - (hi - min(len(samples), end + reach))]


def limit(samples: Any, rate: int, ceiling_db: float, lookahead: float = 0.005, scale: float = 1.0) -> Any:
    """``samples`` times ``scale``, under a gain from a look-ahead envelope so that the true peak stays at or under
    ``ceiling_db``; float32, computed a block at a time.

    The gain each sample needs is spread over the look-ahead window on both sides (a moving
    minimum), then smoothed by a moving average no wider than that window, so the gain at every
    peak is at most what it needs, and it moves without clicks."""
    import numpy as np
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    hold = max(1, int(lookahead * rate))
    reach = 2 * hold  # the moving minimum's and the average's widths
    out = np.empty(len(samples), np.float32)
    for block, envelope in _envelopes(samples, reach):
        lo = max(0, block.start - reach)
        need = np.minimum(1.0, ceiling / np.maximum(envelope * abs(scale), 1e-12))
        gain = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
        gain = uniform_filter1d(gain, size=hold, mode="nearest")[block.start - lo: block.stop - lo]
        out[block] = np.asarray(samples[block], np.float64) * (scale * gain)
    return out


def normalise(samples: Any, rate: int, settings: MasterSettings) -> Any:
    """Loudness to the target, then the true-peak ceiling held; the limiter's small loss of loudness is made up
    in a few rounds, each re-measured, and the ceiling is checked last of all."""
    import numpy as np

    x = np.asarray(samples, np.float32)
    ceiling = settings.true_peak - settings.headroom
    for _ in range(4):
        measured = loudness(x, rate)
        if not np.isfinite(measured):
            return x  # silence, or too short to measure: nothing to aim at
        if abs(measured - settings.loudness) < 0.2 and true_peak(x, rate) <= ceiling:
            break
        x = limit(x, rate, ceiling - 0.1, scale=10 ** ((settings.loudness - measured) / 20))
    peak = true_peak(x, rate)
    if peak > ceiling:
        x *= np.float32(10 ** ((ceiling - peak - 0.05) / 20))  # x is limit()'s: a peak over means it ran
    return x
