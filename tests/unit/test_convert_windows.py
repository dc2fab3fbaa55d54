"""Long sources in windows (backends/openvoice/windows.py): covering, joining, bounded."""

from __future__ import annotations

import numpy as np

from demod_voice.backends.openvoice.windows import join, plan, windows

RATE, HOP, LOST = 22050, 256, 768


def blocks(signal, size):
    for start in range(0, len(signal), size):
        yield signal[start: start + size]


def test_plan_is_in_whole_hops_and_bounded():
    layout = plan(30.0, 2.0, RATE, HOP, LOST)
    assert layout.window % HOP == 0 and layout.overlap % HOP == 0 and layout.step == layout.window - layout.overlap
    assert plan(2.0, 5.0, RATE, HOP, LOST).overlap <= plan(2.0, 5.0, RATE, HOP, LOST).window // 2  # at most half a window
    assert plan(2.0, 0.0, RATE, HOP, LOST).overlap >= 2 * LOST  # at least twice what a window loses at its end


def test_windows_cover_the_source_and_join_back_to_it():
    """An identity "converter" that loses the last LOST samples of each window, as the real one does: the joined
    output is the source (less its own last LOST samples), whatever the block sizes."""
    signal = np.random.default_rng(0).standard_normal(RATE * 7 + 123).astype(np.float32)
    layout = plan(2.0, 0.5, RATE, HOP, LOST)
    for size in (1000, RATE, 5 * RATE):
        cut = list(windows(blocks(signal, size), layout))
        assert [start for start, _ in cut] == [i * layout.step for i in range(len(cut))]
        assert max(len(w) for _, w in cut) <= layout.window
        assert cut[-1][0] + len(cut[-1][1]) == len(signal)
        joined = np.concatenate(list(join((start, w[: len(w) - LOST]) for start, w in cut)))
        assert len(joined) == len(signal) - LOST
        np.testing.assert_allclose(joined, signal[: len(joined)], atol=1e-6)


def test_a_short_source_is_one_window():
    signal = np.ones(RATE, dtype=np.float32)
    cut = list(windows(blocks(signal, 4096), plan(30.0, 2.0, RATE, HOP, LOST)))
    assert len(cut) == 1 and cut[0][0] == 0 and len(cut[0][1]) == RATE


def test_the_cross_fade_blends_two_different_outputs_smoothly():
    layout = plan(2.0, 1.0, RATE, HOP, LOST)
    first = np.zeros(layout.window - LOST, dtype=np.float32)
    second = np.ones(layout.window - LOST, dtype=np.float32)
    joined = np.concatenate(list(join([(0, first), (layout.step, second)])))
    assert len(joined) == layout.step + len(second)
    assert joined[0] == 0 and joined[-1] == 1 and np.all(np.diff(joined) >= 0)
    assert np.abs(np.diff(joined)).max() < 4 / layout.overlap  # a ramp over the overlap's middle, no step
