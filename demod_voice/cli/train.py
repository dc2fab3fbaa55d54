"""``piper-train`` and ``piper-export``: arguments to typed requests for :mod:`demod_voice.training.train`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from demod_voice.cli.common import log_level
from demod_voice.training.heard import EpochListener
from demod_voice.training.quality import PUBLIC


def _add_piper_train(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-train", parents=[common], help="train a Piper voice on a prepared dataset",
                       description="Train a Piper voice on a piper-preprocess output folder with piper-tts's own trainer (run in a "
                                   "separate process): checks first, one progress line per epoch, the newest checkpoints kept, "
                                   "the voice exported with sample sentences every --export-every epochs, and <name>.onnx at the end. "
                                   "Fine-tuning from a base checkpoint (--base) needs far less data and time than training from scratch.")
    p.add_argument("--dataset", required=True, metavar="DIR", help="piper-preprocess output folder")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="where checkpoints, samples and the voice go")
    p.add_argument("--base", metavar="CHECKPOINT", help="Piper .ckpt to fine-tune from, or a released voice's name (en_US-lessac-medium) "
                                                     "to download its checkpoint (recommended; default: train from scratch)")
    p.add_argument("--hub-url", default=None, help=argparse.SUPPRESS)  # a mirror of huggingface.co (and the tests' server)
    p.add_argument("--epochs", type=int, default=500, metavar="N", help="train until N epochs are done (default: 500)")
    p.add_argument("--batch-size", type=int, metavar="N", help="clips per step (default: 16, or the run's own with --resume; "
                                                                "lower it when memory runs out)")
    # "tiny" is accepted for tests and quick trials but not advertised.
    p.add_argument("--quality", choices=(*PUBLIC, "tiny"), metavar="{" + ",".join(PUBLIC) + "}",
                   help="voice size (default: the base's, or medium); x_low and low are 16000 Hz voices")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its newest checkpoint")
    p.add_argument("--name", metavar="NAME", help="voice name: NAME.onnx (default: the output folder's name)")
    p.add_argument("--export-every", type=int, metavar="N",
                   help="export the voice and speak samples into samples/epoch-K/ every N epochs (default: 50, or the run's own "
                        "with --resume; 0: only at the end)")
    p.add_argument("--keep-checkpoints", type=int, metavar="N",
                   help="newest checkpoints kept (default: 2, or the run's own with --resume)")
    p.add_argument("--sample-text", action="append", metavar="TEXT", help="a sentence to speak at each export (repeatable)")
    p.add_argument("--precision", choices=("32", "16-mixed", "bf16-mixed"), default="32", help="GPU precision (default: 32)")
    p.add_argument("--validation-split", type=float, metavar="F", help="share of clips kept for validation (default: 0.05; a "
                                                                      "--resume keeps the run's own)")
    p.add_argument("--install", action="store_true", help="also install the voice into the voice cache as NAME")
    p.add_argument("--asr-model", metavar="NAME", help="Whisper model that hears each export's samples for its WER: a faster-whisper "
                                                     "name, hub id or folder (default: tiny.en, packaged, for English; tiny, "
                                                     "downloaded on first use, for other languages)")
    p.add_argument("--no-wer", action="store_true", help="do not score each export's samples with a speech recogniser")
    p.set_defaults(func=_cmd_piper_train)


def _positive(value: Optional[int], flag: str, minimum: int = 1) -> Optional[int]:
    from demod_voice.errors import UsageError

    if value is not None and value < minimum:
        raise UsageError(f"{flag} must be at least {minimum}")
    return value


def _cmd_piper_train(args: argparse.Namespace) -> int:
    from demod_voice.cli.common import load_settings
    from demod_voice.config import cache_root
    from demod_voice.errors import UsageError
    from demod_voice.models.registry import EMBEDDED_VOICES, piper_dir
    from demod_voice.training.bases import HUB
    from demod_voice.training.train import TrainRequest, check_resumed_base, run_training, voice_name

    if args.validation_split is not None and not 0.0 <= args.validation_split < 0.5:
        raise UsageError("--validation-split must be between 0 and 0.5")
    output_dir = Path(args.output_dir).expanduser().absolute()
    config = load_settings(args)
    if args.resume and args.base:  # the run's own base: "the same command with --resume", as a stop tells a fine-tune
        check_resumed_base(output_dir, args.base, cache_root(config))
    name = voice_name(output_dir, args.name, args.resume)
    if args.install and (name == config.piper.default_voice or name in EMBEDDED_VOICES):
        # installed under that name it would speak for every command that names that voice, or none
        what = "the default voice (piper.default_voice)" if name == config.piper.default_voice else "a packaged voice"
        raise UsageError(f"'{name}' is {what}; install the trained voice under another --name (and make it the default "
                         "with piper.default_voice)")
    request = TrainRequest(
        dataset_dir=Path(args.dataset).expanduser().absolute(),
        output_dir=output_dir,
        name=name,
        epochs=_positive(args.epochs, "--epochs"),
        batch_size=_positive(args.batch_size, "--batch-size"),
        quality=args.quality,
        base=None if args.resume else args.base,
        resume=args.resume,
        export_every=_positive(args.export_every, "--export-every", 0),
        keep_checkpoints=_positive(args.keep_checkpoints, "--keep-checkpoints"),
        sentences=tuple(args.sample_text or ()),
        device=getattr(args, "device", None) or "auto",
        precision=args.precision,
        validation_split=args.validation_split,
        install_to=piper_dir(cache_root(config)) if args.install else None,
        cache=cache_root(config),
        hub=args.hub_url or HUB,
        progress=not getattr(args, "quiet", False),
        listen=None if args.no_wer else EpochListener(config, log_level(args), args.asr_model),
    )
    outcome = run_training(request)
    print(outcome.installed or outcome.voice)
    return 0


def _add_piper_export(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-export", parents=[common], help="export a Piper training checkpoint to an .onnx voice",
                       description="Export a Piper training checkpoint (.ckpt, from piper-train or anywhere) to a voice: VOICE.onnx "
                                   "(opset 15, Piper's input names) and VOICE.onnx.json. The checkpoint is read as plain data.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="the .ckpt file")
    p.add_argument("-o", "--output", required=True, metavar="VOICE.onnx", help="where the voice goes")
    p.add_argument("--voice-config", metavar="JSON", help="the training's voice config (the dataset's config.json); default: "
                                                      "the piper-train run's when the checkpoint is in its checkpoints/, else "
                                                      "built from the checkpoint with the default phoneme map")
    p.add_argument("--language", metavar="VOICE", help="espeak-ng voice when no --voice-config is given (default: the run's, "
                                                     "else en-us)")
    p.set_defaults(func=_cmd_piper_export)


def _cmd_piper_export(args: argparse.Namespace) -> int:
    from demod_voice.paths import check_output_path
    from demod_voice.training.train import ExportRequest, run_export

    output = check_output_path(Path(args.output), example="voice.onnx")
    if output.suffix != ".onnx":
        from demod_voice.errors import UsageError

        raise UsageError(f"the voice file must end in .onnx (got {output.name}); its config is written beside it as .onnx.json")
    request = ExportRequest(
        checkpoint=Path(args.checkpoint).expanduser().absolute(),
        output=output,
        config=Path(args.voice_config).expanduser().absolute() if args.voice_config else None,
        language=args.language,
        progress=not getattr(args, "quiet", False),
    )
    print(run_export(request))
    return 0
