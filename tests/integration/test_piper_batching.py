"""Batched Piper inference gives each sentence the audio it gets alone (at zero noise), in order."""

from __future__ import annotations

import dataclasses
import itertools
import shutil

import numpy as np
import pytest

from demod_voice.backends.piper import batching
from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.backends.piper.graph import MARK
from demod_voice.backends.piper.request import PiperOptions, PiperRequest, make_job
from demod_voice.config import PiperSettings
from demod_voice.engine.jobs import STDOUT, JobValue, LoadSpec, SynthesisJob

# Sentences of very different lengths, so every batch pads some of them.
TEXT = ("Hi. The quick brown fox jumps over the lazy dog near the quiet river bank this morning. "
        "Short one here. A considerably longer sentence follows, with several clauses, some commas, and "
        "enough words that its phoneme count is far above the others. Yes? And a final middling sentence to end.")
QUIET = PiperOptions(noise_scale=0.0, noise_w_scale=0.0)


class Counting:
    """Wraps a session and records the batch size of every run."""

    def __init__(self, session):
        self.session = session
        self.batches: list[int] = []

    def run(self, names, feeds):
        self.batches.append(len(feeds["input"]))
        return self.session.run(names, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def loaded(voice, tmp_path=None) -> PiperBackend:
    backend = PiperBackend()
    backend.load(LoadSpec("piper", str(voice), model_config=f"{voice}.json", cache_dir=str(tmp_path) if tmp_path else None))
    return backend


def alone(voice, text: str, options: PiperOptions) -> list[np.ndarray]:
    """piper's own one-sentence-at-a-time audio, on an unpatched graph."""
    from piper.config import SynthesisConfig
    from piper.voice import PiperVoice

    reference = PiperVoice.load(voice)
    syn = SynthesisConfig(speaker_id=options.speaker_id, length_scale=options.length_scale, noise_scale=options.noise_scale,
                          noise_w_scale=options.noise_w_scale, volume=options.volume)
    return [chunk.audio_float_array for chunk in reference.synthesize(text, syn_config=syn)]


def assert_same(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert [len(a) for a in got] == [len(a) for a in expected]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, expected, strict=True)) < 1e-5


@pytest.fixture(scope="module")
def single(piper_voice, tmp_path_factory):
    return loaded(piper_voice, tmp_path_factory.mktemp("cache"))


def test_batched_sentences_equal_one_at_a_time_at_zero_noise(single, piper_voice, tmp_path):
    single.batcher.front = counting = Counting(single.batcher.front)
    try:
        job = SynthesisJob(single_spec(piper_voice), TEXT, str(tmp_path / "x.wav"), options=dataclasses.replace(QUIET, batch_size=4))
        got = [chunk.samples for chunk in single.synthesize(job)]
    finally:
        single.batcher.front = counting.session
    expected = alone(piper_voice, TEXT, QUIET)
    assert len(expected) == 6
    assert_same(got, expected)
    # the first sentence alone (its audio is not held back), the other five in two batches
    assert counting.batches[0] == 1 and sorted(counting.batches[1:]) == [2, 3]


def single_spec(voice) -> LoadSpec:
    return LoadSpec("piper", str(voice), model_config=f"{voice}.json")


def test_multi_speaker_voice_batches_with_its_speaker(piper_multi_voice, tmp_path):
    backend = loaded(piper_multi_voice)
    assert backend.batcher is not None and backend.batcher.decoder is not None
    options = dataclasses.replace(QUIET, speaker_id=2, length_scale=1.3, volume=0.5, batch_size=8)
    job = SynthesisJob(single_spec(piper_multi_voice), TEXT, str(tmp_path / "x.wav"), options=options)
    assert_same([chunk.samples for chunk in backend.synthesize(job)], alone(piper_multi_voice, TEXT, options))


def test_rows_handed_over_together_share_batches_and_keep_their_own_audio(single, piper_voice, tmp_path):
    texts = ["One row, one sentence.", "Another row. With two sentences in it.", "A third row that is a bit longer than the rest of them."]
    jobs = [SynthesisJob(single_spec(piper_voice), text, str(tmp_path / f"{i}.wav"), options=QUIET) for i, text in enumerate(texts)]
    single.batcher.front = counting = Counting(single.batcher.front)
    try:
        # (each job's chunks end with its word timings, a JobValue)
        got = [[chunk.samples for chunk in chunks if not isinstance(chunk, JobValue)] for chunks in single.synthesize_together(jobs)]
    finally:
        single.batcher.front = counting.session
    assert counting.batches == [4]  # four sentences of three rows in one run
    for text, audio in zip(texts, got, strict=True):
        assert_same(audio, alone(piper_voice, text, QUIET))


def test_a_row_cancelled_part_way_leaves_the_next_rows_their_own_audio(single, piper_voice, tmp_path):
    """Rows handed over together read their sentences from one batched run in turn: a row given up after its first
    sentence (cancelled: a DELETE of its batch job, its time budget, Ctrl-C) left its other sentences there, and the
    next row, perhaps another client's, was sent them as its own audio."""
    from demod_voice.engine import worker

    texts = ["First one here. It has a second sentence. And a third one too.", "Totally different words for the other row."]
    jobs = [SynthesisJob(single_spec(piper_voice), text, str(tmp_path / f"{i}.wav"), options=QUIET) for i, text in enumerate(texts)]
    sent: list = []
    worker.answer(sent.append, single, jobs, cancelled=lambda index: index == 0 and len(sent) > 0)
    assert [m[0] for m in sent if m[-1] == 0] == ["chunk", "error"]  # its first sentence, then Cancelled
    theirs = [m[1] for m in sent if m[0] == "chunk" and m[-1] == 1]
    assert_same(theirs, alone(piper_voice, texts[1], QUIET))


def test_a_job_on_its_own_runs_its_first_sentence_alone(single, piper_voice, tmp_path):
    # (a streamed job goes sentence by sentence in decoder windows: tests/integration/test_piper_streaming.py)
    job = SynthesisJob(single_spec(piper_voice), TEXT, str(tmp_path / "x.wav"), options=QUIET)
    single.batcher.front = counting = Counting(single.batcher.front)
    try:
        chunks = single.synthesize(job)
        next(chunks)
        assert counting.batches == [1]  # the first audio came before any batch was made
        rest = list(chunks)
    finally:
        single.batcher.front = counting.session
    assert counting.batches == [1, 5] and len(rest) == 5


def test_sentence_silence_goes_between_sentences(single, piper_voice, tmp_path):
    options = dataclasses.replace(QUIET, sentence_silence=0.25)
    job = SynthesisJob(single_spec(piper_voice), "First one. Second one.", str(tmp_path / "x.wav"), options=options)
    chunks = [chunk.samples for chunk in single.synthesize(job)]
    rate = single.voice.config.sample_rate
    assert len(chunks) == 3 and len(chunks[1]) == int(0.25 * rate) and not chunks[1].any()


def test_batch_size_one_runs_one_sentence_per_run(single, piper_voice, tmp_path):
    single.batcher.front = counting = Counting(single.batcher.front)
    try:
        job = SynthesisJob(single_spec(piper_voice), TEXT, str(tmp_path / "x.wav"), options=dataclasses.replace(QUIET, batch_size=1))
        got = [chunk.samples for chunk in single.synthesize(job)]
    finally:
        single.batcher.front = counting.session
    assert counting.batches == [1] * 6
    assert_same(got, alone(piper_voice, TEXT, QUIET))


def test_prepared_graph_is_split_at_the_flow_and_the_decoder_and_cached(piper_voice, tmp_path):
    import onnx

    prepared = batching.prepare(str(piper_voice), str(tmp_path))
    assert all(isinstance(part, str) for part in (prepared.front, prepared.flow, prepared.decoder))
    again = batching.prepare(str(piper_voice), str(tmp_path))  # second time from the cache
    assert again.cached and not prepared.cached and again == dataclasses.replace(prepared, cached=True)
    front, flow, decoder = onnx.load(prepared.front), onnx.load(prepared.flow), onnx.load(prepared.decoder)
    durations = {p.key: p.value for p in front.metadata_props}[MARK]
    made = [o.name for o in front.graph.output]
    assert made[-1] == durations
    assert {i.name for i in flow.graph.input} <= set(made[:-1])  # the prior sample, the frame mask
    assert [i.name for i in decoder.graph.input] == [o.name for o in flow.graph.output]
    assert all(node.name.startswith("/dec/") or node.op_type in ("Constant", "Unsqueeze", "Squeeze")
               for node in decoder.graph.node)
    convolutions = [node for node in flow.graph.node if node.op_type == "Conv"]
    assert convolutions and all(node.name.startswith("/flow/") for node in convolutions)
    assert not any(node.name.startswith(("/flow/", "/dec/")) for node in front.graph.node)


def test_shapes_read_without_the_weights_are_the_whole_voices(piper_voice, piper_multi_voice):
    """``graph.value_shapes`` infers on a copy whose large weights are typed inputs (it serialised the whole voice: 0.34 s
    of a medium voice's 0.48 s preparation); every tensor's shape is what onnx's inference on the whole voice finds."""
    import onnx
    from onnx import shape_inference

    from demod_voice.backends.piper import graph

    for voice in (piper_voice, piper_multi_voice):
        model = onnx.load(str(voice))
        whole = shape_inference.infer_shapes(model).graph
        expected = {}
        for value in [*whole.value_info, *whole.input, *whole.output]:
            dims = value.type.tensor_type.shape.dim
            expected[value.name] = (value.type.tensor_type.elem_type, len(dims),
                                    dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else -1)
        assert graph.value_shapes(model) == expected


@pytest.mark.parametrize(("share", "cores", "front"), [(1, 2, 2), (1, 1, 1), (2, 8, 4), (0, 2, 0)])
def test_a_workers_front_gets_twice_its_thread_share_and_the_windows_keep_it(piper_voice, tmp_path, monkeypatch, share,
                                                                            cores, front):
    # the front runs before every stream's first audio: a worker with a share of the cores runs it on twice its
    # share (at most the cores); the flow and the decoder, most of a sentence's work, keep the share (0: all cores)
    from demod_voice import devices

    monkeypatch.setattr(devices, "THREADS", share)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: cores)
    backend = loaded(piper_voice, tmp_path)
    threads = {part: getattr(backend.batcher, part).get_session_options().intra_op_num_threads
               for part in ("front", "flow", "decoder")}
    assert threads == {"front": front, "flow": share, "decoder": share}


def test_a_graph_whose_decoder_cannot_be_cut_gets_masks_and_the_same_audio(piper_voice, tmp_path, monkeypatch):
    # a graph where neither scope names nor structure locate the decoder gets frame masks before
    # its convolutions instead; the audio must be the same all the same.
    import onnx

    from demod_voice.backends.piper import graph

    monkeypatch.setattr(graph, "find_decoder", lambda model, durations: [])
    model = onnx.load(str(piper_voice))
    anonymous = tmp_path / "anonymous.onnx"
    onnx.save(model, anonymous)
    shutil.copy(f"{piper_voice}.json", f"{anonymous}.json")
    backend = loaded(anonymous, tmp_path)
    assert backend.batcher is not None and backend.batcher.decoder is None
    job = SynthesisJob(single_spec(anonymous), TEXT, str(tmp_path / "x.wav"), options=dataclasses.replace(QUIET, batch_size=8))
    assert_same([chunk.samples for chunk in backend.synthesize(job)], alone(piper_voice, TEXT, QUIET))


def test_a_graph_without_piper_durations_runs_unbatched(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), path)
    assert batching.prepare(str(path), str(tmp_path)) is None


@pytest.mark.parametrize("lengths,most", [([5, 50, 7, 48, 6, 49, 30], 3), (list(range(1, 40)), 8), ([10], 4), ([], 4)])
def test_groups_cover_every_sentence_once_with_similar_lengths(lengths, most):
    found = batching.groups(lengths, most)
    assert sorted(i for group in found for i in group) == list(range(len(lengths)))
    assert all(1 <= len(group) <= most for group in found)
    if len(found) > 1:
        assert max(map(len, found)) - min(map(len, found)) <= 1  # even sizes
    spans = [(min(lengths[i] for i in g), max(lengths[i] for i in g)) for g in found]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # sorted: no two batches overlap in length


def test_groups_keep_padded_ids_under_the_budget():
    lengths = [600] * 5 + [20] * 8
    found = batching.groups(lengths, 8, max_padded=2048)
    assert all(len(g) * max(lengths[i] for i in g) <= 2048 for g in found)
    assert [len(g) for g in found] == [7, 3, 3]  # three of 600 ids at most; sizes even: no batch of one


def test_requests_on_one_voice_and_settings_may_go_together(piper_voice):
    settings = PiperSettings(noise_scale=0.0, batch_size=4)
    request = PiperRequest(model=str(piper_voice), text="Hello.", output="/tmp/a.wav", settings=settings)
    a, b = make_job(request), make_job(dataclasses.replace(request, text="Other.", output="/tmp/b.wav"))
    assert a.together and a.together == b.together and a.together_limit >= 4 and a.options.batch_size == 4
    louder = make_job(dataclasses.replace(request, settings=dataclasses.replace(settings, volume=2.0)))
    assert louder.together != a.together
    assert make_job(dataclasses.replace(request, output=STDOUT)).together is None


def test_a_sentence_with_no_full_stop_is_made_in_pieces_of_bounded_length(single, piper_voice, tmp_path):
    """A batch row of 2,600 characters with no full stop took 1.5 GB and 22 s, one of 17,000 characters 20 GB (the OOM
    killer): the voice expands phonemes to frames through a phonemes x frames matrix. Such a sentence is now cut after
    clause marks into pieces of at most ``MOST_PHONEMES`` phonemes, nothing of it lost."""
    from demod_voice.backends.piper import engine

    text = ", ".join(["the quick brown fox jumps over the lazy dog"] * 60)  # ~2,700 characters, one sentence
    [phonemes] = single.voice.phonemize(text)
    assert len(phonemes) > 3 * engine.MOST_PHONEMES
    pieces = list(engine.pieces(phonemes, engine.MOST_PHONEMES))
    assert len(pieces) > 3 and all(len(piece) <= engine.MOST_PHONEMES and piece[-1] == "," for piece in pieces[:-1])
    assert " ".join("".join(piece) for piece in pieces) == "".join(phonemes)  # only the spaces at the cuts go
    ids = single.phoneme_ids(text)
    assert ids == [single.voice.phonemes_to_ids(piece) for piece in pieces]
    chunks = list(single.synthesize(SynthesisJob(single_spec(piper_voice), text, str(tmp_path / "x.wav"), options=QUIET)))
    assert len(chunks) == len(pieces) and all(len(chunk.samples) > 0 for chunk in chunks)
    # no clause mark: cut after a word; not even a space: cut where it must be
    words = list(engine.pieces(list("ab cd " * 100), 50))
    assert all(len(piece) <= 50 and piece[-1] != " " for piece in words) and " ".join("".join(p) for p in words) == ("ab cd " * 100).strip()
    assert [len(piece) for piece in engine.pieces(list("x" * 120), 50)] == [50, 50, 20]


def test_a_cache_that_cannot_be_written_keeps_no_partial_and_says_why(piper_voice, tmp_path, monkeypatch):
    """On a full disk, preparing a voice left a ``.partial`` file per try that nothing removed, and installing the voice
    warned "ValueError: stat: embedded null character in path" (the graphs' bytes taken for a path)."""
    import errno
    from pathlib import Path

    from demod_voice.errors import OutputFull

    real = Path.write_bytes

    def full(self, data):
        real(self, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputFull) as err:
        batching.make_ready(str(piper_voice), str(tmp_path), "cpu")
    assert "No space left on device" in str(err.value) and "free some space" in str(err.value), err.value
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".partial")]
    kept = batching.prepare(str(piper_voice), str(tmp_path))  # a worker's own load: runs from memory, as before
    assert kept is not None and isinstance(kept.front, bytes)
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".partial")]


STARTS_TOGETHER = """
import os, sys, time
from demod_voice.backends.piper import batching
from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.engine.jobs import LoadSpec

voice, cache, go, log = sys.argv[1:5]
parts = batching._parts

def counted(*args, **kwargs):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.5)  # a medium voice takes ~1 s here: room for the others to start preparing too
    return parts(*args, **kwargs)

batching._parts = counted
open(go + "." + str(os.getpid()), "w").close()  # imported: ready
while not os.path.exists(go):
    time.sleep(0.01)
backend = PiperBackend()
backend.load(LoadSpec("piper", voice, model_config=voice + ".json", cache_dir=cache))
print("streams" if backend.streams() else "whole")
"""


def test_workers_starting_on_a_cold_voice_at_once_prepare_it_once(piper_voice, tmp_path):
    """serve's and batch's workers load a voice at the same moment: one prepares it, the others wait and read the cache
    (they each prepared the same files side by side)."""
    import subprocess
    import sys
    import time

    go, log, cache = tmp_path / "go", tmp_path / "prepared-by", tmp_path / "cache"
    workers = [subprocess.Popen([sys.executable, "-c", STARTS_TOGETHER, str(piper_voice), str(cache), str(go), str(log)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < 3 and time.monotonic() < deadline:  # all three imported and waiting
        assert all(worker.poll() is None for worker in workers), [worker.communicate() for worker in workers]
        time.sleep(0.05)
    go.touch()
    ends = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], [err for _, err in ends]
    assert [out.strip() for out, _ in ends] == ["streams"] * 3
    assert len(log.read_text().split()) == 1, log.read_text()
    assert not list((cache / "onnx").glob(".*lock")), "the holder removes its lock file"
