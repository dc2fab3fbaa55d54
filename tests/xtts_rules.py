"""Helpers for XTTS tests on random weights (the generated tiny model, tests/fixtures)."""

from __future__ import annotations


class StopAfterMultipleOf:
    """Random weights never pick the stop token; this stops each row after its first code that is a
    multiple of ``n``: a rule of the row's own tokens, so alone and in a batch it stops alike (a
    ``transformers`` logits processor: put it in a ``LogitsProcessorList``)."""

    def __init__(self, n, gpt):
        self.n, self.start, self.stop = n, gpt.start_audio_token, gpt.stop_audio_token

    def __call__(self, input_ids, scores):
        last = input_ids[:, -1]
        hit = (last % self.n == 0) & (last != self.start)
        scores[hit] = -float("inf")
        scores[hit, self.stop] = 0.0
        return scores


def load_louder(backend, spec):
    """Load ``spec`` into ``backend`` with the GPT's attention weights 10x (at random init attention barely
    moves the codes; louder, each text gets its own). The weights are scaled before the backend lays them
    out for oneDNN on a CPU, as its load does, so the tests run the products the workers run."""
    import pytest
    import torch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(backend), "_pack", lambda self: 0)
        backend.load(spec)
    with torch.no_grad():
        for block in backend.model.gpt.gpt.h:
            block.attn.c_attn.weight.mul_(10.0)
            block.attn.c_proj.weight.mul_(10.0)
    from demod_voice.backends.xtts import packed

    if backend.device == "cpu" and packed.usable():
        assert backend._pack() > 0
    return backend
