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



def test_a_cloned_voice_named_with_a_language_speaks_that_language():
    """A client that names a cloned voice and gives the language of its text (``{"name": "oma", "language": "fr"}``)
    got it spoken in the voice's own language: the language was dropped once a name was given, and a French text was
    read with German sounds. It is spoken in that language now, where the voice speaks it; else as before."""
    mum, oma = cloned("mum", "en"), cloned("oma", "de")
    piper_de = WyomingVoice("de_DE-thorsten-medium", "piper", ("de_DE",))
    voices = [mum, oma, piper_de]
    assert pick(voices, "oma", "fr", None) == (oma, "fr")
    assert pick(voices, "mum", "de_DE", None) == (mum, "de_DE")
    assert pick(voices, "oma", None, None) == (oma, None)  # no language: the voice's own, as before
    assert pick(voices, "oma", "sv", None) == (oma, None)  # one it does not speak: the name decides, as Wyoming says
    assert pick(voices, "de_DE-thorsten-medium", "fr", None) == (piper_de, None)  # a Piper voice speaks its own
