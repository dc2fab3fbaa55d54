"""Which voices the server offers, and how a request's ``model`` and ``voice`` become a job.

Every front door (OpenAI-style HTTP, Wyoming, the web UI) names voices the same way:

1. ``voice`` is a configured alias (``serve.voices``, like openedai-speech's voice map) -> its target;
2. ``model`` is a Piper voice (installed name, or a configured path's stem) -> that voice, with
   ``voice`` as its speaker (a number or a name from the voice's speaker map);
3. ``voice`` is an XTTS voice profile -> XTTS with that profile;
4. ``voice`` is a Piper voice -> that voice, its default speaker.

Anything else is :class:`UnknownVoice` (HTTP 404), naming what exists. ``model`` values that
name no voice (OpenAI's ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts``; ``xtts``; empty) leave
the choice to ``voice``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob
from demod_voice.errors import InputError
from demod_voice.voices.profiles import NAME, Profile, read_profile

log = logging.getLogger(__name__)

GENERIC_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "xtts", "xtts_v2", "")
"""Model names that pick no voice themselves (OpenAI's, and ours for XTTS)."""


class UnknownVoice(InputError):
    """The request names a voice or model the server does not have (HTTP 404)."""


@dataclass(frozen=True)
class VoiceInfo:
    """One voice as listed to clients."""

    id: str
    """What a request puts in ``voice`` (or ``model`` for a Piper voice)."""
    name: str
    """A readable name."""
    kind: str
    """``piper``, ``xtts`` (a voice profile) or ``alias``."""
    speakers: tuple[str, ...] = ()
    """Speaker names of a multi-speaker Piper voice."""
    language: str = ""
    """Language code, when known."""
    sample_rate: int = 0
    """Output sample rate, when known without loading the model."""


@dataclass(frozen=True)
class VoiceChoice:
    """A resolved voice: everything needed to turn texts into jobs for it."""

    kind: str
    """``piper`` or ``xtts``."""
    voice_id: str
    """The voice as it was resolved (alias targets resolved)."""
    spec: LoadSpec
    """The model the jobs run on (what preloading and ``/readyz`` use)."""
    sample_rate: int
    """Output sample rate (known before any audio: WAV headers, Wyoming's audio-start)."""
    request: Any
    """The backend's typed request (``PiperRequest`` / ``XttsRequest``) with an empty text."""

    def job(self, text: str, speed: float = 1.0, label: str = "", output: str = STDOUT) -> SynthesisJob:
        """A job speaking ``text`` at ``speed`` (> 1 faster); ``output`` ``-`` streams to the handle."""
        if not 0.25 <= speed <= 4.0:
            raise InputError(f"speed must be between 0.25 and 4.0, got {speed}")
        if self.kind == "piper":
            from demod_voice.backends.piper.request import make_job

            settings = self.request.settings
            if speed != 1.0:
                base = settings.length_scale or _voice_length_scale(self.request.model)
                settings = dataclasses.replace(settings, length_scale=base / speed)
            job = make_job(dataclasses.replace(self.request, text=text, output=output, settings=settings))
        else:
            from demod_voice.backends.xtts.request import make_job

            settings = self.request.settings
            if speed != 1.0:
                settings = dataclasses.replace(settings, speed=settings.speed * speed)
            job = make_job(dataclasses.replace(self.request, text=text, output=output, settings=settings))
        return dataclasses.replace(job, label=label or f"{self.voice_id} request")


def _voice_length_scale(model: str) -> float:
    from demod_voice.backends.piper.request import read_voice_config

    voice = read_voice_config(Path(f"{model}.json"))
    return float((voice.get("inference") or {}).get("length_scale", 1.0))


# --- what exists ---------------------------------------------------------------------------------


def piper_voices(ctx: Any) -> dict[str, Path]:
    """Piper voices by name: installed ones (``models download``) and those in ``serve.piper_voices``."""
    from demod_voice.models.registry import installed_piper_voices

    found: dict[str, Path] = {}
    for entry in ctx.settings.piper_voices or ():
        path = Path(str(entry)).expanduser().absolute()
        candidates = sorted(path.glob("*.onnx")) if path.is_dir() else [path]
        for model in candidates:
            if model.is_file() and Path(f"{model}.json").is_file():
                found.setdefault(model.name[: -len(".onnx")], model)
    for model in installed_piper_voices(ctx.cache):
        found.setdefault(model.name[: -len(".onnx")], model)
    return found


def profile_path(ctx: Any, name: str) -> Path:
    """The file of profile ``name``; :class:`InputError` for a name that could form a path."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(f"'{name}' is not a valid voice id: letters, digits, '_', '.' or '-' (up to 64, not starting with . - _)")
    return ctx.profiles / f"{name}.npz"


_PROFILES: dict[Path, tuple[tuple[int, int], Profile]] = {}


def load_profile(ctx: Any, name: str) -> Optional[Profile]:
    """Profile ``name``, or ``None`` when there is none (cached until its file changes)."""
    path = profile_path(ctx, name)
    try:
        stat = path.stat()
    except FileNotFoundError:
        _PROFILES.pop(path, None)
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _PROFILES.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    profile = read_profile(path)
    _PROFILES[path] = (stamp, profile)
    return profile


def voice_language(ctx: Any, name: str) -> str:
    """The language a profile was enrolled with (its side-car), else ``xtts.language``."""
    side = ctx.data_dir / "voices" / f"{name}.json"
    try:
        return str(json.loads(side.read_text(encoding="utf-8")).get("language") or ctx.config.xtts.language)
    except (OSError, ValueError, AttributeError):
        return ctx.config.xtts.language


def _piper_info(name: str, model: Path) -> VoiceInfo:
    from demod_voice.backends.piper.request import read_voice_config

    try:
        voice = read_voice_config(Path(f"{model}.json"))
    except InputError:
        return VoiceInfo(name, name, "piper")
    speakers = tuple(sorted(voice.get("speaker_id_map") or {}, key=(voice.get("speaker_id_map") or {}).get))
    language = str((voice.get("language") or {}).get("code") or (voice.get("espeak") or {}).get("voice") or "")
    return VoiceInfo(name, name, "piper", speakers, language, int(voice["audio"]["sample_rate"]))


def list_voices(ctx: Any) -> list[VoiceInfo]:
    """Every voice a request may name: aliases, voice profiles, Piper voices."""
    voices = [VoiceInfo(alias, f"{alias} ({_describe_alias(target)})", "alias") for alias, target in (ctx.settings.voices or {}).items()]
    if ctx.profiles.is_dir():
        for path in sorted(ctx.profiles.glob("*.npz")):
            name = path.name[: -len(".npz")]
            if NAME.match(name):
                voices.append(VoiceInfo(name, name, "xtts", language=voice_language(ctx, name), sample_rate=24000))
    voices.extend(_piper_info(name, model) for name, model in sorted(piper_voices(ctx).items()))
    return voices


def list_models(ctx: Any) -> list[str]:
    """Model ids for ``/v1/models``: OpenAI's generic names, ``xtts``, and each Piper voice."""
    return ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "xtts", *sorted(piper_voices(ctx))]


def _describe_alias(target: Any) -> str:
    if isinstance(target, dict):
        return ", ".join(f"{k} {v}" for k, v in target.items())
    return str(target)


# --- resolving ---------------------------------------------------------------------------------


def resolve_voice(ctx: Any, model: Optional[str], voice: Optional[str], language: Optional[str] = None) -> VoiceChoice:
    """Turn a request's ``model`` and ``voice`` into a :class:`VoiceChoice` (see the module docstring)."""
    model = (model or "").strip()
    voice = (voice or "").strip()
    aliases = ctx.settings.voices or {}
    voices = piper_voices(ctx)
    if model and model not in GENERIC_MODELS and model not in voices:
        raise UnknownVoice(f"there is no model '{_shown(model)}': use one of {', '.join(list_models(ctx))} (GET /v1/models)")
    if voice in aliases:
        return _alias(ctx, voice, aliases[voice], language)
    if model in voices:
        return _piper(ctx, model, voices[model], voice or None)
    if voice and NAME.match(voice) and load_profile(ctx, voice) is not None:
        return _xtts(ctx, voice, language)
    if voice in voices:
        return _piper(ctx, voice, voices[voice], None)
    names = ", ".join(v.id for v in list_voices(ctx)[:30]) or "none yet (enroll one with POST /v1/voices)"
    raise UnknownVoice(f"there is no voice '{_shown(voice)}': use one of {names} (GET /v1/audio/voices)")


def _shown(name: str) -> str:
    """A client's name, safe to echo in a message: printable, at most 80 characters."""
    text = "".join(ch for ch in name if ch.isprintable())
    return text if len(text) <= 80 else text[:77] + "..."


def _alias(ctx: Any, name: str, target: Any, language: Optional[str]) -> VoiceChoice:
    if isinstance(target, str):
        target = {"profile": target} if load_profile(ctx, target) is not None else {"model": target}
    if not isinstance(target, dict):
        raise InputError(f"serve.voices.{name} must be a mapping such as {{model: VOICE, speaker: 0}} or {{profile: NAME}}")
    if target.get("profile"):
        return _xtts(ctx, str(target["profile"]), language)
    voices = piper_voices(ctx)
    model = str(target.get("model", ""))
    if model not in voices:
        raise UnknownVoice(f"voice alias '{name}' names Piper voice '{model}', which is not installed")
    speaker = target.get("speaker")
    return _piper(ctx, model, voices[model], None if speaker is None else str(speaker))


def _piper(ctx: Any, name: str, model: Path, speaker: Optional[str]) -> VoiceChoice:
    from demod_voice.backends.piper.request import PiperRequest, make_job, read_voice_config

    config = ctx.config
    voice = read_voice_config(Path(f"{model}.json"))
    if speaker == name:
        speaker = None  # the voice named twice (model and voice): its default speaker
    if speaker is not None and int(voice.get("num_speakers", 1)) <= 1 and speaker not in (voice.get("speaker_id_map") or {}):
        speaker = None  # a single-speaker voice: OpenAI clients always send some voice name; there is only one
    request = PiperRequest(model=str(model), text="", output=STDOUT, settings=config.piper, device=config.device,
                           cache_dir=str(ctx.cache), speaker=speaker, backend=config.piper.backend)
    try:
        job = make_job(dataclasses.replace(request, text="."))
    except InputError as err:
        raise UnknownVoice(str(err)) from None
    return VoiceChoice("piper", name if speaker is None else f"{name}:{speaker}", job.spec,
                       int(voice["audio"]["sample_rate"]), request)


def _xtts(ctx: Any, name: str, language: Optional[str]) -> VoiceChoice:
    from demod_voice.backends.xtts.request import SAMPLE_RATE, XttsRequest, make_job

    profile = load_profile(ctx, name)
    if profile is None:
        raise UnknownVoice(f"there is no voice profile '{name}' (GET /v1/voices lists them)")
    config = ctx.config
    settings = dataclasses.replace(config.xtts, language=language or voice_language(ctx, name))
    request = XttsRequest(references=(), text="", output=STDOUT, settings=settings, cache_dir=str(ctx.cache),
                          device=config.device, profile=profile, stream=config.serve.xtts_token_streaming)
    job = make_job(dataclasses.replace(request, text="."))
    return VoiceChoice("xtts", name, job.spec, SAMPLE_RATE, request)


def remove_side_files(ctx: Any, name: str) -> None:
    """Forget what the server kept about a profile besides its file."""
    side = ctx.data_dir / "voices" / f"{name}.json"
    try:
        os.unlink(side)
    except FileNotFoundError:
        pass
