"""A chapter's takes into one finished signal: each take's silence trimmed, set pauses between
takes, set silence at the chapter's edges, loudness to a target (ITU-R BS.1770, gated, through
pyloudnorm) and a true-peak ceiling held by a look-ahead limiter measured 4x oversampled.

Cue times come out of the assembly itself: a take's speech starts where it was placed, so each
caption starts and ends where its sentence's audio does (within the few milliseconds of margin
kept around speech).
"""

from __future__ import annotations

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
    """Integrated loudness in LUFS (BS.1770-4, gated); ``-inf`` for silence or audio under 0.4 s."""
    try:
        import pyloudnorm
    except ImportError:
        raise DependencyError("loudness needs pyloudnorm; install it with: pip install 'demod-voice[book]'") from None
    import numpy as np

    if len(samples) < int(0.4 * rate) + 1:
        return float("-inf")
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(rate).integrated_loudness(np.asarray(samples, np.float64)))


def true_peak(samples: Any, rate: int) -> float:
    """True peak in dBTP: the signal's peak 4x oversampled (BS.1770-4 annex 2)."""
    import numpy as np

    envelope = peak_envelope(samples)
    peak = float(envelope.max()) if len(envelope) else 0.0
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


def limit(samples: Any, rate: int, ceiling_db: float, lookahead: float = 0.005) -> Any:
    """Gain under a look-ahead envelope so that the true peak stays at or under ``ceiling_db``.

    The gain each sample needs is spread over the look-ahead window on both sides (a moving
    minimum), then smoothed by a moving average no wider than that window, so the gain at every
    peak is at most what it needs, and it moves without clicks."""
    import numpy as np
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    x = np.asarray(samples, np.float64)
    ceiling = 10 ** (ceiling_db / 20)
    envelope = peak_envelope(x)
    if not len(x) or envelope.max() <= ceiling:
        return x.astype(np.float32)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    hold = max(1, int(lookahead * rate))
    gain = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=hold, mode="nearest")
    return (x * gain).astype(np.float32)


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
        x = limit(x * np.float32(10 ** ((settings.loudness - measured) / 20)), rate, ceiling - 0.1)
    peak = true_peak(x, rate)
    if peak > ceiling:
        x = x * np.float32(10 ** ((ceiling - peak - 0.05) / 20))
    return x
