"""Streamed XTTS requests handed to one worker together share the GPT's steps, and each job's
chunks are the ones it gets streamed alone (to float rounding): batching without the wait."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from xtts_rules import StopAfterMultipleOf, load_louder

from demod_voice.backends.xtts import engine as xtts_engine
from demod_voice.backends.xtts.request import XttsOptions
from demod_voice.config import XttsSettings
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.voices.references import check_references


@pytest.fixture(scope="module")
def backend(xtts_model, tmp_path_factory):
    pytest.importorskip("torch")
    spec = LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path_factory.mktemp("xtts-cache")))
    return load_louder(xtts_engine.XttsBackend(), spec)


def test_streamed_jobs_made_together_stream_interleaved_and_equal_alone(backend, references, monkeypatch):
    from transformers import LogitsProcessorList

    sampling = xtts_engine._sampling
    rule = LogitsProcessorList([StopAfterMultipleOf(13, backend.model.gpt)])
    monkeypatch.setattr(xtts_engine, "_sampling", lambda s: {**sampling(s), "logits_processor": rule})
    # top_k 1: the one most likely token, so alone and together draw the same codes
    settings = dataclasses.replace(XttsSettings(), top_k=1, max_new_tokens=40, stream_chunk_size=4, sentence_silence=0.1)
    voices = [check_references((str(references[name]),)) for name in ("ref.wav", "ref.flac", "ref.wav")]
    texts = ["A rather longer sentence comes first, with a clause. And a second one.", "Short.", "Then one in between."]
    spec = LoadSpec(backend="xtts", model="xtts")
    jobs = [SynthesisJob(spec, text, "-", options=XttsOptions(refs, "en", settings, stream=True))
            for text, refs in zip(texts, voices, strict=True)]
    alone = [[chunk.samples for chunk in backend.synthesize(job)] for job in jobs]
    order: list[int] = []
    together: list[list[np.ndarray]] = [[] for _ in jobs]
    ended: list[int] = []
    for index, chunk in backend.interleaved(jobs):
        if chunk is None:
            ended.append(index)
        else:
            order.append(index)
            together[index].append(chunk.samples)
    assert sorted(ended) == [0, 1, 2] and ended[-1] == 0  # every job ends once; the two-sentence one last
    assert order.index(1) < len(order) - 1 - order[::-1].index(0)  # job 1 streamed before job 0 was done
    for mine, theirs in zip(together, alone, strict=True):
        assert [len(c) for c in mine] == [len(c) for c in theirs] and len(mine) > 1
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert len({sum(map(len, chunks)) for chunks in alone}) == len(jobs)  # each row stopped at its own step


def test_due_rows_are_decoded_one_at_a_time_each_piece_out_before_the_next_decode(backend, references, monkeypatch):
    """The HiFi-GAN decoder is compute-bound: a batch of due rows saved nothing and held every row's
    piece until all were decoded. Each piece now comes out right after its own decode."""
    import torch

    from demod_voice.backends.xtts import batching

    batches: list[int] = []  # rows in each HiFi-GAN run (its input frames: [rows, channels, frames], or [channels, frames])
    hook = backend.model.hifigan_decoder.waveform_decoder.register_forward_pre_hook(
        lambda module, args: batches.append(args[0].shape[0] if args[0].dim() == 3 else 1))
    gpt_latent, speaker = backend.conditioning(check_references((str(references["ref.wav"]),)))
    decoded_before = []
    with torch.inference_mode():
        for _, piece in batching.generate_stream(backend.model, ["The same words for every row."] * 3, "en", gpt_latent, speaker,
                                                 chunk_tokens=4, top_k=1, max_new_tokens=12):
            if piece is not None:
                decoded_before.append(len(batches))
    hook.remove()
    assert len(decoded_before) >= 3 and set(batches) == {1}
    assert decoded_before == list(range(1, len(decoded_before) + 1))


def test_a_row_cancelled_part_way_leaves_the_next_row_its_own_audio(backend, references, monkeypatch):
    """Rows made together read their sentences from one batched run in turn: a row given up after its first sentence
    left its second there, and the next row was sent it as its own audio."""
    from transformers import LogitsProcessorList

    from demod_voice.engine import worker

    sampling = xtts_engine._sampling
    rule = LogitsProcessorList([StopAfterMultipleOf(13, backend.model.gpt)])
    monkeypatch.setattr(xtts_engine, "_sampling", lambda s: {**sampling(s), "logits_processor": rule})
    settings = dataclasses.replace(XttsSettings(), top_k=1, max_new_tokens=40, sentence_silence=0.0)
    refs = check_references((str(references["ref.wav"]),))
    texts = ["A rather longer sentence comes first, with a clause. And then a second one here. A third one.", "Short."]
    spec = LoadSpec(backend="xtts", model="xtts")
    jobs = [SynthesisJob(spec, text, f"{i}.wav", options=XttsOptions(refs, "en", settings)) for i, text in enumerate(texts)]
    mine = [chunk.samples for chunk in backend.synthesize(jobs[1])]
    sent: list = []
    worker.answer(sent.append, backend, jobs, cancelled=lambda index: index == 0 and len(sent) > 0)
    assert [m[0] for m in sent if m[-1] == 0] == ["chunk", "error"]  # its first sentence, then Cancelled
    theirs = [m[1] for m in sent if m[0] == "chunk" and m[-1] == 1]
    assert [len(c) for c in theirs] == [len(c) for c in mine], ([len(c) for c in theirs], [len(c) for c in mine])
