"""The alignment shim against a reference written from VITS's description of the search.

piper's model calls ``maximum_path(neg_cent, mask)`` with ``[batch, frames, text]`` tensors and
expects every frame given to one phoneme, phonemes in order, each used at least once, with the
highest total score. The reference below is that dynamic programme in plain numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monotonic_alignment_search")


def reference_path(score: np.ndarray, frames: int, phonemes: int) -> np.ndarray:
    """Best monotonic path through ``score[:frames, :phonemes]`` (frame-major), as a 0/1 matrix."""
    best = np.full((frames, phonemes), -np.inf)
    came_from_previous = np.zeros((frames, phonemes), dtype=bool)
    best[0, 0] = score[0, 0]
    for t in range(1, frames):
        for p in range(phonemes):
            stay = best[t - 1, p]
            advance = best[t - 1, p - 1] if p > 0 else -np.inf
            came_from_previous[t, p] = advance > stay
            best[t, p] = max(stay, advance) + score[t, p]
    path = np.zeros(score.shape, dtype=np.float32)
    p = phonemes - 1
    for t in range(frames - 1, -1, -1):
        path[t, p] = 1
        if t > 0 and came_from_previous[t, p]:
            p -= 1
    assert p == 0
    return path


def batch(seed: int, sizes: list[tuple[int, int]]):
    rng = np.random.default_rng(seed)
    max_frames = max(f for f, _ in sizes)
    max_phonemes = max(p for _, p in sizes)
    score = rng.normal(size=(len(sizes), max_frames, max_phonemes)).astype(np.float32) * 3
    mask = np.zeros_like(score)
    for i, (frames, phonemes) in enumerate(sizes):
        mask[i, :frames, :phonemes] = 1
    return score, mask


@pytest.mark.parametrize("seed", range(6))
def test_shim_matches_the_reference_in_pipers_axis_order(seed):
    from demod_voice.training.align import maximum_path

    sizes = [(40, 12), (25, 25), (33, 7), (9, 3)]
    score, mask = batch(seed, sizes)
    got = maximum_path(torch.from_numpy(score), torch.from_numpy(mask)).numpy()
    assert got.shape == score.shape
    for i, (frames, phonemes) in enumerate(sizes):
        want = reference_path(score[i], frames, phonemes)
        np.testing.assert_array_equal(got[i], want)
        assert (got[i, :frames].sum(axis=1) == 1).all()  # each frame belongs to one phoneme
        assert (got[i, :, :phonemes].sum(axis=0) >= 1).all()  # every phoneme gets a frame
        assert got[i].sum() == frames  # nothing outside the mask


def test_the_unshimmed_order_would_be_wrong():
    """Passing piper's layout straight through gives a different path: the shim's transpose matters."""
    from monotonic_alignment_search import maximum_path as search

    score, mask = batch(1, [(30, 10)])
    straight = search(torch.from_numpy(score), torch.from_numpy(mask)).numpy()[0]
    assert not np.array_equal(straight, reference_path(score[0], 30, 10))


def test_install_lets_pipers_model_import_it():
    import sys

    from demod_voice.training import align

    align.install()
    from piper.train.vits import monotonic_align

    assert monotonic_align is sys.modules[align.MODULE]
    score, mask = batch(2, [(20, 6)])
    got = monotonic_align.maximum_path(torch.from_numpy(score), torch.from_numpy(mask)).numpy()[0]
    np.testing.assert_array_equal(got, reference_path(score[0], 20, 6))
