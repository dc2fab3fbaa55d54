"""Turning trained weights into a Piper voice: ``.onnx`` + ``.onnx.json``, and sample sentences spoken with it.

Worker side (imports torch). The export is piper-tts's own (``piper.train.export_onnx``) with one
change: ``dynamo=False``. torch's default exporter since 2.9 (dynamo) fails on this graph; the
classic one gives the opset-15 graph with the input and output names every released voice has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError
from demod_voice.paths import atomic_path, atomic_paths, os_error

log = logging.getLogger(__name__)

OPSET = 15
INPUT_NAMES = ["input", "input_lengths", "scales", "sid"]
OUTPUT_NAMES = ["output"]
CRITICS = ("MultiPeriodDiscriminator", "MultiResolutionDiscriminator")
"""Piper's discriminators, which ``VitsModel`` builds beside the generator; an export needs none."""
ENGLISH_SAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "Would you like a cup of tea, or would you rather have coffee?",
    "On the twelfth of May, forty-two people walked eleven miles in the rain.",
)
"""Spoken by English voices at every export; other languages speak the first lines of their dataset."""


def generator(hparams: dict[str, Any], state: dict[str, Any]) -> Any:
    """Piper's inference generator with ``state``'s weights, weight norm folded in, in eval mode.

    :class:`InputError` when ``state`` lacks some of the generator's weights or holds them in other shapes: loaded
    leniently, the missing ones kept their random start and the voice exported spoke noise without a word said.
    """
    import torch
    from piper.train.vits import lightning

    # Only the generator is exported: piper's critic (46.7 M parameters, 1.3 s of a tiny voice's export to build and
    # initialise) and a tiny run's narrow one (training/critic.py, other shapes) are left out of the model built here.
    with _no_critics(lightning):
        model = lightning.VitsModel(**{**hparams, "mos_metric": None})
    gen = model.model_g
    weights = {k.removeprefix("model_g."): v for k, v in state.items() if k.startswith("model_g.")}
    _check_weights(gen.state_dict(), weights)
    gen.load_state_dict(weights, strict=False)  # extra weights (none in piper's checkpoints) are not the voice's
    gen.eval()
    with torch.no_grad():
        gen.dec.remove_weight_norm()
    return gen


@contextlib.contextmanager
def _no_critics(lightning: Any) -> Iterator[None]:
    """Piper's ``VitsModel`` built in this block gets empty modules for its critics (training only)."""
    import torch

    critics = {name: getattr(lightning, name) for name in CRITICS if hasattr(lightning, name)}
    try:
        for name in critics:
            setattr(lightning, name, lambda **_: torch.nn.Module())
        yield
    finally:
        for name, cls in critics.items():
            setattr(lightning, name, cls)


def _check_weights(own: dict[str, Any], given: dict[str, Any]) -> None:
    """:class:`InputError` naming the first generator weight that ``given`` lacks or holds in another shape."""
    missing = [name for name in own if name not in given]
    if missing:
        raise InputError(f"the checkpoint lacks {len(missing)} of the voice's {len(own)} generator weights (model_g."
                         f"{missing[0]}{', ...' if len(missing) > 1 else ''}): it is not a whole Piper checkpoint; export "
                         "another one (an earlier epoch's)")
    for name, tensor in own.items():
        if tuple(given[name].shape) != tuple(tensor.shape):
            raise InputError(f"the checkpoint's weight model_g.{name} is {list(given[name].shape)}, but its hyper-parameters "
                             f"make it {list(tensor.shape)}: its weights and settings are of different voices; export a "
                             "checkpoint that piper-train or Piper's trainer saved unchanged")


def export_onnx(gen: Any, path: Path) -> None:
    """Write ``gen`` to ``path`` as a Piper voice graph."""
    import torch

    def infer_forward(text, text_lengths, scales, sid=None):
        audio = gen.infer(text, text_lengths, noise_scale=scales[0], length_scale=scales[1], noise_scale_w=scales[2], sid=sid)[0]
        return audio.unsqueeze(1)

    gen.forward = infer_forward
    with torch.random.fork_rng(devices=[]):  # the dummy input must not move the training's random stream
        torch.manual_seed(1234)
        sequence = torch.randint(low=0, high=gen.n_vocab, size=(1, 50), dtype=torch.long)
    sid = torch.LongTensor([0]) if gen.n_speakers > 1 else None
    args = (sequence, torch.LongTensor([sequence.size(1)]), torch.FloatTensor([0.667, 1.0, 0.8]), sid)
    torch.onnx.export(
        model=gen, args=args, f=str(path), opset_version=OPSET, dynamo=False,
        input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
        dynamic_axes={"input": {0: "batch_size", 1: "phonemes"}, "input_lengths": {0: "batch_size"},
                      "output": {0: "batch_size", 2: "time"}},
    )


def voice_config(dataset_config: Optional[dict[str, Any]], hparams: dict[str, Any], language: str) -> dict[str, Any]:
    """The ``.onnx.json``: the training's own voice config when there is one, else one built from the checkpoint."""
    if dataset_config is not None:
        config = json.loads(json.dumps(dataset_config))
        config["num_symbols"] = max(int(config.get("num_symbols", 0)), int(hparams["num_symbols"]))
        return config
    from piper.config import PhonemeType, PiperConfig
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    speakers = int(hparams.get("num_speakers", 1))
    return PiperConfig(
        num_symbols=int(hparams["num_symbols"]), num_speakers=speakers, sample_rate=int(hparams.get("sample_rate", 22050)),
        espeak_voice=language, phoneme_id_map=DEFAULT_PHONEME_ID_MAP, phoneme_type=PhonemeType.ESPEAK,
        speaker_id_map={f"speaker_{i}": i for i in range(speakers)} if speakers > 1 else {}, piper_version="1.8.0",
    ).to_dict()


def check_fits(config: dict[str, Any], info: dict[str, Any], name: str) -> None:
    """:class:`InputError` when the voice config ``name`` is another voice's than the checkpoint's (``info``, from
    :func:`~demod_voice.training.checkpoints.describe`): a 22050 Hz voice exported with a 16 kHz dataset's config spoke
    slow and low, and one of one speaker exported with a config of three was refused by piper-infer."""
    rate, speakers = (config.get("audio") or {}).get("sample_rate"), config.get("num_speakers", 1)
    if rate != info["sample_rate"] or speakers != info["num_speakers"]:
        raise InputError(f"the voice config {name} is for a {rate} Hz voice of {speakers} speaker(s), but the checkpoint is a "
                         f"{info['sample_rate']} Hz voice of {info['num_speakers']}: give its own training's config (the "
                         "dataset's config.json), or leave out --voice-config")


def write_voice(gen: Any, onnx_path: Path, config: dict[str, Any]) -> Path:
    """Export ``gen`` and its config beside it, both or neither: on a failure the voice that was there stays as it was."""
    try:
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_paths(onnx_path, Path(f"{onnx_path}.json")) as (onnx_tmp, config_tmp):
            config_tmp.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            export_onnx(gen, onnx_tmp)
    except OSError as err:
        raise os_error(f"cannot write the voice {onnx_path}", err) from None
    return onnx_path


def sample_sentences(config: dict[str, Any], dataset_texts: Sequence[str], given: Sequence[str] = ()) -> list[str]:
    """What to speak at each export: ``given``, else English sentences for English voices, else dataset lines."""
    if given:
        return list(given)
    if str(config.get("espeak", {}).get("voice", "")).startswith("en"):
        return list(ENGLISH_SAMPLES)
    return list(dataset_texts[:3])


def speak_samples(onnx_path: Path, folder: Path, sentences: Sequence[str]) -> list[Path]:
    """Speak each sentence with the exported voice (through piper-tts, as users will) into ``folder``.

    Speakers take turns in a multi-speaker voice.
    """
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(onnx_path)
    speakers = max(1, voice.config.num_speakers)
    written = []
    for i, text in enumerate(sentences, 1):
        target = folder / f"sample-{i}.wav"
        options = SynthesisConfig(speaker_id=(i - 1) % speakers if speakers > 1 else None)
        with atomic_path(target) as tmp, wave.open(str(tmp), "wb") as wav:
            voice.synthesize_wav(text, wav, syn_config=options)
        written.append(target)
    return written
