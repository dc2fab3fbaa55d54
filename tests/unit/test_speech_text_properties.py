"""Any text, in any language, either becomes a job's text or an :class:`InputError`: never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demod_voice.errors import InputError
from demod_voice.speech_text.lexicon import Lexicon, entry
from demod_voice.speech_text.prepare import TextOptions, for_job

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "tr", "cs", "ja", "zh-cn", "hi", "sw")
PIECES = st.sampled_from(["<speak>", "</speak>", "<break time='1ms'/>", "<prosody rate='slow'>", "</prosody>", "<s>", "</s>",
                          "<say-as interpret-as='date'>", "</say-as>", "&amp;", "&", "<", "$", "€", "%", "12/05/2026", "9:05",
                          "1,234.5", "Dr.", "St.", "Nguyen", "[[", "]]", "-", ".", " ", "\n", "1st", "3 km", "me@x.org"])
TEXTS = st.one_of(st.text(max_size=80), st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=20).map("".join))
OPTIONS = TextOptions(lexicon=Lexicon((entry("Nguyen", "ŋwˈiən", "new yen"),)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, language=st.sampled_from(LANGUAGES), reads_phonemes=st.booleans())
def test_any_text_is_prepared_or_refused_with_an_input_error(text, language, reads_phonemes):
    try:
        prepared = for_job(text, language, OPTIONS, reads_phonemes, ("en", "de"))
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert prepared.text.strip()
