from __future__ import annotations

import pytest

from demod_voice.backends.xtts.batching import sentence_groups


@pytest.mark.parametrize("count, most", [(1, 1), (10, 16), (10, 4), (17, 16), (33, 8), (5, 1)])
def test_groups_cover_every_sentence_once_in_near_equal_sizes(count, most):
    lengths = [(7 * i) % 11 + 1 for i in range(count)]
    groups = sentence_groups(lengths, most)
    assert sorted(i for group in groups for i in group) == list(range(count))
    sizes = [len(group) for group in groups]
    assert max(sizes) <= most and max(sizes) - min(sizes) <= 1
    assert len(groups) == -(-count // most)  # no more groups than the limit needs


def test_sentences_of_similar_length_share_a_group():
    assert sentence_groups([5, 40, 6, 38], 2) == [[0, 2], [3, 1]]
    assert sentence_groups([], 4) == []
