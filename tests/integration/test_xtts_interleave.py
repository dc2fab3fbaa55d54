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


def test_a_batch_cuts_its_first_pieces_sooner_and_the_rest_where_alone_does(backend, references):
    """Each due row is decoded in turn, so with every row's first piece at the chunk size the last of four streams
    heard its first audio after four first-piece decodes, where alone it waits for one. In a batch of n the first
    piece of a stream's first sentence is cut at chunk / n tokens: the n first decodes read no more frames together
    than one lone first decode, the later cuts are alone's, and the audio is alone's but within the decoder's reach of
    the one extra cut."""
    from demod_voice.backends.xtts import batching

    settings = dataclasses.replace(XttsSettings(), top_k=1, max_new_tokens=45, stream_chunk_size=20, sentence_silence=0.0)
    refs = [check_references((str(references[name]),)) for name in ("ref.wav", "ref.flac", "ref.wav", "ref.flac")]
    texts = ["The first voice speaks.", "A second, longer line of words.", "Three.", "And the fourth one here."]
    spec = LoadSpec(backend="xtts", model="xtts")
    jobs = [SynthesisJob(spec, text, "-", options=XttsOptions(voice, "en", settings, stream=True))
            for text, voice in zip(texts, refs, strict=True)]
    assert batching.first_chunks(len(jobs), 20) == 5 and batching.first_chunks(1, 20) == 20

    decoder = backend.model.hifigan_decoder.waveform_decoder
    frames: list[int] = []  # input frames of each HiFi-GAN run, in order
    hook = decoder.register_forward_pre_hook(lambda module, args: frames.append(args[0].shape[-1]))
    try:
        alone = []
        for job in jobs:
            frames.clear()
            alone.append([chunk.samples for chunk in backend.synthesize(job)])
            lone_first = frames[0]
        frames.clear()
        together: list[list[np.ndarray]] = [[] for _ in jobs]
        before_first: dict[int, int] = {}  # a job's place -> frames decoded before its first piece was out
        for index, chunk in backend.interleaved(jobs):
            if chunk is not None:
                before_first.setdefault(index, sum(frames))
                together[index].append(chunk.samples)
    finally:
        hook.remove()
    assert max(before_first.values()) <= lone_first + len(jobs)  # the four first decodes: one lone first decode's frames

    overlap = 1024  # coqui's overlap_wav_len: the samples cross-faded at each cut
    for mine, theirs in zip(together, alone, strict=True):
        assert len(mine) == len(theirs) + 1 and len(mine[0]) < len(theirs[0]) / 2
        assert list(np.cumsum([len(c) for c in mine])[1:]) == list(np.cumsum([len(c) for c in theirs]))
        # from the end of the extra cut's cross-fade on, alone's samples (the first piece, 5 tokens, lies wholly
        # within the decoder's reach of its cut here: made without the frames after it, as any cut's end is)
        a, b = np.concatenate(mine), np.concatenate(theirs)
        np.testing.assert_allclose(a[len(mine[0]) + overlap:], b[len(mine[0]) + overlap:], atol=1e-5)


def test_a_stream_that_joins_between_two_rounds_equals_alone_and_a_bad_one_fails_alone(backend, references, monkeypatch):
    """A request that came while another streamed waited for all of the other's sentences; it now joins the running
    batch at its next round (engine: ``SynthesisJob.joins``). Both streams are alone's, and a joined request whose voice
    cannot be read fails alone while the batch goes on."""
    from transformers import LogitsProcessorList

    sampling = xtts_engine._sampling
    rule = LogitsProcessorList([StopAfterMultipleOf(13, backend.model.gpt)])
    monkeypatch.setattr(xtts_engine, "_sampling", lambda s: {**sampling(s), "logits_processor": rule})
    settings = dataclasses.replace(XttsSettings(), top_k=1, max_new_tokens=40, stream_chunk_size=4, sentence_silence=0.1)
    spec = LoadSpec(backend="xtts", model="xtts")

    def job(text: str, refs) -> SynthesisJob:
        return SynthesisJob(spec, text, "-", options=XttsOptions(refs, "en", settings, stream=True), joins=True)

    running = job("A first sentence is being spoken. Then a second one. And a third.", check_references((str(references["ref.wav"]),)))
    late = job("The late one.", check_references((str(references["ref.flac"]),)))
    broken = job("Never heard.", (str(references["ref.wav"]) + ".gone",))
    alone = [[chunk.samples for chunk in backend.synthesize(j)] for j in (running, late)]
    arrivals = [[], [late, broken]]  # asked before each round: they come while the first sentence is made
    together: list[list[np.ndarray]] = [[], [], []]
    events: list[tuple[int, str]] = []
    for index, piece in backend.interleaved([running], lambda: arrivals.pop(0) if arrivals else []):
        if piece is None or isinstance(piece, BaseException):
            events.append((index, "end" if piece is None else f"error {piece}"))
        else:
            events.append((index, "chunk"))
            together[index].append(piece.samples)
    said = [e for e in events if e[0] == 2]
    assert len(said) == 1 and said[0][1].startswith("error")  # one error, and no audio
    places = [e[0] for e in events]
    assert places.index(0) < places.index(1) < len(places) - 1 - places[::-1].index(0)  # it came in while the first streamed
    assert events[-1] == (0, "end") and (1, "end") in events and not together[2]
    for mine, theirs in zip(together[:2], alone, strict=True):
        assert [len(c) for c in mine] == [len(c) for c in theirs]
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
