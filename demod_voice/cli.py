"""The command line: parse, configure logging, turn arguments into typed requests, report errors once.

Each subcommand is a pair: ``_add_<name>`` declares it, ``_cmd_<name>`` turns the parsed
arguments into a request for the module that does the work. No engine is imported here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, Optional

from . import __version__
from .errors import DemodVoiceError

log = logging.getLogger("demod_voice")

PROG = "demod-voice"


class LogFormatter(logging.Formatter):
    """``demod-voice: warning: message`` (level omitted for info), one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return f"{PROG}: {message}"
        return f"{PROG}: {record.levelname.lower()}: {message}"


def configure_logging(level: int) -> None:
    """Send log records of ``level`` and above to stderr (stdout is kept for data)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    if level > logging.DEBUG:
        logging.getLogger("py.warnings").setLevel(logging.ERROR)


def log_level(args: argparse.Namespace) -> int:
    """-q: errors only; default: warnings; -v: info; -vv: debug."""
    if getattr(args, "quiet", False):
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(getattr(args, "verbose", 0), logging.DEBUG)


def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS defaults let the same options appear before and after the subcommand
    # without the subparser resetting what was given before it.
    group = parser.add_argument_group("global options")
    device = group.add_mutually_exclusive_group()
    device.add_argument("--gpu", dest="device", action="store_const", const="gpu", default=argparse.SUPPRESS,
                        help="run models on the GPU (falls back to CPU with a warning)")
    device.add_argument("--cpu", dest="device", action="store_const", const="cpu", default=argparse.SUPPRESS,
                        help="run models on the CPU (overrides the config file)")
    group.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help="config file (default: $XDG_CONFIG_HOME/demod-voice/config.yaml, or $DEMOD_VOICE_CONFIG)")
    group.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="say more (-vv for debug output and tracebacks)")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only print errors")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Voice cloning and text-to-speech: XTTS-v2 and Piper behind one command line.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 bad input, 4 missing dependency, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common)
    from .cli_manage import MANAGE_COMMANDS

    for add in (_add_xtts_zero_shot, _add_piper_infer, _add_piper_preprocess, _add_batch, *MANAGE_COMMANDS):
        add(sub, common)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = log_level(args)
    configure_logging(level)
    try:
        return args.func(args)
    except DemodVoiceError as err:
        log.debug("traceback:", exc_info=True)
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def load_settings(args: argparse.Namespace, overrides: Optional[dict[str, Any]] = None):
    """The effective config for this invocation: defaults < file < environment < flags."""
    from .config import load_config

    flags = {"device": getattr(args, "device", None), **(overrides or {})}
    config, path = load_config(getattr(args, "config", None), overrides=flags)
    log.debug("config file: %s", path or "none (defaults)")
    return config


# --- xtts-zero-shot ------------------------------------------------------------

XTTS_FLAGS = ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "speed", "max_new_tokens",
              "sentence_silence", "language", "model_dir")


def _add_xtts_zero_shot(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("xtts-zero-shot", parents=[common], help="clone a voice from reference audio with XTTS-v2",
                       description="Speak TEXT in the voice of the REFERENCE recording(s) with XTTS-v2 (17 languages). "
                                   "A good reference is 6-30 s of one person speaking clearly.")
    p.add_argument("references", nargs="*", metavar="REFERENCE", help="reference audio (wav, flac, ogg, mp3); several allowed")
    p.add_argument("text", metavar="TEXT", help="text to speak, or - to read it from stdin")
    p.add_argument("-o", "--output", default="output.wav",
                   help="output file (.wav .flac .ogg .mp3), or - to stream raw 16-bit PCM at 24 kHz (default: output.wav)")
    p.add_argument("-l", "--language", help="language of the text (default: en; see the README for the 17 codes)")
    p.add_argument("--voice", metavar="NAME", help="a saved voice profile (see 'voices add') instead of REFERENCE files")
    p.add_argument("--model-dir", metavar="DIR", help="local XTTS checkpoint folder (default: the released XTTS-v2)")
    p.add_argument("--accept-license", action="store_true", default=None,
                   help="accept the Coqui Public Model License (non-commercial) to download XTTS-v2")
    p.add_argument("--temperature", type=float, help="sampling temperature")
    p.add_argument("--top-k", type=int, help="top-k sampling")
    p.add_argument("--top-p", type=float, help="nucleus sampling")
    p.add_argument("--repetition-penalty", type=float, help="penalty on repeated audio tokens")
    p.add_argument("--length-penalty", type=float, help="length penalty")
    p.add_argument("--speed", type=float, help="speaking rate (> 1 faster)")
    p.add_argument("--max-new-tokens", type=int, help="cap on audio tokens per sentence")
    p.add_argument("--sentence-silence", type=float, help="seconds of silence between sentences")
    p.set_defaults(func=_cmd_xtts_zero_shot)


def _cmd_xtts_zero_shot(args: argparse.Namespace) -> int:
    from .audio import check_output
    from .backends.xtts import XttsRequest, make_job
    from .config import cache_root
    from .engine import run_one
    from .profiles import load_named
    from .text import load_text

    overrides = {f"xtts.{key}": getattr(args, key) for key in XTTS_FLAGS}
    overrides["xtts.accept_license"] = args.accept_license
    config = load_settings(args, overrides)
    cache = cache_root(config)
    request = XttsRequest(
        references=tuple(args.references),
        text=load_text(args.text),
        output=check_output(args.output),
        settings=config.xtts,
        cache_dir=str(cache),
        device=config.device,
        profile=load_named(cache, args.voice) if args.voice else None,
    )
    run_one(make_job(request), config.engine, log_level(args))
    return 0


# --- piper-infer -------------------------------------------------------------


def _add_piper_infer(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-infer", parents=[common], help="speak text with a Piper voice (.onnx)",
                       description="Speak TEXT with a Piper ONNX voice.")
    p.add_argument("model", metavar="MODEL", help="a voice name (see 'models list') or an .onnx file (its .onnx.json beside it)")
    p.add_argument("text", metavar="TEXT", help="text to speak, or - to read it from stdin")
    p.add_argument("-o", "--output", default="output.wav",
                   help="output file (.wav .flac .ogg .mp3), or - for raw 16-bit PCM on stdout (default: output.wav)")
    p.add_argument("--config-json", metavar="PATH", help="the voice's .onnx.json when it is not beside the model")
    p.add_argument("-s", "--speaker", help="speaker number or name (multi-speaker voices)")
    p.add_argument("--length-scale", type=float, help="phoneme length: > 1 slower, < 1 faster")
    p.add_argument("--noise-scale", type=float, help="generator noise")
    p.add_argument("--noise-w-scale", type=float, help="phoneme width noise")
    p.add_argument("--sentence-silence", type=float, help="seconds of silence between sentences")
    p.add_argument("--volume", type=float, help="volume multiplier")
    p.add_argument("--backend", choices=("piper", "tinygrad"),
                   help="engine: piper (onnxruntime, default) or tinygrad (experimental; needs clang on the CPU)")
    p.set_defaults(func=_cmd_piper_infer)


def _cmd_piper_infer(args: argparse.Namespace) -> int:
    from .audio import check_output
    from .backends.piper import PiperRequest, make_job
    from .config import cache_root
    from .engine import run_one
    from .models import resolve_piper_model
    from .text import load_text

    keys = ("length_scale", "noise_scale", "noise_w_scale", "sentence_silence", "volume", "backend")
    config = load_settings(args, {f"piper.{key}": getattr(args, key) for key in keys})
    text = load_text(args.text)
    output = check_output(args.output)
    model = resolve_piper_model(args.model, config.models.catalog_url, cache_root(config), config.models.auto_download,
                                progress=not getattr(args, "quiet", False))
    request = PiperRequest(
        model=model,
        text=text,
        output=output,
        settings=config.piper,
        device=config.device,
        cache_dir=str(cache_root(config)),
        config_json=args.config_json,
        speaker=args.speaker,
        backend=config.piper.backend,
    )
    run_one(make_job(request), config.engine, log_level(args))
    return 0


# --- piper-preprocess ----------------------------------------------------------


def _add_piper_preprocess(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-preprocess", parents=[common], help="prepare a recorded dataset for Piper training",
                       description="Turn a dataset (metadata.csv + wavs/) into what piper-tts's trainer reads: resampled, "
                                   "trimmed, normalised audio, phoneme ids, a voice config and a report of every dropped clip.")
    p.add_argument("--input-dir", required=True, metavar="DIR", help="dataset folder with metadata.csv and wavs/")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="where the prepared dataset goes (outside the input)")
    p.add_argument("--language", default="en-us", metavar="VOICE", help="espeak-ng voice for phonemes (default: en-us)")
    p.add_argument("--sample-rate", type=int, choices=(16000, 22050), help="16000 for low-quality voices (default: 22050)")
    p.add_argument("--layout", choices=("auto", "ljspeech", "multi"), default="auto",
                   help="three columns mean id|text|normalized (ljspeech) or id|speaker|text (multi); auto guesses")
    p.add_argument("--workers", type=int, metavar="N", help="processes (default: one per CPU core)")
    p.add_argument("--min-total-seconds", type=float, metavar="S", help="refuse datasets with less speech (default: 300)")
    p.set_defaults(func=_cmd_piper_preprocess)


def _cmd_piper_preprocess(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from .preprocess import PreprocessRequest, Settings, run_preprocess

    config = load_settings(args, {"preprocess.sample_rate": args.sample_rate, "preprocess.workers": args.workers,
                                  "preprocess.min_total_seconds": args.min_total_seconds})
    p = config.preprocess
    output_dir = Path(args.output_dir).absolute()
    if not output_dir.parent.is_dir():
        from .errors import InputError

        raise InputError(f"the parent of the output directory, {output_dir.parent}, does not exist")
    request = PreprocessRequest(
        input_dir=Path(args.input_dir).absolute(),
        output_dir=output_dir,
        settings=Settings(p.sample_rate, args.language, p.min_clip_seconds, p.max_clip_seconds),
        layout=args.layout,
        workers=p.workers or os.cpu_count() or 1,
        min_total_seconds=p.min_total_seconds,
        progress=not getattr(args, "quiet", False),
    )
    report = run_preprocess(request)
    if not getattr(args, "quiet", False):
        print(f"{PROG}: ready for training: python -m piper.train fit --data.csv_path {output_dir / 'metadata.csv'} "
              f"--data.audio_dir {output_dir / 'wavs'} --data.dataset_type phoneme_ids --data.espeak_voice {args.language} "
              f"--data.config_path {output_dir / 'config.json'} --data.cache_dir {output_dir / 'cache'} "
              f"--data.voice_name VOICE --model.sample_rate {report['sample_rate']} "
              f"--model.num_speakers {max(1, len(report['hours_per_speaker']))} --data.batch_size 16", file=sys.stderr)
    return 0


# --- batch -------------------------------------------------------------------


def _add_batch(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("batch", parents=[common], help="synthesise every row of a CSV file",
                       description="Synthesise the rows of BATCH_FILE (columns: reference, text, output, language, speaker, "
                                   "backend, model, voice). Every row is checked first; finished rows are skipped on a rerun.")
    p.add_argument("batch_file", metavar="BATCH_FILE", help="CSV file with a header row")
    p.add_argument("--output-dir", metavar="DIR", default=".", help="where relative outputs go; nothing is written outside it")
    p.add_argument("--model", metavar="VOICE", help="Piper voice for rows with no model column")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes per model (default: engine.workers)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first row that fails")
    p.add_argument("--dry-run", action="store_true", help="check every row, synthesise nothing")
    p.add_argument("--report", metavar="FILE", help="write a JSON-lines report (row, status, output, duration, seconds, error)")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .batch import BatchRequest, outcome_error, run_batch
    from .paths import check_output_path

    config = load_settings(args, {"engine.workers": args.workers})
    request = BatchRequest(
        csv_path=Path(args.batch_file).absolute(),
        output_dir=Path(args.output_dir).absolute(),
        config=config,
        workers=config.engine.workers,
        model=args.model,
        fail_fast=args.fail_fast,
        dry_run=args.dry_run,
        report=check_output_path(Path(args.report)) if args.report else None,
        progress=not getattr(args, "quiet", False),
        log_level=log_level(args),
    )
    outcome = run_batch(request)
    if args.dry_run:
        return 0
    error = outcome_error(outcome)
    if error is not None:
        raise error
    return 0
