"""Piper's request side (parent): reads only the small ``.onnx.json`` to check a request and
build its job before any worker starts; never imports piper or onnxruntime."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.config import PiperSettings
from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob, files_version
from demod_voice.errors import InputError
from demod_voice.speech_text.prepare import Prepared, TextOptions, for_job

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("num_speakers", "audio.sample_rate", "espeak.voice", "phoneme_id_map")
VALUE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_speakers": (lambda v: type(v) is int and v >= 1, "a whole number of at least 1"),
    "audio.sample_rate": (lambda v: type(v) is int and v > 0, "a whole number of Hz"),
    "espeak.voice": (lambda v: isinstance(v, str) and v != "", "an espeak-ng voice name"),
    "phoneme_id_map": (lambda v: isinstance(v, dict) and v != {}, "a map of phonemes to ids"),
    # optional: the voice's own defaults ("noise_scale": "x" failed each sentence, exit 1)
    "inference.noise_scale": (lambda v: _scale(v, 0.0), "a number of at least 0"),
    "inference.length_scale": (lambda v: _scale(v, 0.01), "a number of at least 0.01"),
    "inference.noise_w": (lambda v: _scale(v, 0.0), "a number of at least 0"),
}
"""What each required key must hold: a wrong type failed deep in synthesis (``TypeError``, exit 1)."""
ROWS_PER_BATCH = 4
"""Batch rows handed to a worker at once, in batches' worth (``piper.batch_size`` each): enough
rows to group sentences of similar length, few enough that every worker gets a share."""


@dataclass(frozen=True)
class PiperOptions:
    """Per-job synthesis settings; ``None`` scales mean "the voice's own ``inference`` values"."""

    speaker_id: Optional[int] = None
    """Speaker index for multi-speaker voices."""
    length_scale: Optional[float] = None
    """Phoneme length scale (> 1 slower)."""
    noise_scale: Optional[float] = None
    """Generator noise."""
    noise_w_scale: Optional[float] = None
    """Phoneme width noise."""
    sentence_silence: float = 0.0
    """Seconds of silence inserted between sentences."""
    volume: float = 1.0
    """Volume multiplier."""
    batch_size: int = 8
    """Most sentences that go through the voice in one ``session.run``."""


@dataclass(frozen=True)
class PiperRequest:
    """A ``piper-infer`` request as typed values, built by the CLI."""

    model: str
    """Path of the ``.onnx`` voice."""
    text: str
    """Text to speak."""
    output: str
    """Checked output target (absolute path or ``-``)."""
    settings: PiperSettings
    """Effective scales, silence and volume (flags over config)."""
    device: str = "cpu"
    """Requested device."""
    cache_dir: Optional[str] = None
    """Where optimised graphs may be cached."""
    config_json: Optional[str] = None
    """The voice's ``.onnx.json`` when it is not beside the model."""
    speaker: Optional[str] = None
    """Speaker number or name."""
    backend: str = "piper"
    """Engine that runs the voice: ``piper`` (onnxruntime) or ``tinygrad``."""
    reading: TextOptions = TextOptions()
    """How the text is read: normalisation, lexicon (phonemes), SSML (:mod:`demod_voice.speech_text`)."""
    version: tuple[int, ...] = ()
    """The voice files' version a server resolved the voice with (``LoadSpec.version``): every job of one answer runs
    on it, even if the files are replaced meanwhile; ``()``: read now."""


def make_job(request: PiperRequest) -> SynthesisJob:
    """Check the voice files and speaker and return the job; raise :class:`InputError` on any problem."""
    model, config_path = locate_voice(request.model, request.config_json)
    voice = read_voice_config(config_path)
    settings = request.settings
    options = PiperOptions(
        speaker_id=resolve_speaker(voice, request.speaker, config_path),
        length_scale=settings.length_scale,
        noise_scale=settings.noise_scale,
        noise_w_scale=settings.noise_w_scale,
        sentence_silence=settings.sentence_silence,
        volume=settings.volume,
        batch_size=settings.batch_size,
    )
    spec = LoadSpec(request.backend, str(model), request.device, str(config_path), request.cache_dir,
                    version=request.version or voice_version(model, config_path))
    # Rows with one voice and the same options may be handed to one worker together, and their
    # sentences batched; a streamed job goes alone, so its first sentence is not held back.
    together = None if request.output == STDOUT else hashlib.sha256(repr((spec, options)).encode()).hexdigest()
    text = prepared_text(request, voice)
    return SynthesisJob(spec=spec, text=text.text, output=request.output, options=options, segments=text.segments,
                        together=together if text.segments is None else None, together_limit=ROWS_PER_BATCH * settings.batch_size)


def prepared_text(request: PiperRequest, voice: dict[str, Any]) -> Prepared:
    """The request's text as the voice reads it: an espeak voice takes a lexicon word's phonemes as a ``[[ ]]``
    block (piper-tts turns it straight into phoneme ids), checked against the voice's phoneme map."""
    espeak = voice.get("phoneme_type", "espeak") == "espeak"
    return for_job(request.text, str(voice["espeak"]["voice"]), request.reading, reads_phonemes=espeak,
                   known_phonemes=voice["phoneme_id_map"] if espeak else None)


def locate_voice(model: str, config_json: Optional[str]) -> tuple[Path, Path]:
    """Absolute paths of the ``.onnx`` and its ``.onnx.json``."""
    path = Path(model).expanduser().absolute()
    if model.endswith(".onnx.json"):
        raise InputError(f"'{model}' is the voice's config; give the .onnx file beside it as MODEL")
    if path.is_dir():  # a training run's folder, say
        inside = sorted(path.glob("*.onnx"))
        such = f": {inside[0]}" if len(inside) == 1 else ""
        raise InputError(f"voice model {path} is a folder; give the voice's .onnx file in it{such}")
    if path.suffix == ".ckpt" and path.is_file():
        raise InputError(f"{path} is a training checkpoint, not a voice: export it first, demod-voice piper-export {model} "
                         "-o voice.onnx, and give that voice.onnx")
    if not path.is_file():
        if "/" not in model and not path.suffix:
            raise InputError(f"voice '{model}' not found: give the path of its .onnx file (with the .onnx.json beside it)")
        if Path(f"{path}.onnx").is_file():
            raise InputError(f"voice model {path} not found; did you mean {model}.onnx?")
        raise InputError(f"voice model {path} not found; check the path, or name an installed voice ('demod-voice models list')")
    config = Path(config_json).expanduser().absolute() if config_json else Path(f"{path}.json")
    if config_json and not config.is_file():
        raise InputError(f"voice config {config} not found: check the path given for the voice's .onnx.json")
    if not config.is_file():
        raise InputError(f"voice config {config} not found: a Piper voice needs its .onnx.json beside the .onnx "
                         "(piper-infer also takes --config-json PATH)")
    return path, config


def voice_version(model: Path, config: Path) -> tuple[int, ...]:
    """The version of a voice's ``.onnx`` and ``.onnx.json`` (:func:`~demod_voice.engine.jobs.files_version`)."""
    try:
        return files_version(str(model), str(config))
    except OSError:
        raise InputError("the voice's files were removed or replaced while they were read; try again") from None


def _scale(value: Any, least: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= least


def read_voice_config(path: Path) -> dict[str, Any]:
    """Parse and sanity-check a Piper ``.onnx.json`` (cached while the file stays the same: a batch names the same voice
    many times, a server every request; one replaced, re-downloaded or re-exported, was read again only at a restart)."""
    try:
        stamp = files_version(str(path))
    except OSError:
        stamp = ()  # read, to say why it cannot be
    return _read_voice_config(path, stamp)


@functools.lru_cache(maxsize=64)
def _read_voice_config(path: Path, stamp: tuple[int, ...]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"voice config {path} is not readable JSON ({err}); re-download the voice's .onnx.json") from None
    if not isinstance(data, dict):
        raise InputError(f"voice config {path} is not a JSON object; is it a Piper .onnx.json?")
    for dotted in VALUE_CHECKS:
        node: Any = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None and dotted not in REQUIRED_KEYS:
            continue
        if node is None:
            raise InputError(f"voice config {path} lacks '{dotted}'; is it a Piper .onnx.json?")
        if not VALUE_CHECKS[dotted][0](node):
            raise InputError(f"voice config {path} has '{dotted}' = {json.dumps(node)[:40]}, not {VALUE_CHECKS[dotted][1]}; "
                             f"re-download the voice's .onnx.json")
    return data


def resolve_speaker(voice: dict[str, Any], speaker: Optional[str], config_path: Path) -> Optional[int]:
    """Turn ``--speaker`` (a number or a name from the voice's speaker map) into a speaker index."""
    count = int(voice.get("num_speakers", 1))
    names: dict[str, int] = voice.get("speaker_id_map") or {}
    if speaker is None or speaker == "":
        return None
    if speaker in names:
        return int(names[speaker])
    if speaker.isdigit() and int(speaker) < count:
        return int(speaker) if count > 1 else None
    if count <= 1:
        raise InputError(f"this voice has a single speaker: leave the speaker out (it was '{speaker}')")
    listed = f" or a name ({', '.join(sorted(names, key=names.get)[:20])})" if names else ""  # not 'or a name (none)'
    raise InputError(f"speaker '{speaker}' is not in this voice ({config_path.name}): use a number from 0 to {count - 1}{listed}")


