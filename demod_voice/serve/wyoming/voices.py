"""The server's voices as Wyoming sees them: the ``info`` answer to ``describe``, and a request's
``voice`` (name, language, speaker) turned into a :class:`~demod_voice.serve.voices.VoiceChoice`.

Built on :mod:`demod_voice.serve.voices`, so Wyoming and HTTP name voices alike. Wyoming's own
twists: a request may give only a language; for a cloned (XTTS) voice, whose one profile speaks
all of XTTS's languages, the ``speaker`` picks the language (Home Assistant lists them as speakers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from demod_voice import __version__
from demod_voice.config import XTTS_LANGUAGES
from demod_voice.errors import InputError

log = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/demod-voice/demod-voice"


@dataclass(frozen=True)
class WyomingVoice:
    """One voice as Wyoming clients see it."""

    name: str
    """What a client sends as ``voice.name``."""
    kind: str
    """``piper``, ``xtts`` or ``alias``."""
    languages: tuple[str, ...]
    """Languages it speaks, its own first (Home Assistant lists the voice under each)."""
    speakers: tuple[str, ...] = ()
    """Piper: a multi-speaker voice's speaker names; XTTS: the languages (the speaker picks one)."""
    description: str = ""
    """The name Home Assistant shows."""


def catalog_language(code: str) -> str:
    """``en-us`` (espeak's spelling) -> ``en_US`` (the Piper catalog's and Home Assistant's); others unchanged."""
    family, sep, region = code.replace("_", "-").partition("-")
    return f"{family.lower()}_{region.upper()}" if sep and len(region) == 2 else code


def wyoming_voices(ctx: Any) -> list[WyomingVoice]:
    """Piper voices, then cloned voices, then configured aliases (each with its target's languages)."""
    from demod_voice.serve.voices import list_voices

    listed = list_voices(ctx)
    out: dict[str, WyomingVoice] = {}
    for info in listed:
        if info.kind == "piper":
            language = catalog_language(info.language) if info.language else "en_US"
            out[info.id] = WyomingVoice(info.id, "piper", (language,), tuple(info.speakers), f"{info.name} (Piper)")
    for info in listed:
        if info.kind == "xtts":
            own = info.language or ctx.config.xtts.language
            languages = (own, *(code for code in XTTS_LANGUAGES if code != own))
            out.setdefault(info.id, WyomingVoice(info.id, "xtts", languages, languages, f"{info.name} (cloned voice, XTTS)"))
    for alias, target in (ctx.settings.voices or {}).items():
        aimed = out.get(str(target.get("profile") or target.get("model") or "") if isinstance(target, dict) else str(target))
        if aimed is not None:
            out.setdefault(alias, WyomingVoice(alias, "alias", aimed.languages, (), f"{alias} ({aimed.description})"))
    return list(out.values())


def info_event(voices: list[WyomingVoice]) -> Any:
    """The ``info`` event answering ``describe``."""
    from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

    sources = {"piper": Attribution(name="Piper", url="https://github.com/OHF-Voice/piper1-gpl"),
               "xtts": Attribution(name="XTTS-v2 (coqui)", url="https://github.com/idiap/coqui-ai-TTS"),
               "alias": Attribution(name="demod-voice", url=PROJECT_URL)}
    listed = [TtsVoice(name=voice.name, description=voice.description, attribution=sources[voice.kind], installed=True,
                       version=None, languages=list(voice.languages),
                       speakers=[TtsVoiceSpeaker(name=speaker) for speaker in voice.speakers] or None)
              for voice in voices]
    program = TtsProgram(name="demod-voice", description="demod-voice: Piper voices and cloned XTTS voices",
                         attribution=sources["alias"], installed=True, version=__version__, voices=listed,
                         supports_synthesize_streaming=True)
    return Info(tts=[program]).event()


def _same(a: str, b: str) -> bool:
    return a.replace("-", "_").lower() == b.replace("-", "_").lower()


def _same_family(a: str, b: str) -> bool:
    return a.replace("-", "_").split("_")[0].lower() == b.replace("-", "_").split("_")[0].lower()


def pick(voices: list[WyomingVoice], name: Optional[str], language: Optional[str], default: Optional[str]) -> tuple[WyomingVoice, Optional[str]]:
    """The voice a request means, and the language to speak when it was chosen by one.

    By name; else by language (exact, then the same family: ``en`` finds ``en_US``; Piper voices
    before cloned ones); else ``default``, else the first Piper voice. :class:`InputError` when none fits.
    """
    from demod_voice.serve.voices import UnknownVoice

    if not voices:
        raise UnknownVoice("no voices are installed: 'demod-voice models download NAME' adds a Piper voice, "
                           "'demod-voice voices add NAME REFERENCE...' a cloned one")
    by_name = {voice.name: voice for voice in voices}
    if name:
        if name not in by_name:
            raise UnknownVoice(f"there is no voice '{name}' here; 'describe' lists them ({', '.join(list(by_name)[:20])})")
        return by_name[name], None
    if language:
        for test in (_same, _same_family):
            for voice in voices:
                if any(test(own, language) for own in voice.languages):
                    return voice, (language if voice.kind == "xtts" else None)
        raise UnknownVoice(f"no voice here speaks '{language}' ({', '.join(sorted({v.languages[0] for v in voices}))} do)")
    if default:
        if default not in by_name:
            raise UnknownVoice(f"the default Wyoming voice '{default}' is not installed")
        return by_name[default], None
    return voices[0], None


def choose(ctx: Any, voices: list[WyomingVoice], name: Optional[str], language: Optional[str], speaker: Optional[str],
           default: Optional[str] = None) -> Any:
    """A :class:`~demod_voice.serve.voices.VoiceChoice` for a Wyoming request's voice."""
    from demod_voice.serve.voices import resolve_voice

    voice, spoken = pick(voices, name, language, default)
    if voice.kind == "piper":
        return resolve_voice(ctx, voice.name, speaker or None)
    chosen = speaker or spoken
    if voice.kind == "xtts" and chosen:
        chosen = xtts_language(chosen)
    return resolve_voice(ctx, None, voice.name, chosen or None)


def xtts_language(code: str) -> str:
    """A Wyoming language (``de``, ``de_DE``, ``zh-CN``) as XTTS names it; :class:`InputError` if XTTS lacks it."""
    from demod_voice.backends.xtts.request import normalise_language

    try:
        return normalise_language(code.replace("_", "-"))
    except InputError:
        family = code.replace("_", "-").split("-")[0]
        try:
            return normalise_language(family)
        except InputError as err:
            raise InputError(f"a cloned voice cannot speak '{code}' (its speaker is the language to speak): {err}") from None
