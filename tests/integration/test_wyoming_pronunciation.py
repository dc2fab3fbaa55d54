"""SSML and normalisation over Wyoming (Home Assistant): a ``synthesize`` text may be SSML."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("wyoming")

from test_wyoming import run, server, synthesize  # noqa: E402, F401
from wyoming.tts import SynthesizeVoice  # noqa: E402


def test_ssml_break_is_exact_silence_over_wyoming(server):  # noqa: F811
    reply = run(synthesize(server, '<speak>Hello there.<break time="400ms"/>Good morning.</speak>', SynthesizeVoice(name="tiny-single")))
    assert not reply.errors
    samples, rate = reply.samples(), reply.start.rate
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    runs = [(end - start) / rate for start, end in zip(edges[::2], edges[1::2], strict=True) if end - start > 0.1 * rate]
    assert runs == pytest.approx([0.4], abs=0.02)


def test_unknown_ssml_tag_is_an_error_event(server):  # noqa: F811
    reply = run(synthesize(server, "<speak><shout>hi</shout></speak>", SynthesizeVoice(name="tiny-single")))
    assert [e.text for e in reply.errors] == [
        "unknown SSML tag <shout> at line 1, column 8; supported: speak, break, prosody, say-as, sub, phoneme, p, s, lang, emphasis, mark"]


def streamed(server, pieces, voice="tiny-single"):  # noqa: F811
    """Home Assistant's stream: ``synthesize-start``, the chunks, the whole text again as ``synthesize``, ``synthesize-stop``."""
    from test_wyoming import read_reply
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

    async def stream():
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=voice)).event())
            for piece in pieces:
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(Synthesize(text="".join(pieces), voice=SynthesizeVoice(name=voice)).event())
            await client.write_event(SynthesizeStop().event())
            return await read_reply(client, SynthesizeStopped().event().type)

    return run(stream())


def test_ssml_sent_as_a_stream_is_spoken_whole(server):  # noqa: F811
    """Home Assistant sends a streaming server its whole message as synthesize-chunk events (and repeats it in a
    synthesize it tells us to ignore): an SSML document cut at its first sentence end was refused as not well-formed."""
    text = '<speak>Hello there. <break time="400ms"/>Good morning.</speak>'
    whole = run(synthesize(server, text, SynthesizeVoice(name="tiny-single")))
    assert not whole.errors and whole.pcm
    for pieces in ([text], [text[i: i + 7] for i in range(0, len(text), 7)]):
        reply = streamed(server, pieces)
        assert not reply.errors, [e.text for e in reply.errors]
        assert reply.pcm == whole.pcm



def test_ssml_in_capitals_is_spoken_as_ssml_whole_and_streamed(server):  # noqa: F811
    """``<SPEAK>`` was not SSML: the voice read "speak", "break time" and the rest of the tags aloud with the words."""
    lower = '<speak>Hello there. <break time="400ms"/>Good morning.</speak>'
    upper = '<SPEAK>Hello there. <BREAK TIME="400ms"/>Good morning.</SPEAK>'
    whole = run(synthesize(server, lower, SynthesizeVoice(name="tiny-single")))
    said = run(synthesize(server, upper, SynthesizeVoice(name="tiny-single")))
    assert not whole.errors and not said.errors and said.pcm == whole.pcm
    reply = streamed(server, [upper[i: i + 7] for i in range(0, len(upper), 7)])
    assert not reply.errors and reply.pcm == whole.pcm


def test_a_stream_that_ends_inside_its_ssml_is_told_to_close_it(server):  # noqa: F811
    """hwy (s19): an LLM's reply cut inside <speak> got "the SSML is not well-formed XML: no element found at line 1,
    column 30", which said nothing of what to do (and Home Assistant then plays nothing)."""
    reply = streamed(server, ["<speak>Sure. ", "The light is ", "on."])
    assert [e.text for e in reply.errors] == ["the SSML is not well-formed XML: no element found at line 1, column 30: the "
                                              "document ends before its closing tags: close each tag opened, the last with </speak>"]


def test_an_ssml_end_tag_inside_a_comment_does_not_end_a_streamed_document(server):  # noqa: F811
    """hwy4 item 3: a streamed document was cut at a ``</speak>`` inside a comment (or CDATA section), which a whole
    ``synthesize`` reads as XML does; the stream got 'the SSML is not well-formed XML: unclosed token' and no audio."""
    for text in ('<speak>Hello there. <!-- was </speak> --><break time="400ms"/>Good morning.</speak>',
                 '<speak>Hello there. <![CDATA[A </speak> B]]> Good morning.</speak>'):
        whole = run(synthesize(server, text, SynthesizeVoice(name="tiny-single")))
        reply = streamed(server, [text[i: i + 7] for i in range(0, len(text), 7)])
        assert not whole.errors and whole.pcm
        assert not reply.errors, [e.text for e in reply.errors]
        assert reply.pcm == whole.pcm


def test_an_assistants_emoji_are_not_spoken_and_a_number_after_no_stays_in_its_sentence(server):  # noqa: F811
    """An assistant's streamed reply: its emoji were read by name ("smiling face with smiling eyes", "party popper"), and
    "No." before a number ended a sentence ("he lives at no" with a sentence's fall, then "10 Downing Street")."""
    plain = streamed(server, ["Sure!", " Here you", " go."])
    reply = streamed(server, ["Sure!", " 😊", " Here you", " go.", " 🎉"])
    assert not reply.errors and reply.pcm == plain.pcm
    whole = run(synthesize(server, "He lives at No. 10 Downing Street.", SynthesizeVoice(name="tiny-single")))
    reply = streamed(server, ["He lives", " at No.", " 10 Downing", " Street."])
    assert not whole.errors and not reply.errors and reply.pcm == whole.pcm
