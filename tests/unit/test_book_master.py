"""Mastering a chapter: its loudness and true peak measured, and the limiter, a block at a time."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from demod_voice.book import master

pyloudnorm = pytest.importorskip("pyloudnorm", reason="the book extra is not installed: pip install -e '.[book]'")
RATE = 22050


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise whose level changes every 100 ms, with a stretch of silence (the gates have something to leave out)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    levels = np.repeat(rng.uniform(0.0, 0.6, n // 2205 + 1), 2205)[:n]
    x = (rng.standard_normal(n) * levels).astype(np.float32)
    x[2 * RATE: 4 * RATE] = 0
    return x


def test_a_long_chapter_is_mastered_in_memory_that_does_not_grow_with_its_length(monkeypatch):
    """A book without chapter headings is one chapter: 10.6 minutes of it took 1.29 GB to master (some 70 bytes a sample:
    a few hours ran out of memory after every take was made, and under a memory limit it ended with 'internal error:
    MemoryError'). Blocks of it are measured and limited in turn; the chapter itself and its result are all that grow."""
    monkeypatch.setattr(master, "BLOCK", 1 << 16, raising=False)
    x = _speech_like(100.0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = master.normalise(x, RATE, master.MasterSettings(headroom=0.5))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert abs(master.loudness(out, RATE) + 18.0) < 0.2 and master.true_peak(out, RATE) <= -1.5
    assert peak < 4 * x.nbytes, f"mastering {x.nbytes / 1e6:.0f} MB of audio took {peak / 1e6:.0f} MB more"


def test_measuring_and_limiting_a_block_at_a_time_is_measuring_the_whole(monkeypatch):
    x = _speech_like(9.0, seed=1)
    whole = (master.loudness(x, RATE), master.true_peak(x, RATE), master.limit(x, RATE, -6.0, scale=1.7))
    assert whole[0] == pytest.approx(pyloudnorm.Meter(RATE).integrated_loudness(x.astype(np.float64)), abs=1e-6)
    assert whole[1] == pytest.approx(20 * np.log10(master.peak_envelope(x).max()), abs=1e-9)
    monkeypatch.setattr(master, "BLOCK", 5000, raising=False)  # blocks that do not fall on the gating blocks' edges
    assert master.loudness(x, RATE) == pytest.approx(whole[0], abs=1e-6)
    assert master.true_peak(x, RATE) == pytest.approx(whole[1], abs=1e-9)
    np.testing.assert_allclose(master.limit(x, RATE, -6.0, scale=1.7), whole[2], atol=1e-6)
    assert master.true_peak(whole[2], RATE) <= -6.0 + 0.01  # within what normalise() leaves the limiter (0.1 dB)


@pytest.mark.parametrize("suffix", [".m4b", ".mp3", ".opus"])
def test_a_lossy_chapter_keeps_its_true_peak_under_the_ceiling_once_encoded(tmp_path, suffix):
    """The encoders overshoot the peaks they are given by more than the 0.5 dB once kept for them all: a 20 s buzz (a pulse train, as
    a voice's glottal pulses are) mastered to -1 dBTP decoded from the m4b at -0.2 dBTP, and a minute of the released joe
    voice at -0.4 (AAC at 64 kb/s). The chapter is encoded once to measure, and mastered again under a lower ceiling (the
    joe minute: -1.8 dBTP at -18.1 LUFS). The buzz is peaks only: under the lower ceiling it cannot reach -18 LUFS, and the
    ceiling comes first (a decoded peak over 0 dBFS is clipped by the player)."""
    import re
    import subprocess

    from demod_voice.book import assemble, mux

    t = np.arange(20 * RATE) / RATE
    phase = np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.5 * t)) / RATE
    buzz = ((((phase % 1) < 0.06) - 0.06) * (np.sin(2 * np.pi * 1.7 * t) > 0)).astype(np.float32)
    settings = master.MasterSettings(headroom=0.5)
    chapter = assemble.mastered(buzz, RATE, settings, suffix)
    path = tmp_path / f"b{suffix}"
    if suffix == ".m4b":
        mux.write_m4b(path, [len(chapter)], iter([chapter]), ["One"], RATE, mux.Tags("Buzz"))
    else:
        mux.write_track(path, chapter, RATE, mux.Tags("Buzz"), "One", 1, 1)
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    summary = done.stderr[done.stderr.rindex("Summary:"):]
    loud, peak = (float(re.search(pattern, summary)[1]) for pattern in (r"I:\s+(-?[\d.]+) LUFS", r"Peak:\s+(-?[\d.]+) dBFS"))
    assert peak <= -1.0 and abs(loud - -18) <= 2.0, (suffix, loud, peak)


def test_the_true_peak_of_a_decoders_frames_is_the_true_peak_of_the_whole():
    x = _speech_like(150.0)
    x[RATE * 60 + 17] = 0.95  # a peak far into the chapter, in a block after the first
    frames = (x[start: start + 1024] for start in range(0, len(x), 1024))
    assert master.true_peak_of(frames) == pytest.approx(master.true_peak(x, RATE), abs=1e-6)
