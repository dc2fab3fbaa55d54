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


def test_ssml_sent_as_a_stream_is_spoken_whole(server):  # noqa: F811
    """Home Assistant sends a streaming server its whole message as synthesize-chunk events (and repeats it in a
    synthesize it tells us to ignore): an SSML document cut at its first sentence end was refused as not well-formed."""
    from test_wyoming import read_reply
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

    text = '<speak>Hello there. <break time="400ms"/>Good morning.</speak>'

    async def stream(pieces):
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            for piece in pieces:
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tiny-single")).event())
            await client.write_event(SynthesizeStop().event())
            return await read_reply(client, SynthesizeStopped().event().type)

    whole = run(synthesize(server, text, SynthesizeVoice(name="tiny-single")))
    assert not whole.errors and whole.pcm
    for pieces in ([text], [text[i: i + 7] for i in range(0, len(text), 7)]):
        reply = run(stream(pieces))
        assert not reply.errors, [e.text for e in reply.errors]
        assert reply.pcm == whole.pcm
