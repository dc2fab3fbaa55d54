"""``models quantize``: an INT8 copy of a Piper voice that speaks like its float original."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile
from conftest import run_cli

from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.backends.piper.request import PiperOptions
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.models.fidelity import log_mel_distance

TEXT = ("The quick brown fox jumps over the lazy dog. A second sentence, longer than the first, speaks of rivers "
        "and mountains. Short one.")
QUIET = PiperOptions(noise_scale=0.0, noise_w_scale=0.0)
# Measured on the tiny test voice at zero noise: static INT8 1.55-1.63 dB per sentence, dynamic
# 0.92-1.06 dB; the same float voice at its own default noise_scale is 4.7-5.2 dB from itself at zero.
STATIC_BOUND_DB = 3.0


@pytest.fixture(scope="module")
def quantized(piper_voice, tmp_path_factory):
    """The tiny voice quantized once by the CLI (static), written to a chosen path."""
    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    done = run_cli("models", "quantize", str(piper_voice), "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == str(out)
    return out


def sentences(model, options=QUIET) -> list[np.ndarray]:
    backend = PiperBackend()
    backend.load(LoadSpec("piper", str(model), model_config=f"{model}.json"))
    job = SynthesisJob(LoadSpec("piper", str(model)), TEXT, "unused.wav", options=options)
    return [chunk.samples for chunk in backend.synthesize(job)]


def test_int8_copy_is_smaller_has_its_config_and_runs_batched(quantized, piper_voice):
    import onnx

    from demod_voice.backends.piper.graph import MARK

    assert quantized.stat().st_size < piper_voice.stat().st_size
    config = json.loads((quantized.parent / f"{quantized.name}.json").read_text())
    original = json.loads(piper_voice.with_name(f"{piper_voice.name}.json").read_text())
    assert config["quantization"]["method"] == "static"
    assert {k: v for k, v in config.items() if k != "quantization"} == original
    graph = onnx.load(str(quantized))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert MARK in {p.key for p in graph.metadata_props}  # batched sentences on the INT8 copy too


def test_int8_voice_stays_within_the_fidelity_bound(quantized, piper_voice):
    reference, got = sentences(piper_voice), sentences(quantized)
    assert len(got) == len(reference) == 3
    distances = [log_mel_distance(a, b, 22050) for a, b in zip(reference, got, strict=True)]
    assert 0.0 < max(distances) < STATIC_BOUND_DB
    # and the metric is not blind: the float voice at its own noise is further from itself
    noisy = sentences(piper_voice, PiperOptions(noise_w_scale=0.0))
    assert min(log_mel_distance(a, b, 22050) for a, b in zip(reference, noisy, strict=True)) > max(distances)


def test_int8_voice_speaks_by_path_and_by_name(quantized, piper_voice, tmp_path):
    out = tmp_path / "by-path.wav"
    done = run_cli("piper-infer", str(quantized), "Hello there. How are you?", "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(out)).frames > 0
    cache = tmp_path / "cache"
    installed = cache / "piper"
    installed.mkdir(parents=True)
    shutil.copy(piper_voice, installed / "tiny.onnx")
    shutil.copy(f"{piper_voice}.json", installed / "tiny.onnx.json")
    env = {"DEMOD_VOICE_CACHE_DIR": str(cache)}
    done = run_cli("models", "quantize", "tiny", "--method", "dynamic", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert (installed / "tiny-int8.onnx").is_file() and (installed / "tiny-int8.onnx.json").is_file()
    listed = run_cli("models", "list", env=env).stdout.decode()
    assert "tiny-int8" in listed
    done = run_cli("piper-infer", "tiny-int8", "Hello there.", "-o", str(tmp_path / "by-name.wav"), env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "by-name.wav")).frames > 0


@pytest.mark.parametrize("args, message", [
    (["no-such-voice"], "is not installed"),
    (["VOICE", "-o", "OUT/x.wav"], "as an .onnx file"),
    (["VOICE", "-o", "OUT/missing/x.onnx"], "does not exist"),
    (["VOICE", "--method", "fp4"], "invalid choice"),
])
def test_bad_requests_fail_in_one_line_and_write_nothing(piper_voice, tmp_path, args, message):
    args = [a.replace("VOICE", str(piper_voice)).replace("OUT", str(tmp_path)) for a in args]
    done = run_cli("models", "quantize", *args)
    err = done.stderr.decode()
    assert done.returncode != 0 and message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.onnx*"))
