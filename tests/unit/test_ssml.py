"""The SSML subset: what each tag becomes, and hostile or broken documents refused with a one-line reason."""

from __future__ import annotations

import logging
import time

import pytest

from demod_voice.errors import InputError
from demod_voice.speech_text.lexicon import Lexicon, entry
from demod_voice.speech_text.prepare import TextOptions, for_job, prepare
from demod_voice.speech_text.script import Pause, Piece, Speak
from demod_voice.speech_text.ssml import SsmlError, is_ssml, written_words


def segments(text, reads_phonemes=True, languages=(), options=None):
    return for_job(text, "en", options or TextOptions(), reads_phonemes, languages).segments


def test_breaks_are_pauses_of_their_time_or_strength():
    got = segments('<speak>One.<break time="700ms"/>Two.<break time="1.5s"/>Three.<break strength="strong"/>Four.</speak>')
    assert [s.seconds for s in got if isinstance(s, Pause)] == [0.7, 1.5, 0.75]
    assert [s.text for s in got if isinstance(s, Speak)] == ["One.", "Two.", "Three.", "Four."]


def test_prosody_rate_and_volume_nest_and_multiply():
    got = segments('<speak><prosody rate="50%" volume="-6dB">slow <prosody rate="x-fast">fast</prosody></prosody> plain</speak>')
    assert [(s.text.strip(), s.rate, round(s.volume, 3)) for s in got] == [("slow", 0.5, 0.501), ("fast", 0.8, 0.501), ("plain", 1.0, 1.0)]


def test_nested_prosody_is_held_within_one_tags_range():
    """Four nested rate="0.25" made 163 s of audio from two words and twelve a worker's out-of-memory (the product was
    unbounded, each tag within 0.25-4); nested +12 dB likewise."""
    slow = "<speak>" + '<prosody rate="0.25">' * 12 + "Hello there" + "</prosody>" * 12 + "</speak>"
    loud = "<speak>" + '<prosody rate="x-fast" volume="+12dB">' * 6 + "Hello there" + "</prosody>" * 6 + "</speak>"
    for text, rate, volume in ((slow, 0.25, 1.0), (loud, 4.0, 10 ** 0.6)):
        prepared = for_job(text, "en", TextOptions(), True)
        pieces = [s for s in prepared.segments if isinstance(s, Speak)]
        assert [(p.rate, round(p.volume, 3)) for p in pieces] == [(rate, round(volume, 3))]
        assert any("nested <prosody>" in w and "held at" in w for w in prepared.warnings), prepared.warnings


def test_say_as_sub_and_phoneme():
    got = for_job('<speak><say-as interpret-as="characters">ABC1</say-as> <say-as interpret-as="cardinal">1234</say-as> '
                  '<say-as interpret-as="ordinal">3</say-as> <say-as interpret-as="date" format="dmy">12/05/2026</say-as> '
                  '<say-as interpret-as="telephone">+1 555 0100</say-as> <sub alias="World Wide Web">WWW</sub> '
                  '<phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme></speak>', "en", TextOptions(), True)
    words = " ".join(got.text.split())
    assert words == ("A B C one one thousand two hundred thirty-four third May twelfth, twenty twenty-six "
                     "one, five five five, zero one zero zero World Wide Web [[təmˈɑːtoʊ]]")


def test_phoneme_on_an_engine_that_reads_text_is_spoken_as_written_with_a_warning():
    got = for_job('<speak><phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme></speak>', "en", TextOptions(), False)
    assert got.text == "tomato" and any("phoneme" in w for w in got.warnings)


def test_lang_switches_where_the_backend_can_and_warns_where_it_cannot():
    text = '<speak>Hello <lang xml:lang="de-DE">3 Äpfel</lang></speak>'
    switched = segments(text, languages=("en", "de-de"))
    assert switched[-1] == Speak("drei Äpfel", 1.0, 1.0, "de-de")  # normalised in German
    one = for_job(text, "en", TextOptions(), True, ())
    assert all(s.language is None for s in one.segments) and any("cannot switch" in w for w in one.warnings)


FORGED = "2026-12-07 12:00:00.000+00:00 demod-voice: error: forged by a client"


def test_warnings_quoting_a_clients_text_are_one_log_line_each_and_few(caplog):
    """The warnings about a text quote it (an SSML attribute, a word) and went to the server's log as they were: a
    ``&#10;`` in ``xml:lang`` began a line of the client's own at the default level (HTTP with a ``speak`` key, Wyoming
    with none), and each ``<lang>`` of another language was a line of its own."""
    forged = f'<speak>Hello <lang xml:lang="x&#10;{FORGED}">there</lang> <lang xml:lang="{"q" * 5000}">you</lang></speak>'
    with caplog.at_level(logging.WARNING, logger="demod_voice.speech_text.prepare"):
        for_job(forged, "en", TextOptions(), True, ())
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2 and all("\n" not in line and len(line) < 200 for line in said), said
    caplog.clear()
    many = " ".join(f'<lang xml:lang="l{i}">a</lang>' for i in range(40))
    with caplog.at_level(logging.WARNING, logger="demod_voice.speech_text.prepare"):
        for_job(f"<speak>{many}</speak>", "en", TextOptions(), True, ())
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 6 and "35 more" in said[-1], said


def test_p_and_s_end_pieces_without_inventing_silence():
    got = segments("<speak><p><s>One.</s><s>Two.</s></p><p>Three.</p></speak>")
    assert [s.text for s in got] == ["One.", "Two.", "Three."]


def test_emphasis_is_spoken_plainly_with_a_warning():
    got = for_job("<speak>a <emphasis>big</emphasis> day</speak>", "en", TextOptions(), True)
    assert got.text == "a big day" and got.warnings


def test_plain_text_and_one_plain_piece_need_no_segments():
    assert for_job("<speak>Just words.</speak>", "en", TextOptions(), True).segments is None
    assert for_job("Just words, 5.", "en", TextOptions(), True).text == "Just words, five."
    assert not is_ssml("I <3 you") and is_ssml("  <speak>x</speak>")


def test_ssml_tags_in_capitals_are_read_as_ssml_not_aloud():
    """``<SPEAK>Hi <BREAK TIME='1s'/> there.</SPEAK>`` was plain text: the voice said the tags' names and attributes with
    the words (Wyoming: 52 audio chunks where the document gives 32)."""
    upper = "<SPEAK>Hi <BREAK TIME='1s'/> <Say-As Interpret-As='characters'>ab</Say-As> there.</SPEAK>"
    lower = "<speak>Hi <break time='1s'/> <say-as interpret-as='characters'>ab</say-as> there.</speak>"
    assert is_ssml(upper) and is_ssml(" \ufeff<Speak>x</Speak>") and is_ssml("<?XML version='1.0'?><speak>x</speak>")
    assert segments(upper) == segments(lower) and [s.seconds for s in segments(upper) if isinstance(s, Pause)] == [1.0]
    assert written_words(upper) == written_words(lower) == "Hi ab there."
    with pytest.raises(SsmlError, match="mismatched tag .*: close each tag with its name as it was opened"):
        prepare("<SPEAK>x</speak>", "en")


@pytest.mark.parametrize(("written", "lower"), [
    ("<speak>a <break strength='Strong'/> b</speak>", "<speak>a <break strength='strong'/> b</speak>"),
    ("<speak>a <break time='1.5S'/> b <break time='500MS'/></speak>", "<speak>a <break time='1.5s'/> b <break time='500ms'/></speak>"),
    ("<speak><prosody rate='FAST' volume='X-Loud'>a</prosody> <prosody volume='+6DB'>b</prosody></speak>",
     "<speak><prosody rate='fast' volume='x-loud'>a</prosody> <prosody volume='+6dB'>b</prosody></speak>"),
    ("<speak><say-as interpret-as='Cardinal'>12</say-as> <say-as interpret-as='DATE' format='MDY'>1/2/2026</say-as></speak>",
     "<speak><say-as interpret-as='cardinal'>12</say-as> <say-as interpret-as='date' format='mdy'>1/2/2026</say-as></speak>"),
    ("<speak><phoneme alphabet='IPA' ph='tə'>to</phoneme> <sub alias='World Wide Web'>WWW</sub></speak>",
     "<speak><phoneme alphabet='ipa' ph='tə'>to</phoneme> <sub alias='World Wide Web'>WWW</sub></speak>"),
])
def test_keyword_values_are_read_in_any_case_as_ssml_readers_do(written, lower):
    """``<break strength="Strong"/>``, ``<prosody rate="FAST">`` and ``interpret-as="Cardinal"`` were refused ("use one of
    ..."), though the names around them are read in any case and the SSML readers people copy from take them. Keyword
    values are folded; an alias's words are kept as written."""
    assert segments(written) == segments(lower)


def test_lexicon_and_normalisation_apply_inside_ssml_text():
    options = TextOptions(lexicon=Lexicon((entry("Nguyen", "ŋwˈiən", "new yen"),)))
    assert for_job("<speak>Dr. Nguyen <break time='1s'/> $5</speak>", "en", options, True).text == "doctor [[ŋwˈiən]] five dollars"


@pytest.mark.parametrize(("text", "says"), [
    ("<speak><foo>x</foo></speak>", "unknown SSML tag <foo> at line 1, column 8"),
    ("<speak>\n  <voice name='x'>x</voice></speak>", "unknown SSML tag <voice> at line 2, column 3"),
    ("<speak>x", "not well-formed XML: no element found at line 1"),
    ("<speak><break time='20s'/></speak>", "at most 10s per break"),
    ("<speak><break time='soon'/></speak>", "write it as 500ms or 1.5s"),
    ("<speak><prosody rate='9000%'>x</prosody></speak>", "rate"),
    ("<speak><say-as interpret-as='cardinal'>many</say-as></speak>", "needs a number"),
    ("<speak><say-as interpret-as='characters'><break/></say-as></speak>", "holds text only"),
    ("<p>x</p>", "must start with <speak>"),
    ("<speak><sub>x</sub></speak>", "<sub> needs an alias attribute"),  # "needs a alias"
    ("<speak><phoneme>x</phoneme></speak>", "<phoneme> needs a ph attribute"),
])
def test_bad_ssml_is_refused_with_a_place_and_a_reason(text, says):
    with pytest.raises(SsmlError) as caught:
        prepare(text, "en", TextOptions(ssml=True))
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "says"), [
    # an LLM's reply cut short (Home Assistant streams it): the stream ends before </speak>
    ("<speak>Sure. The light is on.", "no element found at line 1, column 30: the document ends before its closing tags: close "
                                      "each tag opened, the last with </speak>"),
    ("<speak>Tom & Jerry</speak>", "(invalid token) at line 1, column 13: write & in the words as &amp;"),
    ("<speak>AT&T</speak>", ": write & in the words as &amp;"),
    ("<speak>a < b</speak>", ": write < in the words as &lt;"),
    ("<speak><break time=1s/></speak>", ": put each attribute's value in quotes (<break time=\"1s\"/>)"),
    ("<speak>Hello&nbsp;there</speak>", "undefined entity at line 1, column 13: SSML knows only &amp; &lt; &gt; &quot; &apos; and "
                                        "numbered ones (&#160;): write the character itself"),
    ("<speak><p><s>x</p></s></speak>", "mismatched tag at line 1, column 17: close each tag with its name as it was opened, the "
                                       "last opened first"),
    ("<speak>a</speak> <speak>b</speak>", "junk after document element at line 1, column 18: put all of the text inside the one "
                                          "<speak>...</speak>, or send each document on its own"),
    ("<speak><break", "unclosed token at line 1, column 8: the document ends inside a tag: finish it with '>'"),
])
def test_ssml_that_is_not_well_formed_is_told_what_to_change(text, says):
    """hwy (s19): "the SSML is not well-formed XML: no element found at line 1, column 16" said where, never what to do; an
    LLM reply cut inside <speak> (Home Assistant then plays nothing) or a stray '&' got no more than expat's words."""
    with pytest.raises(SsmlError) as caught:
        prepare(text, "en")
    assert says in str(caught.value) and "\n" not in str(caught.value)


HOSTILE = {
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;'
                      '&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                      '<speak>&lol3;</speak>',
    "external entity": '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>',
    "external DTD": '<!DOCTYPE speak SYSTEM "http://127.0.0.1:1/evil.dtd"><speak>x</speak>',
    "parameter entity": '<!DOCTYPE speak [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><speak>x</speak>',
    "undefined entity": "<speak>&passwd;</speak>",
    "deep nesting": "<speak>" + "<prosody>" * 10000 + "x" + "</prosody>" * 10000 + "</speak>",
    "1 MB of tags": "<speak>" + "<break time='1ms'/>" * 55000 + "</speak>",
    "many elements": "<speak>" + "<s>a</s>" * 6000 + "</speak>",
}


def _largest_accepted_takes() -> float:
    """Seconds the largest document of short elements that is still accepted takes here: refusing one past the limit
    costs what its first MAX_ELEMENTS elements cost (each read and normalised), 1.3-1.7 s on this 2-core machine, and an
    absolute 2 s failed a loaded or slower CI machine though nothing was wrong."""
    from demod_voice.speech_text.ssml import MAX_ELEMENTS

    started = time.perf_counter()
    for_job("<speak>" + "<s>a</s>" * (MAX_ELEMENTS - 1) + "</speak>", "en", TextOptions(), True)
    return time.perf_counter() - started


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_ssml_is_refused_quickly_and_cleanly(name):
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        for_job(HOSTILE[name], "en", TextOptions(), True)
    took = time.perf_counter() - started
    # a refusal costs no more than twice the largest document it accepts costs: bounded, however slow the machine
    assert took < 2.0 or took < 2 * _largest_accepted_takes(), took
    message = str(caught.value)
    assert "\n" not in message and "passwd" not in message.replace("&passwd;", "") and "lol" not in message


def test_the_hostile_documents_would_expand_without_the_guard():
    """The control: a parser that expands entities turns the billion-laughs document into 100 'lol's."""
    from xml.dom.minidom import parseString

    assert parseString(HOSTILE["billion laughs"]).documentElement.toxml().count("lol") == 100


def test_breaks_add_up_to_at_most_the_limit():
    with pytest.raises(SsmlError, match="in all"):
        prepare("<speak>" + "<break time='10s'/>" * 31 + "</speak>", "en")
    assert isinstance(prepare("<speak>a<break time='10s'/>b</speak>", "en").items[0], Piece)


def test_instructions_map_pace_and_pauses_and_nothing_else():
    from demod_voice.speech_text.instructions import pause_from_instructions, rate_from_instructions

    assert rate_from_instructions("Speak slowly, like a teacher.") == 0.85
    assert rate_from_instructions("Very quickly please") == 1.35
    assert rate_from_instructions("Sound cheerful and warm.") == 1.0
    assert pause_from_instructions("Pause briefly between sentences.") == 0.25
    assert pause_from_instructions("Use long pauses for drama.") == 0.8
    assert pause_from_instructions("Read it without any pauses.") == 0.0
    assert pause_from_instructions(None) == 0.0


def test_a_clients_instructions_reach_the_log_as_one_line(caplog, tmp_path):
    """``instructions`` (any text a ``speak`` key sends) were logged as written, cut to 80 characters: a newline in them
    began a line of the client's own in the server's log, and terminal escapes went to the administrator's terminal."""
    from types import SimpleNamespace

    from demod_voice.serve.lexicons import reading_for

    ctx = SimpleNamespace(cache=tmp_path, settings=SimpleNamespace(lexicons=None, limits=SimpleNamespace(max_input_chars=4096)))
    with caplog.at_level(logging.INFO, logger="demod_voice.serve.lexicons"):
        options = reading_for(ctx, "voice", None, instructions=f"Speak slowly.\n\x1b[2J{FORGED}")
    said = [record.getMessage() for record in caplog.records]
    assert options.rate == 0.85 and len(said) == 1 and "slowly" in said[0], said
    assert "\n" not in said[0] and "\x1b" not in said[0], said


def test_sentence_pauses_become_exact_pauses_between_sentences():
    options = TextOptions(sentence_pause=0.5, lexicon=Lexicon((entry("Nguyen", "", "new yen"),)))
    got = for_job("Hello Nguyen. How are you? Fine", "en", options, False).segments
    assert [s.seconds if isinstance(s, Pause) else s.text for s in got] == ["Hello new yen.", 0.5, "How are you?", 0.5, "Fine"]


@pytest.mark.parametrize(("text", "said"), [
    ('1990-<prosody rate="slow">1995</prosody>', "nineteen ninety to nineteen ninety-five"),
    ('from <prosody rate="slow">1990</prosody>-1995', "from nineteen ninety to nineteen ninety-five"),
    ('pages 10<break time="200ms"/>-20', "pages ten to twenty"),
    ('pages 10 - <prosody rate="slow">20</prosody>', "pages ten to twenty"),
    ('open 9-<prosody rate="slow">5</prosody>', "open nine to five"),
    ('10-<say-as interpret-as="cardinal">20</say-as>', "ten to twenty"),
    ('<prosody rate="slow">1990-1995</prosody>', "nineteen ninety to nineteen ninety-five"),
    ('It was -<prosody rate="slow">5</prosody> degrees', "It was minus five degrees"),
    ('a well-<prosody rate="slow">known</prosody> fact', "a well- known fact"),
])
def test_a_range_cut_by_a_tag_is_read_as_a_range(text, said):
    """Each piece between tags was normalised alone: "1990-" and "1995" were "nineteen ninety-" and "nineteen ninety-five",
    "-1995" after a tag "minus one thousand nine hundred ninety-five"."""
    assert " ".join(for_job(f"<speak>{text}</speak>", "en", TextOptions(), True).text.split()) == said


@pytest.mark.parametrize(("say_as", "said"), [
    ('interpret-as="cardinal">+5', "plus five"),
    ('interpret-as="cardinal">\u22125', "minus five"),  # the minus sign lost its sign
    ('interpret-as="cardinal">-1,234.5', "minus one thousand two hundred thirty-four point five"),
    ('interpret-as="ordinal">21st', "twenty-first"),
    ('interpret-as="characters">ab-7', "A B dash seven"),  # a lone "a" is the article to espeak
    ('interpret-as="digits">2026', "two zero two six"),
    ('interpret-as="date" format="ym">2026-05', "May twenty twenty-six"),
    ('interpret-as="date" format="my">5/1999', "May nineteen ninety-nine"),
    ('interpret-as="date" format="d">12', "twelfth"),
    ('interpret-as="date" format="m">12', "December"),
    ('interpret-as="date" format="y">1999', "nineteen ninety-nine"),
    ('interpret-as="date">2026-05-12', "May twelfth, twenty twenty-six"),  # no format: a four-digit first field is the year
    ('interpret-as="date" format="mdy">02/29/2024', "February twenty-ninth, twenty twenty-four"),
    ('interpret-as="currency">$42.01', "forty-two dollars and one cent"),
    ('interpret-as="currency">42.01 EUR', "forty-two euros and one cent"),
])
def test_say_as_reads_what_the_w3c_note_and_its_common_extensions_define(say_as, said):
    """ym, my, d, m and y dates were refused, "digits" and "currency" were unknown, "+5" was "five" and "−5" "five"."""
    assert for_job(f"<speak><say-as {say_as}</say-as></speak>", "en", TextOptions(), True).text.strip() == said


@pytest.mark.parametrize(("say_as", "says"), [
    ('interpret-as="ordinal">1.5', "needs a whole number"),  # was "fifteenth"
    ('interpret-as="cardinal">12abc', "needs a number"),  # was "twelve"
    ('interpret-as="date" format="mdy">02/30/2026', "is not a date"),  # was "February thirtieth"
    ('interpret-as="date" format="xyz">1/2/3', "formats: mdy, dmy, ymd, ym, my, md, dm, d, m, y"),
    ('interpret-as="currency">42', "needs an amount with a currency"),
    ('interpret-as="shout">42', "use one of characters"),
])
def test_say_as_content_that_is_not_what_it_says_is_refused(say_as, says):
    with pytest.raises(SsmlError) as caught:
        prepare(f"<speak><say-as {say_as}</say-as></speak>", "en", TextOptions(ssml=True))
    assert says in str(caught.value) and "<say-as interpret-as=" in str(caught.value)


@pytest.mark.parametrize(("say_as", "says"), [
    ('interpret-as="date">2026-05-12', "dates are not read in language 'ru' (numbers only)"),
    ('interpret-as="currency">$5', "amounts of money are not read in language 'ru' (numbers only)"),
])
def test_say_as_a_language_reads_numbers_only_in_says_so(say_as, says):
    """In Russian (numbers only), "2026-05-12" was "not a date in format mdy/dmy/ymd" and "$5" "needs an amount with a
    currency symbol or code": both wrong about the content."""
    with pytest.raises(SsmlError) as caught:
        prepare(f"<speak><say-as {say_as}</say-as></speak>", "ru", TextOptions(ssml=True))
    assert says in str(caught.value)


def test_a_heading_number_cut_by_a_tag_is_still_the_number():
    """"Chapter <prosody>01</prosody>" was "Chapter zero one": the number was normalised without its heading word."""
    got = for_job('<speak>Chapter <prosody rate="slow">01</prosody>. Agent <prosody rate="slow">007</prosody></speak>', "en",
                  TextOptions(), True)
    assert " ".join(got.text.split()) == "Chapter one . Agent zero zero seven"


@pytest.mark.parametrize(("say_as", "said"), [
    ('interpret-as="time">14:30', "fourteen thirty"),
    ('interpret-as="time" format="hms12">2:30pm', "two thirty PM"),
    ('interpret-as="time" format="hms24">09:05:30', "nine oh five and thirty seconds"),
])
def test_say_as_time_reads_a_clock_time(say_as, said):
    """interpret-as="time" (in the W3C note) was refused as unknown."""
    assert for_job(f"<speak><say-as {say_as}</say-as></speak>", "en", TextOptions(), True).text.strip() == said


def test_say_as_time_refuses_what_is_no_time_on_its_clock():
    with pytest.raises(SsmlError, match="no time on a 12-hour clock"):
        prepare('<speak><say-as interpret-as="time" format="hm12">13:30</say-as></speak>', "en", TextOptions(ssml=True))


def test_a_say_as_reads_its_own_sign_after_a_number():
    """A leading minus inside a say-as after a number is the say-as's (it was about to become a range's "to")."""
    got = for_job('<speak>10<say-as interpret-as="cardinal">-5</say-as></speak>', "en", TextOptions(), True)
    assert " ".join(got.text.split()) == "ten minus five"


def test_ssml_after_a_byte_order_mark_is_ssml():
    """A document saved by Notepad starts with a byte order mark: it was read as plain text, tags and all ("less than
    speak greater than..."), three times as long."""
    text = '\ufeff<speak>Hello <break time="500ms"/> there.</speak>'
    assert is_ssml(text)
    got = for_job(text, "en", TextOptions(), True)
    assert [type(s).__name__ for s in got.segments] == ["Speak", "Pause", "Speak"] and "<" not in got.text
