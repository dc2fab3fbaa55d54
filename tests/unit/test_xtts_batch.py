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


def test_a_worker_keeps_the_conditioning_of_the_voices_used_last_and_reads_older_ones_back(tmp_path):
    """A server cloning from every upload kept each recording's latents in the worker for good (~130 KB each)."""
    import types

    import torch

    from demod_voice.backends.xtts import engine
    from demod_voice.voices.references import Reference

    computed: list[str] = []

    def conditioning_of(references):
        computed.append(references[0].path)
        return torch.full((1, 2, 4), float(len(computed))), torch.zeros(1, 8, 1)

    backend = engine.XttsBackend()
    backend.cache_dir = str(tmp_path)
    backend.model = types.SimpleNamespace(config=types.SimpleNamespace(
        gpt_cond_len=6, gpt_cond_chunk_len=6, max_ref_len=10, sound_norm_refs=False))
    backend._latents_of = conditioning_of  # the model's own work on the recordings; what is kept is under test here
    voices = [(Reference(f"/refs/{i}.wav", f"{i:064x}", 6.0),) for i in range(engine.LATENTS_KEPT + 5)]
    first = backend.conditioning(voices[0])
    for voice in voices[1:]:
        backend.conditioning(voice)
    assert len(computed) == len(voices)
    assert len(backend._latents) == engine.LATENTS_KEPT
    again = backend.conditioning(voices[0])  # forgotten in memory, read back from the disk cache, not computed again
    assert len(computed) == len(voices) and torch.equal(again[0], first[0])
    backend.conditioning(voices[-1])
    assert len(computed) == len(voices) and len(backend._latents) == engine.LATENTS_KEPT
