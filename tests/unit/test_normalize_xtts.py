"""Normalise once: what our normaliser writes, XTTS's own tokenizer cleaner leaves as it is (only
lower-cased), so no number, currency, symbol or abbreviation is expanded twice."""

from __future__ import annotations

import pytest
from test_normalize import CASES

from demod_voice.speech_text.normalize import normalize

cleaner = pytest.importorskip("TTS.tts.layers.xtts.tokenizer", reason="coqui-tts is not installed (the xtts extra)")


@pytest.mark.parametrize("language", sorted(CASES))
def test_xtts_cleaner_expands_nothing_after_normalisation(language):
    for written, _ in CASES[language]:
        said = normalize(written, language)
        expected = " ".join(said.replace('"', "").lower().split())
        assert cleaner.multilingual_cleaners(said, language) == expected, f"{language}: {written!r} -> {said!r}"


def test_without_normalisation_xtts_would_expand_what_we_expand():
    """The control: XTTS's cleaner does change raw digits and symbols, so the test above can fail."""
    assert cleaner.multilingual_cleaners("It costs $3.50.", "en") != "it costs $3.50."
