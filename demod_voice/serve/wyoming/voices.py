"""The server's voices as Wyoming sees them: the ``info`` answer to ``describe``, and a request's
``voice`` (name, language, speaker) turned into a :class:`~demod_voice.serve.voices.VoiceChoice`.

Built on :mod:`demod_voice.serve.voices`, so Wyoming and HTTP name voices alike. Wyoming's own
twists: a request may give only a language; for a voice that speaks many languages with one
speaker (a cloned XTTS voice: ``Voice.speaker_picks_language``), the ``speaker`` picks the
language (Home Assistant lists them as speakers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from demod_voice import __version__
from demod_voice.backends import registry
from demod_voice.serve.voices import (
    UnknownVoice,
    default_file_missing,
    default_voice,
    find_voice,
    list_voices,
    resolve_offered,
    resolve_voice,
    speak_with,
)

log = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/demod-voice/demod-voice"


@dataclass(frozen=True)
class WyomingVoice:
    """One voice as Wyoming clients see it."""

    name: str
    """What a client sends as ``voice.name``."""
    kind: str
    """The backend offering it (``piper``, ``xtts``, a plugin's name) or ``alias``."""
    languages: tuple[str, ...]
    """Languages it speaks, its own first (Home Assistant lists the voice under each)."""
    speakers: tuple[str, ...] = ()
    """A multi-speaker voice's speaker names; or the languages, when the speaker picks one."""
    description: str = ""
    """The name Home Assistant shows."""
    picks_language: bool = False
    """The speaker a client sends is the language to speak."""


def catalog_language(code: str) -> str:
    """``en-us`` (espeak's spelling) -> ``en_US`` (the Piper catalog's and Home Assistant's); others unchanged."""
    family, sep, region = code.replace("_", "-").partition("-")
    return f"{family.lower()}_{region.upper()}" if sep and len(region) == 2 else code


def wyoming_voices(ctx: Any) -> list[WyomingVoice]:
    """Voices that are models of their own (Piper's) first, then the others (cloned voices), then
    configured aliases (each with its target's languages)."""
    listed = [info for info in list_voices(ctx) if info.kind != "alias"]
    out: dict[str, WyomingVoice] = {}
    for info in sorted(listed, key=lambda info: not info.by_model):
        if info.speaker_picks_language:  # the languages go back as speakers: spelled as the backend reads them
            languages = info.spoken() or (ctx.config.xtts.language,)
            voice = WyomingVoice(info.id, info.kind, languages, languages, f"{info.name} ({info.kind_label})", True)
        else:
            languages = tuple(catalog_language(code) for code in info.spoken()) or ("en_US",)
            voice = WyomingVoice(info.id, info.kind, languages, tuple(info.speakers), f"{info.name} ({info.kind_label or info.kind})")
        out.setdefault(info.id, voice)
    for alias, target in (ctx.settings.voices or {}).items():
        aimed = out.get(str(target.get("profile") or target.get("model") or "") if isinstance(target, dict) else str(target))
        if aimed is not None:  # an alias of a cloned voice keeps the speakers that pick its language; of Piper's, its own
            speakers = aimed.speakers if aimed.picks_language else ()
            out.setdefault(alias, WyomingVoice(alias, "alias", aimed.languages, speakers, f"{alias} ({aimed.description})",
                                               aimed.picks_language))
    return list(out.values())


def info_event(voices: list[WyomingVoice]) -> Any:
    """The ``info`` event answering ``describe``."""
    from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

    ours = Attribution(name="demod-voice", url=PROJECT_URL)
    sources = {side.name: Attribution(name=side.label or side.name, url=side.url or PROJECT_URL) for side in registry.request_sides()}
    listed = [TtsVoice(name=voice.name, description=voice.description, attribution=sources.get(voice.kind, ours), installed=True,
                       version=None, languages=list(voice.languages),
                       speakers=[TtsVoiceSpeaker(name=speaker) for speaker in voice.speakers] or None)
              for voice in voices]
    program = TtsProgram(name="demod-voice", description="demod-voice: Piper voices and cloned XTTS voices",
                         attribution=ours, installed=True, version=__version__, voices=listed,
                         supports_synthesize_streaming=True)
    return Info(tts=[program]).event()


def _same(a: str, b: str) -> bool:
    return a.replace("-", "_").lower() == b.replace("-", "_").lower()


def _same_family(a: str, b: str) -> bool:
    return a.replace("-", "_").split("_")[0].lower() == b.replace("-", "_").split("_")[0].lower()


def pick(voices: list[WyomingVoice], name: Optional[str], language: Optional[str], default: Optional[str],
         preferred: Optional[str] = None) -> tuple[WyomingVoice, Optional[str]]:
    """The voice a request means, and the language to speak when it was chosen by one (or named with one).

    By name (a voice whose speaker picks the language speaks ``language`` too, where it speaks it); else by language
    (Piper voices before cloned ones; within each, exact, then the same family: ``en`` finds ``en_US``); else
    ``default``, else ``preferred`` where it is listed (``piper.default_voice``, as HTTP speaks: Home Assistant names no
    voice unless one was picked), else the first Piper voice.
    :class:`InputError` when none fits.
    """
    if not voices:
        raise UnknownVoice("no voices are installed: 'demod-voice models download NAME' adds a Piper voice, "
                           "'demod-voice voices add NAME REFERENCE...' a cloned one")
    by_name = {voice.name: voice for voice in voices}
    if name:
        if name not in by_name:
            raise UnknownVoice(f"there is no voice '{name}' here; 'describe' lists them ({', '.join(list(by_name)[:20])})")
        voice = by_name[name]  # a cloned voice speaks the language given with its name (a French text was read in German)
        speaks = bool(language) and voice.picks_language and any(_same_family(own, language) for own in voice.languages)
        return voice, (language if speaks else None)
    if language:
        voice = _by_language(voices, language)
        if voice is not None:
            return voice, (language if voice.picks_language else None)
        spoken = sorted({own for voice in voices for own in voice.languages})  # a cloned voice's every language, not its first
        raise UnknownVoice(f"no voice here speaks '{language}': ask for one of {', '.join(spoken)}")
    if default:
        if default not in by_name:
            raise UnknownVoice(f"the default Wyoming voice '{default}' is not installed")
        return by_name[default], None
    return by_name.get(preferred or "", voices[0]), None


def _by_language(voices: list[WyomingVoice], language: str) -> Optional[WyomingVoice]:
    """The first voice speaking ``language``: Piper voices (exact, then the same family) before cloned ones (the
    same), aliases last. A cloned voice lists the bare family (``en``) and would otherwise win over ``en_US``. Within
    each, a voice whose own language it is (listed first) comes before one that speaks it too: every cloned voice
    speaks all of XTTS's languages, so German went to the first listed (mum, enrolled in English), not to oma."""
    groups = ([voice for voice in voices if voice.kind != "alias" and not voice.picks_language],
              [voice for voice in voices if voice.kind != "alias" and voice.picks_language],
              [voice for voice in voices if voice.kind == "alias"])
    for group in groups:
        for spoken in (lambda voice: voice.languages[:1], lambda voice: voice.languages):
            for test in (_same, _same_family):
                for voice in group:
                    if any(test(own, language) for own in spoken(voice)):
                        return voice
    return None


def choose(ctx: Any, voices: list[WyomingVoice], name: Optional[str], language: Optional[str], speaker: Optional[str],
           default: Optional[str] = None) -> Any:
    """A :class:`~demod_voice.serve.voices.VoiceChoice` for a Wyoming request's voice."""
    if not (name or language or default) and default_file_missing(ctx):  # HTTP refuses it too: not another voice's words
        raise UnknownVoice("the request names no voice and the server's default voice (piper.default_voice) is missing: "
                           f"name one ('describe' lists them: {', '.join(voice.name for voice in voices[:20])}), or ask "
                           "the administrator to fix piper.default_voice")
    try:
        voice, spoken = pick(voices, name, language, default, default_voice(ctx))
    except UnknownVoice:
        if name:
            _unlisted(ctx, name, speaker)
        raise
    if voice.kind == "alias":
        if speaker and not voice.picks_language:  # it went on as a language the Piper voice ignores: its own speaker spoke
            raise UnknownVoice(f"the voice '{voice.name}' (an alias) takes no speaker: leave 'speaker' out")
        return resolve_voice(ctx, None, voice.name, speaker or spoken or None)
    if voice.picks_language:
        return resolve_offered(ctx, voice.kind, voice.name, None, speaker or spoken or None)
    if speaker and not voice.speakers:  # HTTP ignores OpenAI's mandatory 'voice' here; Wyoming's speaker is optional
        raise UnknownVoice(f"the voice '{voice.name}' has a single speaker: leave 'speaker' out")
    return resolve_offered(ctx, voice.kind, voice.name, speaker or None)


def _unlisted(ctx: Any, name: str, speaker: Optional[str]) -> None:
    """A name left out of the list may still be one the server knows: a damaged voice profile, or an alias whose
    target is missing or damaged, or a Piper voice whose config is damaged. Raise what HTTP says for it (``damaged_voice``
    in the administrator's words)."""
    if name in (ctx.settings.voices or {}):
        resolve_voice(ctx, None, name, speaker)
    voice = find_voice(ctx, name)
    if voice is not None:  # a damaged Piper voice is found by name and says so when resolved
        speak_with(ctx, voice, speaker)
