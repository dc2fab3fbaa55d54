"""Subcommands that manage rather than synthesise: models, voices, health, config.

Same pattern as the other cli modules: ``_add_<name>`` declares, ``_cmd_<name>`` turns arguments into calls.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from demod_voice.audio.decode import looks_like_audio
from demod_voice.backends import registry
from demod_voice.backends.plugin import Scope
from demod_voice.cli.common import load_settings, log, log_level, show_progress
from demod_voice.cli.synth import AUDIO_SUFFIXES
from demod_voice.config import Config, cache_root, config_path, load_config, to_dict, write_default_file
from demod_voice.errors import ConfigError, InputError, UsageError
from demod_voice.health import deep_checks, installed_voices, run_checks
from demod_voice.logs import PROG
from demod_voice.models.registry import (
    installed_piper_voices,
    installed_xtts_identity,
    load_catalog,
    remove_model,
)
from demod_voice.paths import check_output_path, os_error
from demod_voice.serve.status import SERVER_CHECKS
from demod_voice.serve.voices import reserved_names
from demod_voice.voices.check import check_voice, read_sentences, render
from demod_voice.voices.making import add_voice, check_free, enroll_again
from demod_voice.voices.profiles import MAX_BYTES, check_name, export_profile, import_profile, load_named, profiles_dir, read_profile
from demod_voice.voices.references import check_references, forget_latents

# --- models ------------------------------------------------------------------


def _add_models(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", parents=[common], help="list, download and remove Piper voices, XTTS-v2 and the voice converter",
                       description="Manage models in the cache: Piper voices from the voice catalog, XTTS-v2 and OpenVoice v2's "
                                   "converter (convert).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("list", parents=[common], help="installed models (--available: the whole catalog)")
    show.add_argument("--available", action="store_true", help="list every voice in the catalog")
    get = actions.add_parser("download", parents=[common], help="download a Piper voice by name, xtts_v2, or openvoice_v2 (the converter)")
    get.add_argument("name", metavar="NAME")
    get.add_argument("--accept-license", action="store_true", default=None, help="accept the CPML licence (for xtts_v2)")
    remove = actions.add_parser("remove", parents=[common], help="delete an installed model")
    remove.add_argument("name", metavar="NAME")
    where = actions.add_parser("path", parents=[common], help="print the path of an installed model")
    where.add_argument("name", metavar="NAME")
    quant = actions.add_parser("quantize", parents=[common], help="write an INT8 copy of a Piper voice (smaller, faster on a CPU)")
    quant.add_argument("name", metavar="VOICE", help="an installed voice's name, or the path of an .onnx voice")
    quant.add_argument("-o", "--output", metavar="OUT", help="the INT8 .onnx to write (default: VOICE-int8.onnx beside the voice)")
    quant.add_argument("--method", choices=("static", "dynamic"), default="static",
                       help="static: calibrated on sample text (default); dynamic: no calibration")
    quant.add_argument("--text", metavar="TEXT", help="calibration text in the voice's language (default: English sample text)")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    config = load_settings(args, {"xtts.accept_license": getattr(args, "accept_license", None)})
    action = {"list": _models_list, "download": _models_download, "remove": _models_remove, "path": _models_path,
              "quantize": _models_quantize}[args.action]
    cache = cache_root(config)
    try:
        action(args, config, cache)
    except OSError as err:
        if isinstance(err, BrokenPipeError):
            raise
        raise os_error(f"models {args.action}: cannot use the model cache {cache}", err) from None
    return 0


def _scope(config: Any, cache: Any) -> Scope:
    return Scope(config, cache, profiles_dir(cache))


def _models_list(args: argparse.Namespace, config: Any, cache: Any) -> None:
    if args.available:
        installed = {p.stem for p in installed_piper_voices(cache)}
        for name, entry in sorted(load_catalog(config.models.catalog_url, cache, refresh=True).items()):
            size = sum(f.get("size_bytes", 0) for f in entry.get("files", {}).values()) / 1e6
            language = entry.get("language", {}).get("code", "")
            print(f"{'*' if name in installed else ' '} {name:<40} {language:<8} {entry.get('quality', ''):<8} {size:6.1f} MB")
        return
    scope = _scope(config, cache)
    for side in registry.request_sides():
        for model in side.models(scope):
            size = f"{model.size_bytes / 1e6:6.1f} MB" if model.size_bytes is not None else ""
            print(f"{model.kind:<6} {model.name:<40} {size:>9}  {model.path}")


def _lookup_order() -> list:
    """Request sides for a model name: a catch-all (Piper: any name may be a catalog voice) after the others."""
    return sorted(registry.request_sides(), key=lambda side: side.catch_all)


def _models_download(args: argparse.Namespace, config: Any, cache: Any) -> None:
    """The first backend (registry order) that knows the name downloads it."""
    scope = _scope(config, cache)
    for side in _lookup_order():
        path = side.download(scope, args.name, show_progress(args))
        if path is not None:
            print(path)
            return
    raise InputError(f"no backend knows a model called '{args.name}'; 'demod-voice models list --available' lists Piper voices")


def _models_remove(args: argparse.Namespace, config: Any, cache: Any) -> None:
    """What the model's backend keeps in the cache for it (keyed by the model's files, so first), then its files."""
    scope = _scope(config, cache)
    for side in _lookup_order():
        try:
            side.forget_cache(scope, args.name)
        except Exception as err:  # noqa: BLE001 - the cache is the backend's; the model's removal goes on without it
            log.debug("%s: could not clear the cache entries of %s (%s)", side.name, args.name, err)
    for path in remove_model(args.name, cache):
        if not getattr(args, "quiet", False):
            print(f"{PROG}: removed {path}", file=sys.stderr)


def _models_path(args: argparse.Namespace, config: Any, cache: Any) -> None:
    scope = _scope(config, cache)
    for side in _lookup_order():
        path = side.model_path(scope, args.name)
        if path is not None:
            print(path)
            return
    raise InputError(f"no installed model is called '{args.name}'; 'demod-voice models list' shows them")


def _models_quantize(args: argparse.Namespace, config: Any, cache: Any) -> None:
    """The first backend (registry order) that knows the name writes the copy."""
    scope = _scope(config, cache)
    output = Path(args.output).expanduser() if args.output else None
    done = next((made for side in registry.request_sides() if (made := side.quantize(scope, args.name, output, args.method, args.text))), None)
    if done is None:
        raise InputError(f"no backend can quantize a model called '{args.name}'; 'demod-voice models list' shows them")
    if not getattr(args, "quiet", False):
        beside = f" and its {done.config.name[len(done.model.name):] or done.config.name}" if done.config else ""
        print(f"{PROG}: wrote {done.model} ({done.method} INT8, {done.int8_bytes / 1e6:.1f} MB, "
              f"{done.int8_bytes / done.float_bytes:.2f}x the float voice){beside}", file=sys.stderr)
    print(done.model)


# --- voices ------------------------------------------------------------------


def _add_voices(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("voices", parents=[common], help="saved XTTS voice profiles: add, list, remove, export, import; check any voice",
                       description="Keep cloned voices by name: the XTTS conditioning is computed once and reused.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="make a profile from reference recordings")
    add.add_argument("name", metavar="NAME")
    add.add_argument("references", nargs="+", metavar="REFERENCE",
                     help="recordings of the voice (wav, flac, ogg, mp3, m4a/aac...); 6-30 s of clear speech in all")
    add.add_argument("--model-dir", metavar="DIR", help="local XTTS checkpoint folder (default: the released XTTS-v2)")
    add.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    add.add_argument("-l", "--language", help="the language the voice speaks when xtts-zero-shot --voice NAME is given no -l "
                                              "(kept in the profile; default: none kept, xtts.language is used)")
    actions.add_parser("list", parents=[common], help="list profiles")
    remove = actions.add_parser("remove", parents=[common], help="delete a profile")
    remove.add_argument("name", metavar="NAME")
    export = actions.add_parser("export", parents=[common], help="write a profile to one portable file")
    export.add_argument("name", metavar="NAME")
    export.add_argument("file", metavar="FILE", help="where the profile goes (an .npz), or - for standard output")
    imp = actions.add_parser("import", parents=[common], help="install a profile file")
    imp.add_argument("file", metavar="FILE", help="a file from 'voices export', or - to read it from standard input")
    imp.add_argument("--name", metavar="NEW", help="install it under this name instead of the one it was exported with")
    imp.add_argument("-l", "--language", help="the language the voice speaks when xtts-zero-shot --voice NAME is given no -l "
                                              "(default: the one it was exported with)")
    imp.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    check = actions.add_parser("check", parents=[common], help="speak sample sentences and report how well a recogniser hears them",
                               description="Speak sample sentences with VOICE, transcribe them with Whisper (in a worker) and print "
                                           "the word error rate, speaking rate, clipping and loudness.")
    check.add_argument("name", metavar="VOICE", help="a Piper voice (installed name or .onnx file) or a voice profile's name")
    check.add_argument("--text", metavar="FILE", help="sentences to speak, one a line (default: built-in English sentences)")
    check.add_argument("--language", help="the language spoken (default: the voice's own)")
    check.add_argument("--asr-model", metavar="NAME",
                       help="Whisper model: a faster-whisper name, hub id or folder (default: tiny.en from the asr extra for "
                            "English, tiny for other languages, downloaded into the cache once)")
    p.set_defaults(func=_cmd_voices)


def _cmd_voices(args: argparse.Namespace) -> int:
    config = load_settings(args, {"xtts.model_dir": getattr(args, "model_dir", None)})
    cache = cache_root(config)
    try:
        _voices_action(args, config, cache)
    except OSError as err:
        if isinstance(err, BrokenPipeError):
            raise
        raise os_error(f"voices {args.action}", err) from None
    return 0


def _voices_action(args: argparse.Namespace, config: Any, cache: Any) -> None:
    if args.action == "add":
        profile = add_voice(args.name, args.references, config, force=args.force, log_level=log_level(args),
                            reserved=reserved_names(config.serve.voices), language=args.language or "")
        # the seconds of speech it was learnt from (silence before and after cut off): what "6-30 s of speech" is judged by
        speech = sum(r.speech for r in check_references(tuple(args.references), config.xtts.max_reference_seconds))
        print(f"{profile.name}: {len(profile.references)} reference(s), {speech:.1f} s of speech, model {profile.model[:12]}"
              + (f", speaks {profile.language}" if profile.language else ""))
    elif args.action == "list":
        _list_voices(args, cache)
    elif args.action == "remove":
        path = profiles_dir(cache) / f"{check_name(args.name)}.npz"
        if not path.is_file():  # a damaged profile is removed too (reading it first refused that)
            load_named(cache, args.name)  # the "no such voice" message
        try:
            references = read_profile(path).references
        except InputError:
            references = ()
        path.unlink()
        forget_latents(cache, references)  # the voice cache's copy of its conditioning goes with it
    elif args.action == "export":
        _export(cache, args.name, args.file)
    elif args.action == "check":
        texts = read_sentences(Path(args.text)) if args.text else None
        report = check_voice(args.name, config, texts, args.asr_model, args.language, log_level(args), show_progress(args))
        print(render(report))
    else:
        _import(args, config, cache)


def _list_voices(args: argparse.Namespace, cache: Any) -> None:
    found = sorted(profiles_dir(cache).glob("*.npz"))
    if not found and not getattr(args, "quiet", False):  # stdout stays empty for scripts; a person learns why
        print("no voice profiles here yet: make one from a recording with 'demod-voice voices add NAME RECORDING' "
              "(Piper voices are listed by 'demod-voice models list')", file=sys.stderr)
    for path in found:
        try:
            profile = read_profile(path)
        except InputError:  # said, with the way out: it was left out without a word
            print(f"{path.stem:<24} damaged: remove it with 'demod-voice voices remove {path.stem}' and add it again")
            continue
        language = f"  language {profile.language}" if profile.language else ""
        print(f"{profile.name:<24} model {profile.model[:12]}  {len(profile.references)} reference(s)  {profile.created}{language}")


def _import(args: argparse.Namespace, config: Any, cache: Any) -> None:
    """``voices import FILE [--name NEW] [-l L] [--force]``; FILE ``-`` is standard input, as ``voices export NAME -``
    writes it (``ssh host demod-voice voices export me - | demod-voice voices import -`` was "no voice profile at -")."""
    if args.file != "-":
        _install(args, config, cache, Path(args.file))
        return
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("voices import - reads a profile from standard input: pipe one in (demod-voice voices export NAME - | "
                         "demod-voice voices import -), or give its file")
    with tempfile.TemporaryDirectory(prefix="demod-voice-import-") as folder:
        piped = Path(folder) / "stdin.npz"
        piped.write_bytes(sys.stdin.buffer.read(MAX_BYTES + 1))  # one byte over is refused for its size
        try:
            _install(args, config, cache, piped)
        except InputError as err:
            raise InputError(str(err).replace(str(piped), "standard input")) from None


def _install(args: argparse.Namespace, config: Any, cache: Any, file: Path) -> None:
    if looks_like_audio(file):  # was "... is not a demod-voice profile (not a zip archive); export one"
        recording = shlex.quote(args.file) if args.file != "-" else "RECORDING"
        raise InputError(f"{file} is a recording, not a voice profile: make a voice of it (demod-voice voices add "
                         f"{args.name or 'NAME'} {recording}); import takes a file from 'voices export'")
    scope = _scope(config, cache)
    sent = read_profile(file)
    check_free(scope, args.name or sent.name, reserved_names(config.serve.voices))
    language = registry.cloner().enroll_language(scope, args.language) if args.language else ""
    model = installed_xtts_identity(config.xtts.model_dir, cache)
    if model and sent.model != model:  # exported on a machine with another XTTS model: its latents do not fit this one
        profile = enroll_again(sent, args.name or sent.name, config, force=args.force, log_level=log_level(args), language=language)
        print(f"imported {profile.name}, made again from the recordings it holds for this machine's XTTS model "
              f"({model[:12]}; it was made with {sent.model[:12]})" + (f", speaks {profile.language}" if profile.language else ""))
        return
    profile = import_profile(cache, file, force=args.force, model=model, name=args.name or "", language=language)
    print(f"imported {profile.name} (model {profile.model[:12]})" + (f", speaks {profile.language}" if profile.language else ""))


def _export(cache: Any, name: str, file: str) -> None:
    """``voices export NAME FILE``; ``-``, as everywhere else, is standard output (it made a file called '-')."""
    recording = file != "-" and looks_like_audio(Path(file))
    if recording or Path(file).suffix.lower() in AUDIO_SUFFIXES:
        # 'voices export alice alice.wav' replaced the recording alice.wav with the profile: the voice's recording was gone
        raise UsageError(f"{file} is {'a recording' if recording else 'an audio file name'}, and a voice profile is not audio: "
                         f"give the profile its own file ({name}.voice.npz); to hear the voice, speak with it "
                         f"(xtts-zero-shot --voice {name} TEXT -o OUT.wav)")
    if file != "-":
        # a folder as FILE was told "give a file name such as DIR/speech.wav", and an unwritable one "choose another --output"
        export_profile(cache, name, check_output_path(Path(file), example=f"{name}.voice.npz", flag="FILE"))
        return
    if sys.stdout.isatty():
        raise UsageError("a voice profile is binary: redirect standard output to a file (voices export NAME - > NAME.npz), "
                         "or give a file name")
    load_named(cache, name)  # verified, as export_profile does
    sys.stdout.buffer.write((profiles_dir(cache) / f"{name}.npz").read_bytes())
    sys.stdout.buffer.flush()


# --- health ------------------------------------------------------------------


def _add_health(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("health", parents=[common], help="check what works on this machine and how to fix what does not",
                       description="Check Python, backends, known-bad package combinations, GPU, ffmpeg, config and cache. "
                                   "Exit 0 when at least one backend is usable, 1 otherwise.")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--deep", action="store_true",
                   help="also load each installed voice (and each --model) in a worker and speak a short phrase")
    p.add_argument("--model", action="append", default=[], metavar="PATH", help="a Piper voice for --deep (repeatable)")
    p.set_defaults(func=_cmd_health)


def _cmd_health(args: argparse.Namespace) -> int:
    try:
        config = load_settings(args)
    except ConfigError:  # the report says what is wrong; the rest is checked with the environment's settings, if they hold
        try:
            config = load_config(getattr(args, "config", None), overrides={"device": getattr(args, "device", None)},
                                 without_file=True)[0]
        except ConfigError:
            config = Config(device=getattr(args, "device", None) or "cpu")
    deep = None
    if args.deep:
        cache = cache_root(config)
        voices = list(dict.fromkeys(installed_voices(cache) + args.model))
        deep = lambda: deep_checks(voices, config)  # noqa: E731
    report = run_checks(getattr(args, "config", None), config, deep, SERVER_CHECKS)
    print(report.to_json() if args.json else report.to_text())
    return 0 if report.usable else 1


# --- config ------------------------------------------------------------------


def _add_config(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common], help="show the effective config or write a default file",
                       description="Show the effective configuration, or write a commented default config file.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", parents=[common], help="print the effective config (YAML, or --json)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_cmd_config_show)
    init = actions.add_parser("init", parents=[common], help="write a commented default config file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_cmd_config_init)


def _cmd_config_show(args: argparse.Namespace) -> int:
    import json

    import yaml


    data = to_dict(load_settings(args))
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if args.json else yaml.safe_dump(data, sort_keys=False))
    return 0


def _cmd_config_init(args: argparse.Namespace) -> int:
    path, _ = config_path(getattr(args, "config", None))
    try:
        write_default_file(path, force=args.force)
    except OSError as err:
        raise os_error(f"cannot write the config file {path}", err) from None
    if not getattr(args, "quiet", False):
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    return 0


MANAGE_COMMANDS = (_add_models, _add_voices, _add_health, _add_config)
