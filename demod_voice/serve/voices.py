"""Which voices the server offers, and how a request's ``model`` and ``voice`` become a job.

Every front door (OpenAI-style HTTP, Wyoming, the web UI) names voices the same way, asking
each backend's request side through :mod:`demod_voice.backends.registry`:

1. ``voice`` is a configured alias (``serve.voices``, like openedai-speech's voice map) -> its target;
2. ``model`` is a voice that is a model of its own (a Piper voice: installed name, or a configured
   path's stem; a plugin's model) -> that voice, with ``voice`` as its speaker (a number or a name
   from the voice's speaker map);
3. ``voice`` is a voice some backend offers -> that voice, its default speaker. Voices that are not
   models of their own (XTTS voice profiles: names people chose) are looked up before those that are
   (Piper voices); within each, backends in registry order.

A request naming no voice at all gets ``piper.default_voice``.
Anything else is :class:`UnknownVoice` (HTTP 404), naming what exists. ``model`` values that
name no voice (OpenAI's ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts``; a backend's generic name
such as ``xtts``; empty) leave the choice to ``voice``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import Scope, Speech, UnknownModel, UnknownVoice, Voice
from demod_voice.errors import InputError
from demod_voice.models.registry import looks_like_name
from demod_voice.serve.errors import ApiError, quoted
from demod_voice.voices.profiles import NAME, Profile, name_rule, read_installed
from demod_voice.voices.references import forget_latents

log = logging.getLogger(__name__)

__all__ = ["GENERIC_MODELS", "UnknownVoice", "VoiceChoice", "VoiceInfo", "list_models", "list_voices", "resolve_voice"]

GENERIC_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "")
"""OpenAI's model names, which pick no voice themselves (backends add their own, such as ``xtts``)."""

VoiceInfo = Voice
"""One voice as listed to clients (see :class:`~demod_voice.backends.plugin.Voice`)."""
VoiceChoice = Speech
"""A resolved voice (see :class:`~demod_voice.backends.plugin.Speech`)."""


def scope(ctx: Any) -> Scope:
    """What the backends' request sides look at for this server: ``piper.default_voice`` given as a file is offered too
    (first: it is the one its name means), as ``serve.piper_voices`` are."""
    default = (ctx.config.piper.default_voice or "").strip()
    own = () if looks_like_name(default) else (str(Path(default).expanduser()),)
    return Scope(ctx.config, ctx.cache, ctx.profiles, ctx.data_dir, own + tuple(str(p) for p in ctx.settings.piper_voices or ()))


def default_voice(ctx: Any) -> str:
    """The voice a request naming none gets: ``piper.default_voice``, a file (``/srv/voices/kitchen.onnx``) by its voice's
    name (``kitchen``), as :func:`scope` offers it."""
    return default_name(ctx.config)


def default_name(config: Any) -> str:
    """:func:`default_voice` from the config alone (the page's pickers, which know the config)."""
    default = (config.piper.default_voice or "").strip()
    return default if looks_like_name(default) else Path(default).name.removesuffix(".onnx")


def default_file_missing(ctx: Any) -> bool:
    """``piper.default_voice`` is a file (an administrator's choice: the stock default is a name) that no backend finds
    under its name: a request naming no voice is refused (HTTP 404, a Wyoming ``error``), not spoken by another voice."""
    default = (ctx.config.piper.default_voice or "").strip()
    return bool(default) and not looks_like_name(default) and find_voice(ctx, default_voice(ctx)) is None


def say_missing_default(ctx: Any) -> None:
    """Log at start a ``piper.default_voice`` the server does not have, with what each front door does about it
    (the administrator reads the log; clients never see the path)."""
    default = (ctx.config.piper.default_voice or "").strip()
    if default_file_missing(ctx):
        log.warning("piper.default_voice %s is not a voice here (no such .onnx with its .onnx.json): requests naming "
                    "no voice are refused; give an existing file or an installed voice's name", default)
    elif default and default not in (ctx.settings.voices or {}) and find_voice(ctx, default_voice(ctx)) is None:
        log.warning("piper.default_voice '%s' is not installed here: HTTP refuses requests naming no voice and Wyoming "
                    "speaks the first voice listed; install it ('demod-voice models download %s' for a Piper voice), enroll "
                    "a voice by that name, or name another", default, default)


def generic_models() -> tuple[str, ...]:
    """``model`` values that leave the choice to ``voice``."""
    return (*GENERIC_MODELS, *(name for side in registry.request_sides() for name in side.generic_models))


def reserved_names(aliases: Optional[Any]) -> dict[str, str]:
    """Names a cloned voice may not take, with what each one is: the model names requests give (``tts-1``, ``xtts``)
    and the voice aliases of ``serve.voices`` (``aliases``). The server and ``voices add``/``import`` refuse the same."""
    return {**{model: "a model name" for model in generic_models() if model},
            **{alias: "a voice alias (serve.voices)" for alias in aliases or {}}}


# --- what exists ---------------------------------------------------------------------------------


def model_files(ctx: Any) -> dict[str, Path]:
    """Voices that are models of their own (Piper voices, plugins' models) by name, with their files."""
    found: dict[str, Path] = {}
    for side in registry.request_sides():
        for voice in side.voices(scope(ctx)):
            if voice.by_model and voice.model_path:
                found.setdefault(voice.id, Path(voice.model_path))
    return found


piper_voices = model_files
"""The former name of :func:`model_files` (still used by the batch API)."""


def profile_path(ctx: Any, name: str) -> Path:
    """The file of profile ``name``; :class:`InputError` for a name that could form a path."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(f"'{str(name)[:80]}' is not a valid voice id: {name_rule(name)}")
    return ctx.profiles / f"{name}.npz"


def load_profile(ctx: Any, name: str) -> Optional[Profile]:
    """Profile ``name``, or ``None`` when there is none (cached until its file changes)."""
    path = profile_path(ctx, name)
    try:
        stat = path.stat()
    except FileNotFoundError:
        ctx.profile_cache.pop(path, None)
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = ctx.profile_cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    profile = read_installed(path)
    ctx.profile_cache[path] = (stamp, profile)
    return profile


ENROLLING_RETRY_AFTER = "3"
"""``Retry-After`` (seconds) for a request that found a voice's enrollment under way: about what one takes."""


def refuse_if_enrolling(ctx: Any, name: str) -> None:
    """404 ``voice_enrolling`` (``Retry-After``) for a voice not there yet because its enrollment (an import, a rename to it)
    is under way: an app whose enrollment timed out checks for it before sending it again, and was told "there is no
    voice", took the enrollment for failed and sent it again."""
    if name in ctx.enrolling:
        raise ApiError(404, f"the voice '{quoted(name)}' is being enrolled right now: ask again in a few seconds",
                       code="voice_enrolling", headers={"Retry-After": ENROLLING_RETRY_AFTER})


def voice_language(ctx: Any, name: str) -> str:
    """The language a profile was enrolled with (its side-car), else ``xtts.language``."""
    found = find_voice(ctx, name)
    return found.language if found is not None and found.language else ctx.config.xtts.language


def list_voices(ctx: Any) -> list[Voice]:
    """Every voice a request may name: aliases, voices that are not models of their own (cloned voices),
    then those that are (Piper voices); backends in registry order. A cloned voice with an alias's name (enrolled
    before the alias was configured) is not one: ``voice`` with that name speaks with the alias."""
    aliases = [Voice(alias, f"{alias} ({_describe_alias(target)})", "alias") for alias, target in (ctx.settings.voices or {}).items()]
    where = scope(ctx)
    offered = [voice for side in registry.request_sides() for voice in side.voices(where)]
    hidden = {alias.id for alias in aliases}
    return aliases + [v for v in offered if not v.by_model and v.id not in hidden] + [v for v in offered if v.by_model]


def list_models(ctx: Any) -> list[str]:
    """Model ids for ``/v1/models``: OpenAI's generic names, each backend's generic name, each voice that is a model."""
    generic = [side.generic_models[0] for side in registry.request_sides() if side.generic_models]
    return ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", *generic, *sorted(model_files(ctx))]


def _describe_alias(target: Any) -> str:
    if isinstance(target, dict):
        return ", ".join(f"{k} {v}" for k, v in target.items())
    return str(target)


# --- resolving ---------------------------------------------------------------------------------


def find_voice(ctx: Any, voice_id: str, models_only: bool = False) -> Optional[Voice]:
    """The voice called ``voice_id`` (see the module docstring for which wins when several backends offer one)."""
    where = scope(ctx)
    found = [voice for side in registry.request_sides() if (voice := side.find(where, voice_id)) is not None]
    ranked = [v for v in found if v.by_model] if models_only else [v for v in found if not v.by_model] + [v for v in found if v.by_model]
    return ranked[0] if ranked else None


def speak_with(ctx: Any, voice: Voice, speaker: Optional[str] = None, language: Optional[str] = None) -> Speech:
    """Resolve a listed voice (its backend's request side checks the speaker and language)."""
    return registry.request_side(voice.kind).resolve(scope(ctx), voice, speaker, language)


def resolve_offered(ctx: Any, kind: str, voice_id: str, speaker: Optional[str] = None, language: Optional[str] = None) -> Speech:
    """Resolve voice ``voice_id`` of backend ``kind`` (a voice picker's value)."""
    found = registry.request_side(kind).find(scope(ctx), voice_id)
    if found is None:
        raise UnknownVoice(f"there is no voice '{quoted(voice_id)}' here (GET /v1/audio/voices)")
    return speak_with(ctx, found, speaker, language)


def resolve_voice(ctx: Any, model: Optional[str], voice: Optional[str], language: Optional[str] = None) -> Speech:
    """Turn a request's ``model`` and ``voice`` into a :class:`VoiceChoice` (see the module docstring)."""
    model = (model or "").strip()
    voice = (voice or "").strip()
    aliases = ctx.settings.voices or {}
    named_model = None
    if model and model not in generic_models():
        named_model = find_voice(ctx, model, models_only=True)
        if named_model is None:
            raise UnknownModel(f"there is no model '{quoted(model)}': use one of {', '.join(list_models(ctx))} (GET /v1/models)")
    if not voice and named_model is None and default_voice(ctx) in aliases:  # an alias as the default: as Wyoming speaks it
        voice = default_voice(ctx)
    if voice in aliases:
        return _alias(ctx, voice, aliases[voice], language)
    if named_model is not None:
        return speak_with(ctx, named_model, voice or None, language)
    named = bool(voice)
    found = None
    if not named:  # a request that names no voice gets the configured default, a model voice before a clone so named
        voice = default_voice(ctx)
        found = find_voice(ctx, voice, models_only=True) if voice else None
    found = found or (find_voice(ctx, voice) if voice else None)
    if found is not None:
        return speak_with(ctx, found, None, language)
    names = ", ".join(v.id for v in list_voices(ctx)[:30]) or "none yet (enroll one with POST /v1/voices)"
    if not named:
        raise UnknownVoice(f"the request names no voice and the default voice is not installed here: use one of {names} "
                           "(GET /v1/audio/voices)")
    raise UnknownVoice(f"there is no voice '{quoted(voice)}': use one of {names} (GET /v1/audio/voices)")


def _alias(ctx: Any, name: str, target: Any, language: Optional[str]) -> Speech:
    found, speaker = alias_target(ctx, name, target)
    return speak_with(ctx, found, speaker, language)


def alias_target(ctx: Any, name: str, target: Any) -> tuple[Voice, Optional[str]]:
    """The voice alias ``name`` (``serve.voices``, whose value is ``target``) speaks with, and its speaker."""
    if isinstance(target, str):
        target = {"profile": target} if load_profile(ctx, target) is not None else {"model": target}
    if not isinstance(target, dict):
        raise InputError(f"serve.voices.{name} must be a mapping such as {{model: VOICE, speaker: 0}} or {{profile: NAME}}")
    if target.get("profile"):
        found = find_voice(ctx, str(target["profile"]))
        if found is None:
            raise UnknownVoice(f"voice alias '{name}' names the voice '{quoted(str(target['profile']))}', which is not enrolled "
                               "here: enroll it under that name, or ask the administrator to change serve.voices")
        return found, None
    model = str(target.get("model", ""))
    found = find_voice(ctx, model, models_only=True)
    if found is None:
        raise UnknownVoice(f"voice alias '{name}' names the voice '{quoted(model)}', which is not installed here: ask the "
                           "administrator to install it or to change serve.voices")
    speaker = target.get("speaker")
    return found, None if speaker is None else str(speaker)


def remove_side_files(ctx: Any, name: str, references: tuple[str, ...] = ()) -> None:
    """Forget what the server kept about a profile besides its file: its side-car, and (for a voice deleted, given its
    ``references``' hashes) the latents the voice cache kept of its recordings."""
    if references:
        forget_latents(ctx.cache, references)
    side = ctx.data_dir / "voices" / f"{name}.json"
    try:
        os.unlink(side)
    except FileNotFoundError:
        pass


def side_car(ctx: Any, name: str) -> dict:
    """What the server keeps about enrolled voice ``name`` besides its profile (``language``, ``owner``); ``{}`` when
    nothing, or nothing readable (a voice enrolled by the command line, or before the server kept it)."""
    try:
        found = json.loads((ctx.data_dir / "voices" / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def owned_voices(ctx: Any, owner: str) -> set[str]:
    """The enrolled voices that the key with owner id ``owner`` enrolled or imported, and that are still there."""
    folder = ctx.data_dir / "voices"
    names = [side.name[: -len(".json")] for side in folder.glob("*.json")] if folder.is_dir() else []
    return {name for name in names if NAME.fullmatch(name) and side_car(ctx, name).get("owner") == owner
            and (ctx.profiles / f"{name}.npz").is_file()}
