"""How far one rendering of a sentence is from another: a log-mel spectral distance in dB.

Used to compare an INT8 voice with its float original at zero noise. The two may differ by a frame
here and there (a duration rounds the other way), so frames are paired by dynamic time warping
before their log-mel spectra are compared; numpy only.
"""

from __future__ import annotations

from typing import Any

N_FFT = 1024
HOP = 256
N_MELS = 80
FLOOR_DB = -80.0
"""Mel energies are floored this far below the louder signal's peak, so silence does not dominate."""


def mel_filters(rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> Any:
    """Triangular mel filters (HTK mel scale), shape [n_mels, n_fft // 2 + 1]."""
    import numpy as np

    def to_mel(hz: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(to_mel(0.0), to_mel(rate / 2), n_mels + 2) / 2595.0) - 1.0)
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - low) / np.maximum(centre - low, 1e-9)
    falling = (high - bins[None]) / np.maximum(high - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(audio: Any, rate: int) -> Any:
    """Log-mel power spectrogram in dB, shape [frames, n_mels]."""
    import numpy as np

    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    frames = 1 + (len(audio) - N_FFT) // HOP
    index = np.arange(N_FFT)[None] + HOP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(N_FFT)[None], axis=1)) ** 2
    return 10.0 * np.log10(np.maximum(spectrum @ mel_filters(rate).T, 1e-12))


def log_mel_distance(reference: Any, other: Any, rate: int) -> float:
    """Mean over time-warped frame pairs of the RMS difference (dB) between the two log-mel spectra."""
    import numpy as np

    a, b = log_mel(reference, rate), log_mel(other, rate)
    floor = max(a.max(), b.max()) + FLOOR_DB
    a, b = np.maximum(a, floor), np.maximum(b, floor)
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).mean(axis=2))
    return float(_warped_mean(cost))


def _warped_mean(cost: Any) -> float:
    """Mean cost along the cheapest monotonic path from corner to corner (steps right, down, diagonal)."""
    import numpy as np

    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    steps = np.zeros((rows + 1, cols + 1))
    total[0, 0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            options = (total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
            best = int(np.argmin(options))
            previous = ((i - 1, j - 1), (i - 1, j), (i, j - 1))[best]
            total[i, j] = options[best] + cost[i - 1, j - 1]
            steps[i, j] = steps[previous] + 1
    return total[rows, cols] / steps[rows, cols]
