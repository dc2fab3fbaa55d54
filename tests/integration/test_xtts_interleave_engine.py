"""Through the whole engine (a real XTTS worker): streamed requests submitted together are handed over
together and answered interleaved, and each one's audio is what it gets alone."""

from __future__ import annotations

import dataclasses
import logging
import time

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


def test_a_request_that_comes_while_another_streams_joins_it_on_the_one_worker(xtts_model, references, tmp_path):
    """A request that came while a long one streamed on the one XTTS worker waited for all of it; it now joins the
    running batch at the next sentence round, ends first, and its audio is what it gets alone."""
    settings = dataclasses.replace(XttsSettings(), model_dir=str(xtts_model), top_k=1, max_new_tokens=12,
                                   stream_chunk_size=4, sentence_silence=0.0)

    def job(text: str, reference: str):
        return make_job(XttsRequest(references=(str(references[reference]),), text=text, output="-", settings=settings,
                                    cache_dir=str(tmp_path), stream=True))

    long = job(" ".join(f"This is sentence number {n} of the long answer." for n in range(1, 9)), "ref.wav")
    late = job("A short one.", "ref.flac")
    assert long.joins and late.joins
    service = EngineService(EngineSettings(), workers=1)
    started: list = []
    service.on_worker_start = started.append
    ended: dict[str, float] = {}
    try:
        alone = [c.samples for c in service.submit(late).chunks(timeout=300)]
        running = service.submit(long)
        running.add_done_callback(lambda result: ended.setdefault("long", time.perf_counter()))
        next(iter(running.chunks(timeout=300)))  # it streams
        joined = service.submit(late)
        joined.add_done_callback(lambda result: ended.setdefault("late", time.perf_counter()))
        mine = [c.samples for c in joined.chunks(timeout=300)]
        assert joined.result(timeout=300).ok and running.result(timeout=300).ok
    finally:
        service.shutdown()
    assert ended["late"] < ended["long"] and len(started) == 1
    assert len(mine) == len(alone) > 1
    for a, b in zip(mine, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
