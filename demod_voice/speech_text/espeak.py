"""espeak-ng's voices as piper-tts's phonemizer has them: a voice name checked before any work is done with it."""

from __future__ import annotations

from typing import Any

from demod_voice.errors import InputError


def check_espeak_voice(voice: str) -> None:
    """:class:`InputError` unless piper-tts's espeak-ng has ``voice``, before any work: ``en_US`` (a voice name's spelling)
    failed piper-preprocess only after the audio work, and piper-export made a voice that could not speak."""
    from piper.phonemize_espeak import EspeakPhonemizer

    phonemizer = EspeakPhonemizer()
    if _speaks(phonemizer, voice):
        return
    language = voice.replace("_", "-").lower()
    example = next((guess for guess in (language, language.split("-")[0]) if _speaks(phonemizer, guess)), "en-us")
    raise InputError(f"unknown espeak-ng voice '{voice}': use e.g. {example} (espeak-ng --voices lists them)")


def _speaks(phonemizer: Any, voice: str) -> bool:
    try:
        phonemizer.phonemize(voice, "a")
    except RuntimeError:  # "Failed to set voice"
        return False
    return True
