"""``xtts-zero-shot`` and ``piper-infer``: arguments to typed requests, one job each."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demod_voice.audio.text import SentenceStream, check_text, load_text, read_as_it_comes
from demod_voice.audio.writer import check_output, open_sink
from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput
from demod_voice.cli.common import load_settings, log_level, show_progress
from demod_voice.cli.lexicon import add_reading_flags, reading_from_args
from demod_voice.config import cache_root
from demod_voice.engine.in_turn import run_in_turn
from demod_voice.engine.jobs import STDOUT
from demod_voice.engine.service import run_one
from demod_voice.errors import InputError, UsageError
from demod_voice.speech_text.ssml import SSML_END, SSML_STARTS
from demod_voice.voices.profiles import installs_as, is_profile_file

log = logging.getLogger(__name__)

XTTS = "xtts"
"""The backend ``xtts-zero-shot`` speaks with (``piper-infer``'s is ``piper.backend``)."""

XTTS_FLAGS = ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "speed", "max_new_tokens",
              "sentence_silence", "model_dir")
"""Flags that override their ``xtts`` setting. ``-l`` is not one: it goes with the request, over a voice profile's own
language, which goes over ``xtts.language`` (the config's language spoke a French profile in English)."""


def _add_xtts_zero_shot(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("xtts-zero-shot", parents=[common], help="clone a voice from reference audio with XTTS-v2",
                       description="Speak TEXT in the voice of the REFERENCE recording(s) with XTTS-v2 (17 languages). "
                                   "A good reference is 6-30 s of one person speaking clearly.")
    p.add_argument("references", nargs="*", metavar="REFERENCE", help="reference audio (wav, flac, ogg, mp3, m4a/aac...); several allowed")
    p.add_argument("text", metavar="TEXT", help="text to speak, or - to read it from stdin")
    p.add_argument("-o", "--output", default="output.wav",
                   help="output file (.wav .flac .ogg .mp3), or - to stream raw 16-bit PCM at 24 kHz (default: output.wav)")
    p.add_argument("-l", "--language", help="language of the text (default: the --voice profile's own, else xtts.language, en; "
                                            "the 17 codes are in docs/cli.md)")
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
    add_reading_flags(p)
    p.set_defaults(func=_cmd_xtts_zero_shot)


def _cmd_xtts_zero_shot(args: argparse.Namespace) -> int:
    overrides = {f"xtts.{key}": getattr(args, key) for key in XTTS_FLAGS}
    overrides["xtts.accept_license"] = args.accept_license
    config = load_settings(args, overrides)
    if args.text != "-" and Path(args.text).suffix.lower() in AUDIO_SUFFIXES and Path(args.text).is_file():
        raise UsageError(f"'{args.text}' looks like a reference recording, not text: give the text to speak after the "
                         "references (xtts-zero-shot REFERENCE... TEXT)")
    _refuse_a_path_as_text(args.text, "xtts-zero-shot REFERENCE...")
    if args.voice and is_profile_file(Path(args.voice)):  # was "'alice.voice.npz' cannot name a voice: use letters, ..."
        raise UsageError(f"{args.voice} is a voice profile file: --voice takes an installed voice's name; install it first "
                         f"(demod-voice voices import {shlex.quote(args.voice)}), then use --voice {installs_as(Path(args.voice))}")
    values = {"reference": "|".join(args.references), "voice": args.voice or "", "language": args.language or ""}
    if args.text == "-" and args.output == STDOUT:
        _speak_as_it_comes(args, config, XTTS, values, config.xtts.sentence_silence, tuple(args.references))
    else:
        _run_one(args, config, XTTS, values, tuple(args.references))
    return 0


def _refuse_a_path_as_text(text: str, command: str) -> None:
    """A file or folder named where the text goes was spoken as its name ("script dot t x t", exit 0): refused, saying
    how a file's words are read. Only a word with a path's shape is looked up: "Hello." never names a file."""
    if text == "-" or len(text.split()) != 1 or not ("/" in text or Path(text).suffix) or not Path(text).exists():
        return
    if Path(text).is_dir():
        raise UsageError(f"'{text}' is a folder, not text: give the text to speak after the references ({command} TEXT)")
    raise UsageError(f"'{text}' is a file, not text: to speak what it holds, read it from standard input ({command} - < '{text}')")


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm")
"""Suffixes of a recording given where the text should be (the text forgotten: it was spoken as the file's name)."""


def _run_one(args: argparse.Namespace, config: Any, backend: str, values: dict[str, str], listed: tuple[str, ...] = ()) -> None:
    """Check the request with ``backend``'s request side, then run its one job on the configured executor."""
    request = _request(args, config, values, load_text(args.text), listed)
    job = registry.request_side(backend).row_job(request)
    run_one(job, config.engine, log_level(args))


def _request(args: argparse.Namespace, config: Any, values: dict[str, str], text: str, listed: tuple[str, ...]) -> RowInput:
    cache = cache_root(config)
    return RowInput(values, text, Path(check_output(args.output)), Path.cwd(), config, cache, progress=show_progress(args),
                    reading=reading_from_args(args, cache, values.get("model") or values.get("voice", "")), listed=listed)


# --- piper-infer -------------------------------------------------------------


def _add_piper_infer(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-infer", parents=[common], help="speak text with a Piper voice (.onnx)",
                       description="Speak TEXT with a Piper ONNX voice. With one argument it is the TEXT, spoken by "
                                   "piper.default_voice (en_US-joe-medium, from the voice extra); with two, MODEL then TEXT.")
    p.add_argument("model", metavar="MODEL", nargs="?",
                   help="a voice name (see 'models list') or an .onnx file (its .onnx.json beside it); default: piper.default_voice")
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
    add_reading_flags(p)
    p.set_defaults(func=_cmd_piper_infer)


def _looks_like_a_voice(text: str, cache: Path) -> bool:
    """A lone ``voice.onnx`` or voice name was spoken as its name by the default voice, exit 0, while the text piped
    to stdin (``echo Hi | piper-infer en_US-joe-medium``, as piper's own command reads it) was ignored."""
    from demod_voice.models.registry import is_installed
    from demod_voice.training.bases import NAME

    return text.endswith(".onnx") or bool(NAME.match(text)) or is_installed(text, cache)


def _cmd_piper_infer(args: argparse.Namespace) -> int:
    keys = ("length_scale", "noise_scale", "noise_w_scale", "sentence_silence", "volume", "backend")
    config = load_settings(args, {f"piper.{key}": getattr(args, key) for key in keys})
    if args.model is None and _looks_like_a_voice(args.text, cache_root(config)):
        raise UsageError(f"'{args.text}' looks like a voice, not text: give the text after it (piper-infer VOICE TEXT), "
                         f"or - to read it from stdin (piper-infer VOICE -)")
    _refuse_a_path_as_text(args.text, "piper-infer VOICE")
    values = {"model": args.model or config.piper.default_voice, "speaker": args.speaker or "", "config_json": args.config_json or ""}
    if args.text == "-" and args.output == STDOUT:
        _speak_as_it_comes(args, config, config.piper.backend, values, config.piper.sentence_silence)
    else:
        _run_one(args, config, config.piper.backend, values)
    return 0


PIPED_LIMIT = 1000
"""Characters of piped text without a sentence end after which they are spoken anyway (cut between words)."""


def _speak_as_it_comes(args: argparse.Namespace, config: Any, backend: str, values: dict[str, str], pause: float,
                       listed: tuple[str, ...] = ()) -> None:
    """Text piped in, raw audio piped out (``tail -f log | piper-infer VOICE - -o - | aplay ...``, an LLM's reply into
    ``xtts-zero-shot REF - -o -``): each sentence goes to the engine as soon as it is complete and its audio out as it is
    made, ``pause`` seconds apart, as piper's own command speaks each line as it comes (stdin was read to its end first:
    nothing was said until its writer closed it)."""
    request = _request(args, config, values, "", listed)
    side = registry.request_side(backend)
    # the voice, its references and speaker checked, and the model loaded, now rather than at the first line
    voice = side.row_job(dataclasses.replace(request, text="Ready.")).spec
    jobs = (side.row_job(dataclasses.replace(request, text=sentence)) for sentence in _sentences_as_they_come())
    seconds = run_in_turn(jobs, open_sink(STDOUT), config.engine, log_level(args), pause, ready=voice)
    log.info("wrote stdout: %.2f s of audio", seconds)


def _sentences_as_they_come() -> Iterator[str]:
    """stdin's sentences as each is complete; one of only symbols (a log's ``-----``) is skipped. With nothing to say at
    all, the error that text read whole gets."""
    skipped, spoken = "", False
    for sentence in _complete_sentences():
        try:
            yield check_text(sentence)
            spoken = True
        except InputError:
            skipped = skipped or sentence
    if not spoken:
        check_text(skipped)


def _complete_sentences() -> Iterator[str]:
    sentences = SentenceStream(SSML_STARTS, SSML_END)
    for piece in read_as_it_comes():
        # an SSML document is held to its </speak> however long, as text read whole is: one of more than PIPED_LIMIT
        # characters that came in pieces was cut there, and refused as not well-formed
        yield from sentences.add(piece, PIPED_LIMIT, whole=0)
    yield sentences.finish()


# --- piper-preprocess ----------------------------------------------------------


