"""Which voice a Wyoming request that names only a language gets (no server: the choice alone)."""

from __future__ import annotations

from demod_voice.serve.wyoming.voices import WyomingVoice, pick

XTTS = ("en", "es", "fr", "de", "it")


def cloned(name: str, own: str) -> WyomingVoice:
    languages = (own, *(code for code in XTTS if code != own))
    return WyomingVoice(name, "xtts", languages, languages, picks_language=True)


def test_a_language_alone_gets_the_cloned_voice_enrolled_in_it():
    """A household's 'mum' (enrolled in English) and 'oma' (enrolled in German): a request for German got mum, listed
    first, speaking German in her English voice, since every cloned voice lists all of XTTS's languages."""
    mum, oma = cloned("mum", "en"), cloned("oma", "de")
    voices = [mum, oma]
    assert pick(voices, None, "de", None) == (oma, "de")
    assert pick(voices, None, "de_DE", None) == (oma, "de_DE")  # its own language's family before another's exact match
    assert pick(voices, None, "en", None) == (mum, "en")
    assert pick(voices, None, "fr", None) == (mum, "fr")  # enrolled in neither: the first that speaks it, as before


def test_a_piper_voice_still_comes_before_a_cloned_voice_enrolled_in_the_language():
    oma, piper_de = cloned("oma", "de"), WyomingVoice("de_DE-thorsten-medium", "piper", ("de_DE",))
    assert pick([oma, piper_de], None, "de", None) == (piper_de, None)

