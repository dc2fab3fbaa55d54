"""INT8 copies of Piper voices: ``demod-voice models quantize VOICE [-o OUT]`` (reached through
:meth:`PiperSide.quantize <demod_voice.backends.piper.plugin.PiperSide.quantize>`).

onnxruntime's quantization tools, two ways:

* ``static`` (default): weights and activations of every convolution in INT8 (QDQ format, weights
  per output channel), activation ranges calibrated by running the voice on phoneme ids made from
  sample text. onnxruntime then runs the convolutions with integer kernels (VNNI/AMX where the CPU
  has them).
* ``dynamic``: INT8 weights, activation ranges found at run time (``ConvInteger``); no calibration.

The float graph is first patched for batching (:mod:`demod_voice.backends.piper.batching`), so the
INT8 copy runs batched sentences too, and it is written with its ``.onnx.json`` beside it (the
``.onnx.json`` first: a visible ``.onnx`` always has its config). The copy is an ordinary Piper
voice: usable by path, and by name when written among the installed voices.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends.piper import graph
from demod_voice.backends.piper.request import locate_voice
from demod_voice.backends.plugin import Quantized
from demod_voice.errors import DependencyError, InputError
from demod_voice.paths import check_output_path

log = logging.getLogger(__name__)

METHODS = ("static", "dynamic")

CALIBRATION_TEXT = (
    "The quick brown fox jumps over the lazy dog. How are you today? I would like a cup of tea, please. "
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells. "
    "One, two, three, four, five: numbers are spoken too. Yes. "
    "A longer sentence, with a few clauses and commas, gives the calibration the ranges that long sentences reach. "
    "Where did you put the keys? Thank you very much!"
)
"""Sample text whose phoneme ids calibrate the activation ranges (static quantization)."""

QUANTIZED_OPS = ("Conv", "ConvTranspose")
"""Operators made INT8: nearly all of a Piper voice's weights and compute are convolutions."""


def default_output(model: Path) -> Path:
    """``voice.onnx`` -> ``voice-int8.onnx`` beside it (so an installed voice's copy has a name too)."""
    return model.with_name(f"{model.name[: -len('.onnx')]}-int8.onnx")


def quantize_voice(model: Path, output: Optional[Path] = None, method: str = "static", text: str = CALIBRATION_TEXT,
                   config_path: Optional[Path] = None) -> Quantized:
    """Write an INT8 copy of the Piper voice ``model`` (with its ``.onnx.json``) to ``output``."""
    if method not in METHODS:
        raise InputError(f"unknown quantization method '{method}'; use one of: {', '.join(METHODS)}")
    _check_dependencies()
    model, config_path = locate_voice(str(model), str(config_path) if config_path else None)
    output = check_output_path(output or default_output(model))
    if output.suffix != ".onnx":
        raise InputError(f"the INT8 voice must be written as an .onnx file, not {output.name}")
    if output == model:
        raise InputError(f"{output} is the float voice itself; choose another output")
    voice_config = json.loads(config_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="dv-quantize-", dir=output.parent) as work:
        prepared = Path(work) / "float.onnx"
        mark = _prepare(model, prepared)
        quantized = Path(work) / "int8.onnx"
        with _quiet_advice():
            if method == "static":
                _static(prepared, quantized, calibration_feeds(voice_config, text))
            else:
                _dynamic(prepared, quantized)
        _restore_mark(quantized, mark)
        voice_config["quantization"] = {"method": method, "source": model.name, "ops": list(QUANTIZED_OPS)}
        config_out = Path(f"{output}.json")
        partial = Path(work) / "config.json"
        partial.write_text(json.dumps(voice_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, config_out)
        os.replace(quantized, output)
    return Quantized(output, config_out, method, model.stat().st_size, output.stat().st_size)


def _check_dependencies() -> None:
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime", "piper") if importlib.util.find_spec(name) is None]
    if missing:
        raise DependencyError(f"quantizing a voice needs {', '.join(missing)}; install them with: pip install 'demod-voice[piper]'")


def _prepare(model: Path, target: Path) -> Optional[tuple[str, str]]:
    """The float graph prepared for batching (durations exposed; decoder masks only where it cannot
    be split at load), saved to ``target``; the metadata mark to carry over."""
    import onnx

    try:
        model_proto = onnx.load(str(model))
    except Exception as err:  # noqa: BLE001 - onnx raises its own untyped errors for a damaged file
        raise InputError(f"cannot read {model} as an ONNX model ({err}); re-download the voice") from None
    durations = graph.expose_durations(model_proto)
    if durations and graph.split_graph(model_proto, durations) is None:
        graph.add_masks(model_proto)
    onnx.save(model_proto, str(target))
    return (graph.MARK, durations) if durations else None


def _restore_mark(path: Path, mark: Optional[tuple[str, str]]) -> None:
    """Quantization rewrites the graph; put the batching mark back in its metadata if it was lost."""
    import onnx

    if mark is None:
        return
    proto = onnx.load(str(path))
    if mark[0] not in {p.key for p in proto.metadata_props}:
        entry = proto.metadata_props.add()
        entry.key, entry.value = mark
        onnx.save(proto, str(path))


def calibration_feeds(voice_config: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """One ``session.run`` input per sentence of ``text``, as the voice sees it (speakers in turn)."""
    import numpy as np
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    config = PiperConfig.from_dict(voice_config)
    voice = PiperVoice(session=None, config=config)
    sentences = [voice.phonemes_to_ids(p) for p in voice.phonemize(text) if p]
    if not sentences:
        raise InputError("the calibration text gave no phonemes for this voice's language; pass text in its language")
    scales = np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32)
    feeds = []
    for index, ids in enumerate(sentences):
        feed = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64), "scales": scales}
        if config.num_speakers > 1:
            feed["sid"] = np.array([index % config.num_speakers], dtype=np.int64)
        feeds.append(feed)
    return feeds


@contextlib.contextmanager
def _quiet_advice() -> Iterator[None]:
    """onnxruntime's quantizer logs a suggestion ("consider pre-processing") to the root logger on
    every run; it says nothing about the voice, so it is kept off the user's screen."""
    root = logging.getLogger()

    def advice(record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()

    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _static(source: Path, target: Path, feeds: list[dict[str, Any]]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> Optional[dict[str, Any]]:
            return next(self.feeds, None)

    quantize_static(
        str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )


def _dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), op_types_to_quantize=list(QUANTIZED_OPS), weight_type=QuantType.QUInt8)
