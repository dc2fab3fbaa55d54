"""Through the whole engine (a real XTTS worker): streamed requests submitted together are handed over
together and answered interleaved, and each one's audio is what it gets alone."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from demod_voice.backends.xtts.request import XttsRequest, make_job
from demod_voice.config import EngineSettings, XttsSettings
from demod_voice.engine.service import EngineService


def test_streamed_requests_submitted_together_each_get_their_audio_alone(xtts_model, references, tmp_path, capfd):
    # top_k 1: the most likely token every step, so alone and together draw the same codes
    settings = dataclasses.replace(XttsSettings(), model_dir=str(xtts_model), top_k=1, max_new_tokens=12,
                                   stream_chunk_size=4, sentence_silence=0.0)

    def job(text: str, reference: str):
        return make_job(XttsRequest(references=(str(references[reference]),), text=text, output="-", settings=settings,
                                    cache_dir=str(tmp_path), stream=True))

    first, second = job("The first request speaks this.", "ref.wav"), job("A second one, in another voice.", "ref.flac")
    assert first.together and first.together == second.together  # streamed requests may share a batch
    service = EngineService(EngineSettings(), workers=1, log_level=logging.INFO)  # the worker's log reaches stderr
    try:
        alone = [[c.samples for c in service.submit(j).chunks(timeout=300)] for j in (first, second)]
        handles = service.submit_many([(first, None), (second, None)])
        together = [[c.samples for c in h.chunks(timeout=300)] for h in handles]
        assert all(h.result().ok for h in handles)
    finally:
        service.shutdown()
    assert "2 streamed jobs made together" in capfd.readouterr().err  # one hand-over, answered interleaved
    for mine, theirs in zip(together, alone, strict=True):
        assert len(mine) == len(theirs) > 1
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
