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
