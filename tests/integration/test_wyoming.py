"""The Wyoming server with real engines, through the wyoming package's own client, on loopback.

One server for the module (in this process, on a thread of its own, with the real engine and its
subprocess workers), serving two generated Piper voices and one cloned XTTS voice. Piper runs at
zero noise, so the same text gives the same audio every time: that is how each client's stream is
checked to be complete and its own, and how the audio is compared with ``piper-infer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import soundfile
from conftest import BIN, run_cli
from processes import alive, children, wait_for

wyoming = pytest.importorskip("wyoming")

from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice  # noqa: E402

from demod_voice.backends.xtts.request import language_missing  # noqa: E402
from demod_voice.config import XTTS_LANGUAGES  # noqa: E402

MAX_EVENT_DATA = 64 * 1024
TEXT = "The quick brown fox jumps over the lazy dog. It was not amused!"
TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    uri: str
    port: int
    env: dict
    ctx: object
    loop: asyncio.AbstractEventLoop = None
    stop: asyncio.Event = None
    thread: threading.Thread = None

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port, connect_timeout=10, read_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice, piper_multi_voice, xtts_model, references):
    from demod_voice.config import load_config
    from demod_voice.engine.service import EngineService
    from demod_voice.serve.core import build_context
    from demod_voice.serve.wyoming.server import run_wyoming

    home = tmp_path_factory.mktemp("wyoming")
    cache = home / "cache"
    (cache / "piper").mkdir(parents=True)
    for name, model in (("tiny-single", piper_voice), ("tiny-multi", piper_multi_voice)):
        shutil.copy(model, cache / "piper" / f"{name}.onnx")
        shutil.copy(f"{model}.json", cache / "piper" / f"{name}.onnx.json")
    env = {"XDG_CONFIG_HOME": str(home / "xdg"), "DEMOD_VOICE_CACHE_DIR": str(cache),
           "DEMOD_VOICE_PIPER_NOISE_SCALE": "0", "DEMOD_VOICE_PIPER_NOISE_W_SCALE": "0",
           "DEMOD_VOICE_XTTS_MODEL_DIR": str(xtts_model), "DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}
    added = run_cli("voices", "add", "alice", str(references["ref.wav"]), env=env)
    assert added.returncode == 0, added.stderr.decode()

    config, _ = load_config(None, env=env)
    engine = EngineService(config.engine, workers=1)
    ctx = build_context(config, engine)
    port = free_port()
    srv = Server(f"tcp://127.0.0.1:{port}", port, env, ctx)
    ready = threading.Event()

    async def serve():
        srv.stop = asyncio.Event()
        srv.loop = asyncio.get_running_loop()
        task = asyncio.create_task(run_wyoming(srv.uri, ctx, stop=srv.stop))
        await asyncio.sleep(0)
        ready.set()
        await task

    srv.thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    srv.thread.start()
    assert ready.wait(10)
    _wait_listening(port)
    yield srv
    srv.loop.call_soon_threadsafe(srv.stop.set)
    srv.thread.join(10)
    engine.shutdown()


def _wait_listening(port: int, process: Optional[subprocess.Popen] = None) -> None:
    for _ in range(600):
        assert process is None or process.poll() is None, process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the Wyoming server did not start listening")


@dataclass
class Reply:
    """Everything one request got back."""

    events: list = field(default_factory=list)
    start: Optional[AudioStart] = None
    pcm: bytearray = field(default_factory=bytearray)
    first_audio: Optional[float] = None
    errors: list = field(default_factory=list)

    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self.pcm), dtype="<i2")


async def read_reply(client: AsyncTcpClient, until: str, start: Optional[AudioStart] = None) -> Reply:
    """Read events until one of type ``until``; check every audio event carries the stream's format."""
    reply = Reply(start=start)
    while True:
        event = await client.read_event()
        assert event is not None, f"the server closed the connection; got {[e.type for e in reply.events]}"
        reply.events.append(event)
        if AudioStart.is_type(event.type):
            reply.start = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert reply.start is not None, "audio-chunk before audio-start"
            assert (chunk.rate, chunk.width, chunk.channels) == (reply.start.rate, 2, 1)
            reply.first_audio = reply.first_audio or time.perf_counter()
            reply.pcm += chunk.audio
        elif AudioStop.is_type(event.type) and reply.start is not None:
            assert event.data.get("rate") == reply.start.rate and event.data.get("width") == 2 and event.data.get("channels") == 1
        elif Error.is_type(event.type):
            reply.errors.append(Error.from_event(event))
        if event.type == until:
            return reply


async def synthesize(server: Server, text: str, voice: Optional[SynthesizeVoice] = None) -> Reply:
    async with server.client() as client:
        await client.write_event(Synthesize(text=text, voice=voice).event())
        return await read_reply(client, AudioStop().event().type)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_describe_lists_piper_and_cloned_voices(server):
    async def describe():
        async with server.client() as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    info = run(describe())
    (program,) = info.tts
    assert program.installed and program.supports_synthesize_streaming
    voices = {voice.name: voice for voice in program.voices}
    assert {"tiny-single", "tiny-multi", "alice"} <= set(voices)
    assert all(voice.installed for voice in voices.values())
    assert voices["tiny-single"].languages == ["en_US"] and not voices["tiny-single"].speakers
    assert [s.name for s in voices["tiny-multi"].speakers] == ["speaker_0", "speaker_1", "speaker_2"]
    alice = voices["alice"]
    # the languages XTTS speaks here: Japanese and Chinese only with coqui-tts's ja/zh extras (offered, they then failed)
    ready = [code for code in XTTS_LANGUAGES if not language_missing(code)]
    assert alice.languages[0] == "en" and sorted(alice.languages) == sorted(ready) and {"de", "fr"} <= set(ready)
    assert ("ja" in alice.languages) == (importlib.util.find_spec("cutlet") is not None)
    assert "XTTS" in alice.description and "Piper" in voices["tiny-single"].description


def test_an_alias_of_a_cloned_voice_lists_its_languages_as_speakers(server):
    """hE item 9: ``serve.voices: {kitchen: {profile: alice}}`` was listed with no speakers, so Home Assistant could
    not pick its language (the server took ``speaker: de`` for it all the same)."""
    ctx = server.ctx
    config = ctx.config
    ctx.config = dataclasses.replace(config, serve=dataclasses.replace(config.serve, voices={"kitchen": {"profile": "alice"}}))
    try:
        async def describe():
            async with server.client() as client:
                await client.write_event(Describe().event())
                return Info.from_event(await client.read_event())

        voices = {voice.name: voice for voice in run(describe()).tts[0].voices}
    finally:
        ctx.config = config
    kitchen, alice = voices["kitchen"], voices["alice"]
    assert kitchen.languages == alice.languages and [s.name for s in kitchen.speakers] == [s.name for s in alice.speakers]
    assert "de" in [s.name for s in kitchen.speakers]


def test_a_speaker_asked_of_a_piper_alias_is_refused(server):
    """hwy item 8: ``serve.voices: {radio: {model: tiny-multi, speaker: speaker_1}}`` (listed with no speakers) took
    ``speaker: speaker_2`` and spoke speaker_1, silently (a speaker on a single-speaker voice is refused: 808190f)."""
    ctx = server.ctx
    config = ctx.config
    aliases = {"radio": {"model": "tiny-multi", "speaker": "speaker_1"}, "plain": "tiny-single"}
    ctx.config = dataclasses.replace(config, serve=dataclasses.replace(config.serve, voices=aliases))
    try:
        asked = [run(synthesize(server, "Hello.", SynthesizeVoice(name=name, speaker="speaker_2"))) for name in aliases]
        own = run(synthesize(server, "Hello.", SynthesizeVoice(name="radio")))
    finally:
        ctx.config = config
    for name, reply in zip(aliases, asked, strict=True):
        assert [(e.code, e.text) for e in reply.errors] == [("UnknownVoice", f"the voice '{name}' (an alias) takes no "
                                                                             "speaker: leave 'speaker' out")]
        assert not reply.pcm and reply.events[-1].type == "audio-stop"
    assert not own.errors and len(own.pcm) > 0


def test_piper_audio_is_piper_infer_audio(server, tmp_path):
    reply = run(synthesize(server, TEXT, SynthesizeVoice(name="tiny-single")))
    assert not reply.errors and reply.start.rate == 22050
    out = tmp_path / "ref.wav"
    done = run_cli("piper-infer", str(server.ctx.cache / "piper" / "tiny-single.onnx"), TEXT, "-o", str(out),
                   "--noise-scale", "0", "--noise-w-scale", "0", env=server.env)
    assert done.returncode == 0, done.stderr.decode()
    expected, rate = soundfile.read(str(out), dtype="int16")
    got = reply.samples()
    assert rate == reply.start.rate and len(got) == len(expected) > rate // 2
    # the same audio up to its level: a stream's sentences come in decoder windows, scaled by the voice's
    # level rather than by their own peak, which is not known before a sentence ends (docs/performance.md)
    assert np.corrcoef(got.astype(float), expected.astype(float))[0, 1] > 0.99
    assert np.abs(got).max() > 100  # not silence


def test_voice_by_speaker_and_by_language(server):
    one = run(synthesize(server, TEXT, SynthesizeVoice(name="tiny-multi", speaker="speaker_1")))
    two = run(synthesize(server, TEXT, SynthesizeVoice(name="tiny-multi", speaker="speaker_2")))
    again = run(synthesize(server, TEXT, SynthesizeVoice(name="tiny-multi", speaker="1")))
    assert not (one.errors or two.errors or again.errors)
    assert np.array_equal(one.samples(), again.samples())  # by name and by number: the same speaker
    assert not np.array_equal(one.samples(), two.samples())
    by_language = run(synthesize(server, TEXT, SynthesizeVoice(language="en_US")))
    assert not by_language.errors and len(by_language.pcm) > 0 and by_language.start.rate == 22050


def test_a_language_alone_picks_a_piper_voice_before_a_cloned_one(server):
    """hE item 4: ``language: en`` matched a cloned voice's ``en`` exactly before Piper's ``en_US`` by family."""
    from demod_voice.serve.voices import UnknownVoice
    from demod_voice.serve.wyoming.voices import WyomingVoice, pick

    clone = WyomingVoice("alice", "xtts", ("en", "de", "fr"), ("en", "de", "fr"), picks_language=True)
    piper_gb, piper_us = WyomingVoice("gb", "piper", ("en_GB",)), WyomingVoice("us", "piper", ("en_US",))
    voices = [piper_gb, piper_us, clone]
    assert pick(voices, None, "en", None) == (piper_gb, None)
    assert pick(voices, None, "en-us", None) == (piper_us, None)  # exact before family, within Piper's
    assert pick(voices, None, "de", None) == (clone, "de")
    with pytest.raises(UnknownVoice, match=r"^no voice here speaks 'xx': ask for one of de, en, en_GB, en_US, fr$"):
        pick(voices, None, "xx", None)  # it said "(en, en_GB, en_US do)": the cloned voice's first language only
    reply = run(synthesize(server, "Hello.", SynthesizeVoice(language="en")))
    assert not reply.errors and reply.start.rate == 22050  # Piper's, not XTTS's 24000


def test_a_request_naming_no_voice_gets_the_configured_default_voice(server):
    """Home Assistant names no voice unless one was picked for its pipeline: such requests got the first voice by name
    (installing one named 'amy' changed what the kitchen speaker said), not ``piper.default_voice`` as HTTP does."""
    def unnamed(default: str) -> Reply:
        config = server.ctx.config
        server.ctx.config = dataclasses.replace(config, piper=dataclasses.replace(config.piper, default_voice=default))
        try:
            return run(synthesize(server, "Good morning."))
        finally:
            server.ctx.config = config

    first = _describe_names(server)[0]
    single, listed_first = (run(synthesize(server, "Good morning.", SynthesizeVoice(name=name))) for name in ("tiny-single", first))
    assert first != "tiny-single" and single.pcm != listed_first.pcm
    assert unnamed("tiny-single").pcm == single.pcm
    assert unnamed("alice").start.rate == 24000  # a cloned voice, in its own language
    assert unnamed("en_GB-not-installed").pcm == listed_first.pcm  # not installed here: the first voice, as before


def test_a_default_voice_given_as_a_file_is_the_one_spoken_for_a_request_naming_none(server, piper_voice, tmp_path):
    """``piper.default_voice`` may be "a voice name or an .onnx path" (the config says so, and piper-infer takes either). A
    path matched no voice's name: Wyoming spoke the first voice listed, and HTTP refused ("the default voice is not
    installed here"). The file is now offered under its name, and spoken for a request naming no voice."""
    from demod_voice.serve.voices import resolve_voice

    kitchen = tmp_path / "voices" / "kitchen.onnx"
    kitchen.parent.mkdir()
    shutil.copy(piper_voice, kitchen)
    shutil.copy(f"{piper_voice}.json", f"{kitchen}.json")
    config = server.ctx.config
    single = run(synthesize(server, "Good morning.", SynthesizeVoice(name="tiny-single")))
    for default in (str(kitchen), str(Path(server.env["DEMOD_VOICE_CACHE_DIR"]) / "piper" / "tiny-single.onnx")):
        server.ctx.config = dataclasses.replace(config, piper=dataclasses.replace(config.piper, default_voice=default))
        try:
            listed, unnamed = _describe_names(server), run(synthesize(server, "Good morning."))
            http = resolve_voice(server.ctx, None, "")
        finally:
            server.ctx.config = config
        name = Path(default).name.removesuffix(".onnx")
        assert name in listed and unnamed.pcm == single.pcm and http.voice_id == name and http.spec.model == default
    assert "kitchen" not in _describe_names(server)  # offered while it is the default voice only


def test_a_default_voice_file_that_is_missing_is_said_at_start_and_refused_as_http_does(server, tmp_path, caplog):
    """A ``piper.default_voice`` path that does not exist (a typo, a voice moved away): HTTP refused a request naming no
    voice, while Wyoming spoke the first voice listed without a word, and nothing said so at start. Now the log says so
    at start, and Wyoming answers an ``error`` saying what to do, with no server path in it."""
    from demod_voice.serve.voices import UnknownVoice, resolve_voice, say_missing_default

    gone = tmp_path / "private" / "kitchen.onnx"
    config = server.ctx.config
    server.ctx.config = dataclasses.replace(config, piper=dataclasses.replace(config.piper, default_voice=str(gone)))
    try:
        with caplog.at_level(logging.WARNING, logger="demod_voice.serve.voices"):
            say_missing_default(server.ctx)
        unnamed = run(synthesize(server, "Good morning."))
        named = run(synthesize(server, "Good morning.", SynthesizeVoice(name="tiny-single")))
        with pytest.raises(UnknownVoice, match="names no voice"):
            resolve_voice(server.ctx, None, "")
    finally:
        server.ctx.config = config
    assert [record.levelno for record in caplog.records] == [logging.WARNING] and str(gone) in caplog.text
    assert not unnamed.pcm and [e.code for e in unnamed.errors] == ["UnknownVoice"]
    text = unnamed.errors[0].text
    assert "piper.default_voice" in text and "tiny-single" in text and "private" not in text
    assert not named.errors and named.pcm  # a named voice is spoken as before


def test_an_alias_as_the_default_voice_is_spoken_by_http_as_by_wyoming(server, caplog):
    """``piper.default_voice: kitchen`` with ``serve.voices: {kitchen: ...}``: Wyoming spoke the alias for a request naming
    no voice, while HTTP refused the same request ("the default voice is not installed here: use one of kitchen, ...")
    and the start-up said it was not installed."""
    from demod_voice.serve.voices import resolve_voice, say_missing_default

    config = server.ctx.config
    server.ctx.config = dataclasses.replace(config, piper=dataclasses.replace(config.piper, default_voice="kitchen"),
                                            serve=dataclasses.replace(config.serve, voices={"kitchen": {"model": "tiny-multi",
                                                                                                      "speaker": "speaker_1"}}))
    try:
        with caplog.at_level(logging.WARNING, logger="demod_voice.serve.voices"):
            say_missing_default(server.ctx)
        unnamed = run(synthesize(server, "Good morning."))
        http = resolve_voice(server.ctx, None, "")
        named = resolve_voice(server.ctx, "tiny-multi", "speaker_1")
    finally:
        server.ctx.config = config
    speaker = run(synthesize(server, "Good morning.", SynthesizeVoice(name="tiny-multi", speaker="speaker_1")))
    assert not caplog.records and not unnamed.errors and unnamed.pcm == speaker.pcm
    assert (http.voice_id, http.spec) == (named.voice_id, named.spec)


def test_cloned_voice_speaks_at_24k(server):
    reply = run(synthesize(server, "Hello from a cloned voice.", SynthesizeVoice(name="alice")))
    assert not reply.errors, reply.errors
    assert reply.start.rate == 24000 and len(reply.samples()) > 0 and np.abs(reply.samples()).max() > 0
    german = run(synthesize(server, "Guten Tag.", SynthesizeVoice(name="alice", speaker="de")))
    assert not german.errors and german.start.rate == 24000 and len(german.pcm) > 0


def test_unknown_voice_gets_an_error_event_and_the_connection_stays(server):
    async def exchange():
        async with server.client() as client:
            replies = []
            for voice in (SynthesizeVoice(name="nobody"), SynthesizeVoice(name="tiny-multi", speaker="speaker_9"),
                          SynthesizeVoice(language="xx_XX"), SynthesizeVoice(name="alice", speaker="klingon"),
                          SynthesizeVoice(name="tiny-single")):
                await client.write_event(Synthesize(text="Still here.", voice=voice).event())
                replies.append(await read_reply(client, "audio-stop"))
            return replies

    *bad, good = run(exchange())
    for reply in bad:
        assert len(reply.errors) == 1 and reply.start is None and not reply.pcm
    assert bad[0].errors[0].code == "UnknownVoice" and "nobody" in bad[0].errors[0].text
    assert "speaker_9" in bad[1].errors[0].text and "xx_XX" in bad[2].errors[0].text
    assert not good.errors and len(good.pcm) > 0


def test_a_speaker_on_a_single_speaker_voice_is_refused(server):
    """hE item 7: a speaker a single-speaker Piper voice does not have was ignored (docs: unknown speakers are errors)."""
    reply = run(synthesize(server, "Hello.", SynthesizeVoice(name="tiny-single", speaker="3")))
    assert [(e.code, e.text) for e in reply.errors] == [("UnknownVoice", "the voice 'tiny-single' has a single speaker: "
                                                                          "leave 'speaker' out")]
    assert not reply.pcm and reply.events[-1].type == "audio-stop"


def test_a_chunk_outside_a_stream_says_what_to_send(server):
    """hE item 9: it said 'synthesize-chunk outside synthesize-start/synthesize-stop', not what to do."""
    async def exchange():
        async with server.client() as client:
            await client.write_event(SynthesizeChunk(text="Hello.").event())
            return Error.from_event(await client.read_event())

    said = run(exchange())
    assert said.text == "synthesize-chunk outside a stream: send synthesize-start first (and synthesize-stop at the end)"


def test_a_damaged_voice_is_said_to_be_damaged(server):
    """hE item 2: a profile damaged on disk was 'there is no voice ... here'; HTTP says 503 damaged_voice."""
    damaged = server.ctx.profiles / "broken.npz"
    damaged.write_bytes(b"PK\x03\x04 cut short")
    try:
        reply = run(synthesize(server, "Hello.", SynthesizeVoice(name="broken")))
    finally:
        damaged.unlink()
    assert [e.text for e in reply.errors] == ["the voice 'broken' is damaged on this server: delete it and enroll it again"]
    assert reply.events[-1].type == "audio-stop" and not reply.pcm


def _describe_names(server: Server) -> list[str]:
    async def describe():
        async with server.client() as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    return [voice.name for voice in run(describe()).tts[0].voices]


def test_a_damaged_piper_voice_is_not_offered_and_is_named_not_its_file(server, piper_voice):
    """hwy item 1: a Piper voice whose .onnx.json was cut short was listed by describe and, first by name, became the
    default voice: every request naming none got 'voice config /srv/.../a-broken.onnx.json is not readable JSON'."""
    piper = Path(server.env["DEMOD_VOICE_CACHE_DIR"]) / "piper"
    shutil.copy(piper_voice, piper / "a-broken.onnx")
    (piper / "a-broken.onnx.json").write_text('{"audio": ')
    try:
        listed = _describe_names(server)
        default = run(synthesize(server, "Hello."))
        named = run(synthesize(server, "Hello.", SynthesizeVoice(name="a-broken")))
    finally:
        for suffix in (".onnx", ".onnx.json"):
            (piper / f"a-broken{suffix}").unlink()
    assert "a-broken" not in listed and "tiny-single" in listed
    assert not default.errors and len(default.pcm) > 0
    assert [(e.code, e.text) for e in named.errors] == [("ModelMissing", "the voice 'a-broken' is damaged on this server: "
                                                                         "download it again")]
    assert named.events[-1].type == "audio-stop" and not named.pcm


def test_a_piper_voice_that_cannot_load_is_named_not_its_file(server, piper_voice):
    """hwy item 2: a Piper voice whose .onnx was cut short answered 'cannot load voice /srv/.../a-cut.onnx: not a usable
    ONNX model (...)' to every Wyoming client: the server's path."""
    piper = Path(server.env["DEMOD_VOICE_CACHE_DIR"]) / "piper"
    (piper / "a-cut.onnx").write_bytes(piper_voice.read_bytes()[:100_000])
    shutil.copy(f"{piper_voice}.json", piper / "a-cut.onnx.json")
    try:
        reply = run(synthesize(server, "Hello.", SynthesizeVoice(name="a-cut")))
    finally:
        for suffix in (".onnx", ".onnx.json"):
            (piper / f"a-cut{suffix}").unlink()
    assert [(e.code, e.text) for e in reply.errors] == [("ModelMissing", "the voice 'a-cut' cannot be loaded on this server "
                                                                         "(its model file is damaged): install it again")]
    assert reply.events[-1].type == "audio-stop" and not reply.pcm


def test_a_piper_voice_of_several_speakers_without_names_offers_them_by_number(server, piper_multi_voice):
    """hwy4 item 1: a Piper voice with num_speakers 3 and an empty speaker_id_map was listed with no speakers, so Home
    Assistant offered none, and naming one ('1') was refused as 'the voice has a single speaker'; HTTP spoke each."""
    piper = Path(server.env["DEMOD_VOICE_CACHE_DIR"]) / "piper"
    config = json.loads(Path(f"{piper_multi_voice}.json").read_text())
    shutil.copy(piper_multi_voice, piper / "a-numbered.onnx")
    (piper / "a-numbered.onnx.json").write_text(json.dumps({**config, "speaker_id_map": {}}))

    async def describe():
        async with server.client() as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    try:
        listed = next(voice for voice in run(describe()).tts[0].voices if voice.name == "a-numbered")
        spoken = [run(synthesize(server, TEXT, SynthesizeVoice(name="a-numbered", speaker=speaker))) for speaker in ("0", "1")]
        named = run(synthesize(server, TEXT, SynthesizeVoice(name="tiny-multi", speaker="speaker_1")))
        beyond = run(synthesize(server, TEXT, SynthesizeVoice(name="a-numbered", speaker="3")))
    finally:
        for suffix in (".onnx", ".onnx.json"):
            (piper / f"a-numbered{suffix}").unlink()
    assert [speaker.name for speaker in listed.speakers or []] == ["0", "1", "2"]
    assert [reply.errors for reply in spoken] == [[], []]
    assert spoken[0].pcm != spoken[1].pcm and spoken[1].pcm == named.pcm  # speaker 1 is the named voice's speaker_1
    assert [e.text for e in beyond.errors] == ["speaker '3' is not in this voice (a-numbered.onnx.json): use a number from 0 to 2"]


def test_a_malformed_synthesize_still_ends_with_audio_stop(server):
    """hE item 5: a synthesize whose fields were wrong got an error and never audio-stop (a client reading until it
    waited for its own timeout)."""
    from wyoming.event import async_read_event

    lines = [{"type": "synthesize", "data": {"text": 5}}, {"type": "synthesize", "data": {}},
             {"type": "synthesize", "data": {"text": "hi", "voice": "tiny-single"}},
             {"type": "synthesize-start", "data": {"voice": "tiny-single"}}, {"type": "synthesize-stop"}]

    async def exchange():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            events = []
            while not events or events[-1].type != "synthesize-stopped":
                events.append(await async_read_event(reader))
            return events
        finally:
            writer.close()

    events = run(exchange())
    assert [event.type for event in events] == ["error", "audio-stop"] * 3 + ["error", "synthesize-stopped"]
    assert all(event.data["code"] == "BadEvent" for event in events if event.type == "error")


def test_empty_text_is_an_error_event(server):
    """hE item 6: empty or blank text got a bare audio-stop (HTTP says 400 empty_input)."""
    for text in ("", "   \n "):
        reply = run(synthesize(server, text, SynthesizeVoice(name="tiny-single")))
        assert [e.text for e in reply.errors] == ["'text' is empty: give the text to speak"] and not reply.pcm
        assert [event.type for event in reply.events] == ["error", "audio-stop"]


def test_streaming_flow_speaks_each_sentence_when_complete(server):
    first, second = "The first sentence is here. ", "And then the second one arrives later"

    async def stream():
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            for i in range(0, len(first), 3):  # text in small pieces, as an LLM writes it
                await client.write_event(SynthesizeChunk(text=first[i: i + 3]).event())
            # The first sentence is complete: its audio comes before the stream is stopped.
            event = await client.read_event()
            assert AudioStart.is_type(event.type)
            start = AudioStart.from_event(event)
            event = await client.read_event()
            assert AudioChunk.is_type(event.type)
            early = AudioChunk.from_event(event).audio
            for i in range(0, len(second), 4):
                await client.write_event(SynthesizeChunk(text=second[i: i + 4]).event())
            await client.write_event(Synthesize(text=first + second).event())  # Home Assistant repeats it: ignored
            await client.write_event(SynthesizeStop().event())
            reply = await read_reply(client, SynthesizeStopped().event().type, start)
            return early, reply

    early, reply = run(stream())
    types = [event.type for event in reply.events]
    assert not reply.errors and types.count("audio-start") == 0 and types.count("audio-stop") == 1
    assert types[-2:] == ["audio-stop", "synthesize-stopped"]
    sentence_one = run(synthesize(server, first.strip(), SynthesizeVoice(name="tiny-single")))
    sentence_two = run(synthesize(server, second, SynthesizeVoice(name="tiny-single")))
    assert early + reply.pcm == sentence_one.pcm + sentence_two.pcm  # both sentences, once each, in order


def test_a_stream_without_chunks_speaks_its_synthesize_text(server):
    async def stream():
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            await client.write_event(Synthesize(text="Only this sentence.").event())
            await client.write_event(SynthesizeStop().event())
            return await read_reply(client, SynthesizeStopped().event().type)

    reply = run(stream())
    alone = run(synthesize(server, "Only this sentence.", SynthesizeVoice(name="tiny-single")))
    assert not reply.errors and reply.pcm == alone.pcm and len(alone.pcm) > 0


async def stream(server: Server, pieces: list[str], voice: Optional[SynthesizeVoice]) -> Reply:
    """Home Assistant's streaming flow: start, the pieces, the whole text again, stop."""
    async with server.client() as client:
        await client.write_event(SynthesizeStart(voice=voice).event())
        for piece in pieces:
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(Synthesize(text="".join(pieces), voice=voice).event())
        await client.write_event(SynthesizeStop().event())
        return await read_reply(client, SynthesizeStopped().event().type)


def test_a_sentence_with_nothing_to_say_does_not_silence_the_rest_of_a_stream(server):
    """An LLM's reply streamed with a sentence that is only ``...``: its 'no audio' error failed the whole answer, so
    Home Assistant (which reads past error events) played the first sentence, or with a cloned voice nothing at all."""
    pieces = ["Sure. ", "... ", "The kitchen light is on now."]
    reply = run(stream(server, pieces, SynthesizeVoice(name="tiny-single")))
    alone = [run(synthesize(server, text, SynthesizeVoice(name="tiny-single"))).pcm for text in ("Sure.", pieces[2])]
    assert not reply.errors, [e.text for e in reply.errors]
    assert reply.pcm == alone[0] + alone[1] and len(alone[1]) > 0
    cloned = run(stream(server, ["Sure. ", "--- ", "The light is on."], SynthesizeVoice(name="alice", speaker="en")))
    assert not cloned.errors and len(cloned.pcm) > 0, [e.text for e in cloned.errors]
    assert [event.type for event in cloned.events][-2:] == ["audio-stop", "synthesize-stopped"]


def test_a_stream_with_nothing_to_say_at_all_ends_with_an_error_event(server):
    """Sentences with nothing to say are skipped; when nothing at all was said the stream still says why."""
    for voice in (SynthesizeVoice(name="tiny-single"), SynthesizeVoice(name="alice", speaker="en")):
        reply = run(stream(server, ["... ", "---"], voice))
        said = "the text produced no audio" if voice.name == "tiny-single" else "the text has no words to speak"
        assert [(e.code, e.text.split(" (")[0]) for e in reply.errors] == [("NothingToSpeak", said)]
        assert [event.type for event in reply.events] == ["error", "synthesize-stopped"] and not reply.pcm


def test_a_stream_with_no_text_is_an_error_event(server):
    """A stream with no text (start then stop; or blank chunks) ended with a bare synthesize-stopped, while an empty
    synthesize says "'text' is empty". Home Assistant reads past the error to synthesize-stopped, as before."""
    async def empty(chunks: list[str]) -> tuple[Reply, Reply]:
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            for text in chunks:
                await client.write_event(SynthesizeChunk(text=text).event())
            await client.write_event(SynthesizeStop().event())
            refused = await read_reply(client, SynthesizeStopped().event().type)
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="tiny-single")).event())
            return refused, await read_reply(client, "audio-stop")

    for chunks in ([], ["", " \n "]):
        refused, after = run(empty(chunks))
        assert [event.type for event in refused.events] == ["error", "synthesize-stopped"]
        assert [(e.code, e.text) for e in refused.errors] == [("InputError", "the stream held no text: send the text to speak in "
                                                               "synthesize-chunk events before synthesize-stop")]
        assert not after.errors and len(after.pcm) > 0  # the connection serves the next request


def test_disconnect_mid_stream_cancels_the_job(server):
    engine = server.ctx.engine
    long_text = " ".join(f"This is sentence number {i} of a long story." for i in range(60))

    async def leave_early():
        async with server.client() as client:
            await client.write_event(Synthesize(text=long_text, voice=SynthesizeVoice(name="tiny-single")).event())
            while not AudioChunk.is_type((await client.read_event()).type):
                pass
        # the client is gone

    cancelled = engine.stats()["cancelled"]
    run(leave_early())
    deadline = time.monotonic() + 30
    while engine.stats()["cancelled"] == cancelled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.stats()["cancelled"] == cancelled + 1
    while engine.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.stats()["running"] == 0  # its worker slot is free again
    after = run(synthesize(server, "Served after that.", SynthesizeVoice(name="tiny-single")))
    assert not after.errors and len(after.pcm) > 0


def test_a_client_gone_in_the_middle_of_a_stream_has_its_sentences_cancelled_at_once(server):
    """hwy4 item 2: a client that left with its stream open (Home Assistant cancelling a reply) was taken for one that
    shut only its sending side: the engine went on making its sentences until a write failed (an XTTS stream's 8
    sentences ahead: 8 s), and the next announcement waited behind them. Its end is seen as it shuts its side."""
    from wyoming.event import async_read_event

    engine = server.ctx.engine
    sentences = " ".join(f"This is sentence number {i} of a reply nobody hears." for i in range(12))

    async def leave_mid_stream():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for event in (SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event(), SynthesizeChunk(text=sentences).event()):
                writer.write(json.dumps({"type": event.type, "data": event.data}).encode() + b"\n")
            writer.write_eof()  # no synthesize-stop: the request is abandoned
            events = []
            while (event := await async_read_event(reader)) is not None:
                events.append(event.type)
            return events
        finally:
            writer.close()

    cancelled = engine.stats()["cancelled"]
    events = run(leave_mid_stream())
    deadline = time.monotonic() + 30
    while engine.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "audio-chunk" not in events, events
    assert engine.stats()["cancelled"] > cancelled
    after = run(synthesize(server, "Served after that.", SynthesizeVoice(name="tiny-single")))
    assert not after.errors and len(after.pcm) > 0


def test_a_client_that_shuts_its_sending_side_still_gets_its_answers(server):
    """hwy item 3: a client that shut its sending side after its events (``nc -N``, ``write_eof()``) got nothing back,
    not even the info for a describe: the end of its events was taken for it going away and the answers dropped."""
    from wyoming.event import async_read_event

    async def exchange():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for event in (Describe().event(), Synthesize(text="Hello.", voice=SynthesizeVoice(name="tiny-single")).event()):
                writer.write(json.dumps({"type": event.type, "data": event.data}).encode() + b"\n")
            writer.write_eof()
            events = []
            while (event := await async_read_event(reader)) is not None:
                events.append(event)
            return events
        finally:
            writer.close()

    events = run(exchange())
    types = [event.type for event in events]
    assert types[0] == "info" and types[1] == "audio-start" and types[-1] == "audio-stop", types
    assert sum(len(event.payload or b"") for event in events if AudioChunk.is_type(event.type)) > 0


@contextlib.contextmanager
def limits(server, **changes):
    """The running server's limits changed for one test (the context is read on every request)."""
    ctx, engine = server.ctx, server.ctx.engine
    config, settings = ctx.config, engine.settings
    serve = dataclasses.replace(config.serve, limits=dataclasses.replace(config.serve.limits, **changes.get("serve", {})))
    ctx.config = dataclasses.replace(config, serve=serve)
    engine.settings = dataclasses.replace(settings, **changes.get("engine", {}))
    try:
        yield
    finally:
        ctx.config, engine.settings = config, settings


def test_a_full_queue_and_a_deadline_are_error_events(server):
    long_text = " ".join(f"This is sentence number {i} of a long story." for i in range(40))

    async def three_at_once():
        async with server.client() as client:
            for _ in range(3):
                await client.write_event(Synthesize(text=long_text, voice=SynthesizeVoice(name="tiny-single")).event())
            return [await read_reply(client, "audio-stop") for _ in range(3)]

    with limits(server, engine={"max_queued": 1}):
        replies = run(three_at_once())
    refused = [reply for reply in replies if reply.errors]
    assert refused and all(r.errors[0].code == "QueueFull" and "retry after" in r.errors[0].text and not r.pcm for r in refused)
    assert len(replies[0].pcm) > 0 and not replies[0].errors

    cancelled = server.ctx.engine.stats()["cancelled"]
    with limits(server, serve={"deadline_seconds": 0.1}):
        late = run(synthesize(server, long_text, SynthesizeVoice(name="tiny-single")))
    assert [e.code for e in late.errors] == ["Timeout"] and "deadline_seconds" in late.errors[0].text
    deadline = time.monotonic() + 30
    while server.ctx.engine.stats()["cancelled"] == cancelled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.ctx.engine.stats()["cancelled"] == cancelled + 1


def test_an_answer_cut_at_shutdown_gets_an_error_event(server):
    """hE item 8: an answer still streaming when the grace period ended was cut with no word (a client could not tell
    a shutdown from a network failure). A second server on the module's context, with a short grace."""
    from demod_voice.serve.wyoming.server import run_wyoming

    port = free_port()
    stopping: list[asyncio.Event] = []

    async def serve():
        stopping.append(asyncio.Event())
        await run_wyoming(f"tcp://127.0.0.1:{port}", server.ctx, stop=stopping[0], grace=0.2)

    served = asyncio.run_coroutine_threadsafe(serve(), server.loop)
    _wait_listening(port)
    long_text = " ".join(f"This is sentence number {i} of a long story." for i in range(80))

    async def cut():
        async with server_at(port).client() as client:
            await client.write_event(Synthesize(text=long_text, voice=SynthesizeVoice(name="tiny-single")).event())
            assert AudioStart.is_type((await client.read_event()).type)
            server.loop.call_soon_threadsafe(stopping[0].set)
            events = []
            while (event := await client.read_event()) is not None:
                events.append(event)
            return events

    events = run(cut())
    served.result(30)
    assert events[-1].type == "error" and "audio-stop" not in [event.type for event in events]
    said = Error.from_event(events[-1])
    assert said.code == "Draining" and said.text.startswith("the server is shutting down") and "try again" in said.text


def test_one_connection_holds_at_most_max_queued_requests(server):
    """Issue 26 item 6: a connection's unanswered requests count against engine.max_queued, running ones included
    (the engine's own bound counts only those still waiting)."""
    long_text = " ".join(f"This is sentence number {i} of a long story." for i in range(20))

    async def five_at_once():
        async with server.client() as client:
            for _ in range(5):
                await client.write_event(Synthesize(text=long_text, voice=SynthesizeVoice(name="tiny-single")).event())
            return [await read_reply(client, "audio-stop") for _ in range(5)]

    with limits(server, engine={"max_queued": 3}):
        replies = run(five_at_once())
    assert [bool(r.pcm) for r in replies] == [True, True, True, False, False]
    for reply in replies[3:]:
        assert reply.errors[0].code == "QueueFull" and "this connection has 3 requests not yet answered" in reply.errors[0].text


def test_a_stream_longer_than_the_queue_is_spoken_whole(server, monkeypatch):
    """A long reply streamed at once (an LLM's story; a long text Home Assistant streams whole) had more sentences than
    engine.max_queued: the stream was refused whole (QueueFull) and Home Assistant, reading past the error, played
    nothing. Its sentences now wait their turn in the server, a few ahead of the one being sent."""
    from demod_voice.serve.wyoming import handler

    sentence = "Line one of the story."
    one = run(synthesize(server, sentence, SynthesizeVoice(name="tiny-single")))
    with limits(server, engine={"max_queued": 3}):
        reply = run(stream(server, [f"{sentence} " * 12], SynthesizeVoice(name="tiny-single")))
        assert not reply.errors, [e.text for e in reply.errors]
        assert reply.pcm == one.pcm * 12  # every sentence, once, in order
        monkeypatch.setattr(handler, "STREAM_WAITING", 4)  # what may wait is bounded: a client streaming text for ever
        flood = run(stream(server, [f"{sentence} " * 12], SynthesizeVoice(name="tiny-single")))
    assert [e.code for e in flood.errors] == ["QueueFull"] and "sentences waiting for their turn" in flood.errors[0].text
    assert [event.type for event in flood.events][-1] == "synthesize-stopped"


def test_a_long_stream_followed_by_requests_sent_at_once_is_still_spoken_whole(server):
    """A client that sends a long stream and then more requests before reading (a pipelining client; one connection
    holds engine.max_queued): the requests went to the engine at once and took the stream's eight places ahead, so
    each of its waiting sentences found no place at its turn and was dropped, silently (12 sentences: 8 spoken)."""
    sentence = "Line one of the story."
    one = run(synthesize(server, sentence, SynthesizeVoice(name="tiny-single")))

    async def stream_then_eight():
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            await client.write_event(SynthesizeChunk(text=f"{sentence} " * 12).event())
            await client.write_event(SynthesizeStop().event())
            for _ in range(8):
                await client.write_event(Synthesize(text=sentence, voice=SynthesizeVoice(name="tiny-single")).event())
            first = await read_reply(client, SynthesizeStopped().event().type)
            return first, [await read_reply(client, "audio-stop") for _ in range(8)]

    with limits(server, engine={"max_queued": 20}):
        streamed, after = run(stream_then_eight())
    assert not streamed.errors, [e.text for e in streamed.errors]
    assert streamed.pcm == one.pcm * 12  # every sentence, once, in order
    assert [reply.pcm == one.pcm for reply in after] == [True] * 8


def test_four_clients_at_once_each_get_their_own_complete_stream(server):
    texts = ["One short line.", "A second line, a little longer than the first.", "Three. Sentences. Here.",
             "The fourth client asks for this sentence, and then another one after it."]
    voices = [SynthesizeVoice(name="tiny-single"), SynthesizeVoice(name="tiny-multi", speaker="speaker_0"),
              SynthesizeVoice(name="tiny-single"), SynthesizeVoice(name="tiny-multi", speaker="speaker_2")]

    async def together():
        return await asyncio.gather(*(synthesize(server, text, voice) for text, voice in zip(texts, voices, strict=True)))

    concurrent = run(together())
    for text, voice, reply in zip(texts, voices, concurrent, strict=True):
        alone = run(synthesize(server, text, voice))
        assert not reply.errors and len(reply.pcm) > 0
        # complete, and nobody else's audio: the same samples, but for float rounding (alone, the stream is decoded in
        # windows; with others waiting, each sentence whole: docs/performance.md)
        concurrent_samples, alone_samples = reply.samples().astype(np.int32), alone.samples().astype(np.int32)
        assert len(concurrent_samples) == len(alone_samples) and np.max(np.abs(concurrent_samples - alone_samples)) <= 1


def test_text_over_the_limit_is_an_error_event(server):
    limit = server.ctx.settings.limits.max_input_chars
    reply = run(synthesize(server, "word " * (limit // 5 + 10), SynthesizeVoice(name="tiny-single")))
    assert len(reply.errors) == 1 and "max_input_chars" in reply.errors[0].text and not reply.pcm
    # what to do: a long text streams (sentence by sentence); in a stream only an SSML document can be that long
    assert reply.errors[0].text.endswith("send a longer text in pieces, as a stream (synthesize-start, synthesize-chunk events, "
                                         "synthesize-stop)")
    document = stream(server, ["<speak>" + "word " * (limit // 5 + 10) + "</speak>"], SynthesizeVoice(name="tiny-single"))
    (error,) = run(document).errors
    assert error.text.endswith("(serve.limits.max_input_chars): send SSML documents of fewer characters, one after another")


def test_a_text_too_long_for_one_event_says_what_to_send(server):
    """hwy item 5: a text over the event cap got "'data_length' is 100012 bytes; this server takes at most 65536", not
    what to do."""
    from wyoming.event import async_read_event

    text = "This is one sentence of a long story. " * (MAX_EVENT_DATA // 38 + 10)

    async def too_long():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            body = json.dumps({"text": text, "voice": {"name": "tiny-single"}}).encode()
            writer.write(json.dumps({"type": "synthesize", "data_length": len(body)}).encode() + b"\n" + body)
            return len(body), Error.from_event(await async_read_event(reader))
        finally:
            writer.close()

    size, said = run(too_long())
    assert said.code == "BadEvent" and said.text.startswith(f"'data_length' is {size} bytes")
    assert said.text.endswith("send a longer text in pieces, as a stream (synthesize-start, synthesize-chunk events, synthesize-stop)")


def test_a_streamed_reply_too_long_for_one_event_is_spoken_whole(server, monkeypatch):
    """Home Assistant streams a reply in chunks, then sends it whole again in one ``synthesize`` (for older servers).
    A reply over the event cap (an LLM's long story: 72 KB) was cut there: that repeat was refused as a bad event, the
    sentences not yet spoken were cancelled and the connection closed, with an error telling the client to stream the
    text, which it was doing. The repeat is read past (the stream holds that text already); the reply is spoken whole."""
    from demod_voice.serve.wyoming import handler

    sentence = "This is one line of a long story that an assistant tells the kitchen, with more words in it than most. "
    one = run(synthesize(server, sentence.strip(), SynthesizeVoice(name="tiny-single")))
    monkeypatch.setattr(handler, "MAX_LINE", 1024)  # the cap: 4 bytes a character of max_input_chars, and 4 KB
    with limits(server, serve={"max_input_chars": 200}):
        cap = handler.max_data(server.ctx)
        pieces = [sentence] * (cap // len(sentence) + 2)
        assert len("".join(pieces)) > cap
        reply = run(stream(server, pieces, SynthesizeVoice(name="tiny-single")))
    assert not reply.errors, [e.text for e in reply.errors]
    assert reply.pcm == one.pcm * len(pieces)  # every sentence, once, in order


def test_choosing_a_voice_does_not_hold_up_the_other_rooms(server, monkeypatch):
    """Each request's voice was chosen on the event loop, from the list of every voice read from disk: with an app's
    300 enrolled voices beside Home Assistant's, 0.1 s a request (5 s for the first, reading them all), while every
    other connection's audio waited. The choice is made off the loop; here it is made slow on purpose."""
    from demod_voice.serve.wyoming import handler

    real = handler.choose

    def slow(*args, **kwargs):
        time.sleep(3.0)
        return real(*args, **kwargs)

    async def two_rooms():
        kitchen = asyncio.create_task(synthesize(server, "One.", SynthesizeVoice(name="tiny-single")))
        await asyncio.sleep(0.5)
        async with server.client() as client:
            started = time.perf_counter()
            await client.write_event(Describe().event())
            assert Info.is_type((await client.read_event()).type)
            return time.perf_counter() - started, await kitchen

    monkeypatch.setattr(handler, "choose", slow)
    took, kitchen = run(two_rooms())
    assert not kitchen.errors and len(kitchen.pcm) > 0
    assert took < 2.0, f"a describe waited {took:.1f} s for another connection's voice choice"


def test_sentences_are_complete_at_their_end_and_white_space():
    from demod_voice.audio.text import SentenceStream
    from demod_voice.speech_text.ssml import SSML_END, SSML_STARTS

    stream = SentenceStream(SSML_STARTS, SSML_END)
    assert stream.add("It costs 3.") == []  # "3." may go on as "3.5"
    assert stream.add("5 euros. Then") == ["It costs 3.5 euros."]
    assert stream.add(' "Really?" she asked.') == []  # a lowercase word goes on the sentence
    assert stream.add("\n") == ['Then "Really?" she asked.']
    assert stream.add("你好。再见") == ["你好。"]
    assert stream.finish() == "再见" and stream.finish() == ""
    # No sentence end: cut to the limit, between words where it can.
    assert stream.add("a" * 12 + " bb cc dd", limit=10) == ["a" * 10, "aa bb cc"]
    assert stream.add(" ee ff", limit=10) == [] and stream.finish() == "dd ee ff"
    # An SSML document is held whole until it closes, its tags in any case (<SPEAK> was cut at its sentence ends).
    assert stream.add("<SPE") == [] and stream.add("AK>One. Two.</Speak") == [] and stream.add("> Three.") == ["<SPEAK>One. Two.</Speak>"]
    assert stream.finish() == "Three."


def test_listen_addresses():
    from demod_voice.errors import InputError
    from demod_voice.serve.wyoming.server import check_uri, is_loopback

    assert is_loopback("tcp://127.0.0.1:10200") and is_loopback("tcp://localhost:10200") and is_loopback("tcp://[::1]:10200")
    assert not is_loopback("tcp://0.0.0.0:10200") and not is_loopback("tcp://192.168.1.5:10200")
    for bad in ("127.0.0.1:10200", "tcp://127.0.0.1", "http://127.0.0.1:10200"):
        with pytest.raises(InputError, match="tcp://HOST:PORT"):
            check_uri(bad)


def test_wyoming_flag_alone_takes_the_conventional_address():
    """hE item 3: README's tour line ``serve --ui --wyoming`` was 'expected one argument'."""
    from conftest import ROOT

    from demod_voice.cli.main import build_parser
    from demod_voice.serve.wyoming.server import DEFAULT_URI

    parser = build_parser()
    (tour,) = [line.split("#")[0] for line in (ROOT / "README.md").read_text().splitlines() if "serve --ui --wyoming" in line]
    assert parser.parse_args(shlex.split(tour)[1:]).wyoming == DEFAULT_URI == "tcp://127.0.0.1:10200"
    assert parser.parse_args(["serve", "--wyoming", "--no-http"]).wyoming == DEFAULT_URI
    assert parser.parse_args(["serve", "--wyoming", "unix:///tmp/w.sock"]).wyoming == "unix:///tmp/w.sock"
    assert parser.parse_args(["serve"]).wyoming is None


def test_cli_serves_wyoming_alone_and_drains_on_sigterm(server):
    """``demod-voice serve --wyoming URI --no-http``: the real command; SIGTERM mid-stream lets the stream finish, exit 0."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BIN), "serve", "--wyoming", f"tcp://127.0.0.1:{port}", "--no-http",
                                "--preload", "tiny-single"], env={**os.environ, **server.env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, process)
        wait_for(lambda: children(process.pid) != [], timeout=60)  # --preload's workers start beside the listener
        workers = children(process.pid)
        long_text = " ".join(f"Sentence {i} goes on." for i in range(40))

        async def speak_through_sigterm():
            async with AsyncTcpClient("127.0.0.1", port, read_timeout=TIMEOUT) as client:
                await client.write_event(Describe().event())
                names = [voice.name for voice in Info.from_event(await client.read_event()).tts[0].voices]
                await client.write_event(Synthesize(text=long_text, voice=SynthesizeVoice(name="tiny-single")).event())
                start = await client.read_event()
                assert AudioStart.is_type(start.type)
                process.send_signal(signal.SIGTERM)  # drains: this answer still completes
                return names, await read_reply(client, "audio-stop", AudioStart.from_event(start))

        names, reply = run(speak_through_sigterm())
        assert process.wait(60) == 0, process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "tiny-single" in names and "alice" in names
    assert not reply.errors and len(reply.pcm) > 0
    assert workers and "Wyoming on tcp://127.0.0.1" in process.stderr.read().decode()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)  # no worker outlives the server


def test_cli_refuses_what_cannot_work(server):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = run_cli("serve", "--wyoming", f"tcp://127.0.0.1:{taken.getsockname()[1]}", "--no-http", env=server.env)
    finally:
        taken.close()
    assert busy.returncode == 3 and "is another server on that port" in busy.stderr.decode()
    # the HTTP port the same way: it was exit 1 and two lines, one of them uvicorn's raw "[Errno 98] ..."
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        http_busy = run_cli("serve", "--port", str(taken.getsockname()[1]), env=server.env)
    finally:
        taken.close()
    said = http_busy.stderr.decode()
    assert http_busy.returncode == 3 and "is another server on that port" in said and "Errno" not in said, said
    assert len(said.strip().splitlines()) == 1, said
    # hE item 9: an address this machine does not have was asked "is another server on that port?"
    foreign = run_cli("serve", "--wyoming", f"tcp://192.0.2.1:{free_port()}", "--no-http", env=server.env)  # bind only
    assert foreign.returncode == 3 and "not one of this machine's" in foreign.stderr.decode(), foreign.stderr.decode()
    bad = run_cli("serve", "--wyoming", "127.0.0.1:10200", env=server.env)
    assert bad.returncode == 3 and "tcp://HOST:PORT" in bad.stderr.decode()
    loop = run_cli("serve", "--wyoming", f"tcp://127.0.0.1:{free_port()}", "--no-http", "--zeroconf", env=server.env)
    assert loop.returncode == 3 and "loopback" in loop.stderr.decode()
    alone = run_cli("serve", "--no-http", env=server.env)
    assert alone.returncode == 2 and "--wyoming" in alone.stderr.decode()


def test_a_unix_socket_path_is_taken_only_when_nothing_lives_there(server, tmp_path):
    """hwy item 7: ``--wyoming unix://PATH`` removed whatever was at PATH before listening (the wyoming package's
    start): a file named by mistake was deleted, and a second server silently took a live socket from the first."""
    from demod_voice.serve.wyoming.server import wyoming_door

    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    on_file = run_cli("serve", "--wyoming", f"unix://{notes}", "--no-http", env=server.env)
    assert on_file.returncode == 3 and "is a file, not a socket" in on_file.stderr.decode(), on_file.stderr.decode()
    assert notes.read_text() == "keep me"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tmp_path / "live.sock"))
    live.listen()
    try:
        on_live = run_cli("serve", "--wyoming", f"unix://{tmp_path / 'live.sock'}", "--no-http", env=server.env)
    finally:
        live.close()
    assert on_live.returncode == 3 and "another server is listening on it" in on_live.stderr.decode(), on_live.stderr.decode()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))  # bound, never listening: left by a server that stopped
    stale.close()
    assert callable(wyoming_door(f"unix://{tmp_path / 'stale.sock'}"))


def in_own_network(*args: str, env: dict) -> subprocess.CompletedProcess:
    """``demod-voice ARGS`` in a network namespace of its own with only loopback up: no route to the mDNS group
    (as on a machine whose network is not up yet), and no packet leaves this machine."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare -n (root) for a network namespace with loopback only")
    command = shlex.join([sys.executable, str(BIN), *args])
    return subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"], env={**os.environ, **env},
                          capture_output=True, timeout=TIMEOUT)


def test_zeroconf_without_a_network_route_is_a_failed_start_in_one_line(server):
    """hE item 1: with --no-http it was 'internal error: OSError'; beside HTTP two tracebacks and exit 0 (a supervisor
    took it for a clean stop and did not restart it)."""
    for alone in (["--no-http"], ["--port", "5093"]):
        done = in_own_network("serve", "--wyoming", "tcp://0.0.0.0:10293", "--zeroconf", "kitchen", *alone, env=server.env)
        said = done.stderr.decode()
        assert done.returncode == 3, said
        assert "Traceback" not in said and "never retrieved" not in said, said
        last = said.strip().splitlines()[-1]
        assert last.startswith("demod-voice: error: --zeroconf: could not announce the Wyoming server over mDNS"), said
        assert "drop --zeroconf" in last and "network is up" in last


def test_cli_serves_wyoming_beside_http_on_one_engine(server):
    """``serve --wyoming URI --port P``: both front doors in one process; a voice warm for one is warm for the other."""
    import urllib.request

    port, http = free_port(), free_port()
    process = subprocess.Popen([sys.executable, str(BIN), "serve", "--wyoming", f"tcp://127.0.0.1:{port}", "--port", str(http)],
                               env={**os.environ, **server.env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, process)
        _wait_listening(http, process)
        spoken = run(synthesize(server_at(port), "Through Wyoming.", SynthesizeVoice(name="tiny-single")))
        workers = children(process.pid)
        body = json.dumps({"model": "tiny-single", "input": "Through HTTP.", "voice": "tiny-single", "response_format": "pcm"})
        request = urllib.request.Request(f"http://127.0.0.1:{http}/v1/audio/speech", body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            pcm = response.read()
        assert sorted(children(process.pid)) == sorted(workers)  # the same warm worker served both
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not spoken.errors and len(spoken.pcm) > 0 and len(pcm) > 0
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)


def server_at(port: int) -> Server:
    return Server(f"tcp://127.0.0.1:{port}", port, {}, None)


@contextlib.contextmanager
def serve_settings(server, **changed):
    """The server's ``serve`` settings changed for a test (they are read per connection and per event)."""
    config = server.ctx.config
    server.ctx.config = dataclasses.replace(config, serve=dataclasses.replace(config.serve, **changed))
    try:
        yield
    finally:
        server.ctx.config = config


def test_half_events_deep_json_and_too_many_connections_are_bounded(server, caplog):
    """A security review: half an event line held its connection for good (a thousand took every file the server could
    open, and its log grew by 200 MB of tracebacks); JSON nested 60 KB deep dropped the connection with a traceback and no
    error event; Wyoming had no connection cap."""
    from wyoming.event import async_read_event

    async def half_line() -> tuple[list, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        writer.write(b'{"type": "synth')
        events = []
        while (event := await asyncio.wait_for(async_read_event(reader), 10)) is not None:
            events.append(event)
        writer.close()
        return events, time.monotonic() - started

    async def deep() -> list:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"[" * 30000 + b"]" * 30000 + b"\n")
        events = [await asyncio.wait_for(async_read_event(reader), 10)]
        writer.close()
        return events

    async def crowd(count: int) -> list[bool]:
        """Open ``count`` connections (kept open); whether each is closed by the server at once."""
        pairs = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(count)]
        await asyncio.sleep(0.5)
        closed = [reader.at_eof() or await _closed(reader) for reader, _ in pairs]
        for _, writer in pairs:
            writer.close()
        return closed

    with serve_settings(server, header_timeout_seconds=1.0):
        events, seconds = run(half_line())
    assert [e.type for e in events] == ["error"] and "did not arrive within 1 s" in events[0].data["text"] and seconds < 5
    (error,) = run(deep())
    assert error.type == "error" and "nested too deeply" in error.data["text"]
    assert not [r for r in caplog.records if "RecursionError" in r.getMessage() or r.exc_info]
    time.sleep(0.5)  # the connections above have ended
    with serve_settings(server, max_connections=3):
        assert run(crowd(4)) == [False, False, False, True]
    assert run(synthesize(server, "Still here.", SynthesizeVoice(name="tiny-single"))).pcm  # and it serves on


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.3) == b""
    except (TimeoutError, ConnectionError):
        return False


def test_a_clients_newline_cannot_forge_a_log_line(server, caplog):
    caplog.set_level(logging.INFO, logger="demod_voice")
    reply = run(synthesize(server, "Hi.", SynthesizeVoice(name="x\ndemod-voice: error: forged")))
    assert reply.errors
    assert not [r for r in caplog.records if "\n" in r.getMessage() and "forged" in r.getMessage()]
    assert any("x\\ndemod-voice: error: forged" in r.getMessage() for r in caplog.records)


def test_what_the_administrator_must_fix_is_logged_at_the_default_level(server, piper_voice, caplog):
    """hwy item 4: a damaged voice failed every request naming it and the log, at its default level (warnings), said
    nothing: the reason was logged at INFO, beside the clients' own mistakes."""
    caplog.set_level(logging.WARNING, logger="demod_voice")
    piper = Path(server.env["DEMOD_VOICE_CACHE_DIR"]) / "piper"
    shutil.copy(piper_voice, piper / "a-broken.onnx")
    (piper / "a-broken.onnx.json").write_text('{"audio": ')
    try:
        damaged = run(synthesize(server, "Hello.", SynthesizeVoice(name="a-broken")))
        unknown = run(synthesize(server, "Hello.", SynthesizeVoice(name="nobody")))
    finally:
        for suffix in (".onnx", ".onnx.json"):
            (piper / f"a-broken{suffix}").unlink()
    assert damaged.errors and unknown.errors
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.getMessage().startswith("Wyoming: ")]
    assert len(warned) == 1 and "a-broken.onnx.json is not readable JSON" in warned[0], warned


def test_a_lone_surrogate_in_a_voice_name_is_an_error_event(server, caplog):
    """hwy item 6: a voice name, speaker or language holding a lone surrogate was quoted in the error, whose UTF-8
    encoding then failed: a traceback in the log, the connection closed, no error event and no audio-stop."""
    from wyoming.event import async_read_event

    voices = [{"name": "\ud800"}, {"name": "tiny-multi", "speaker": "\ud800"}, {"name": "alice", "speaker": "\ud800"},
              {"language": "\ud800"}, {"name": "tiny-single"}]

    async def exchange():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            replies = []
            for voice in voices:  # json.dumps escapes the surrogate: the line is valid JSON
                writer.write(json.dumps({"type": "synthesize", "data": {"text": "Hi.", "voice": voice}}).encode() + b"\n")
                events = [await async_read_event(reader)]
                while events[-1] is not None and events[-1].type != "audio-stop":
                    events.append(await async_read_event(reader))
                replies.append(events)
            return replies
        finally:
            writer.close()

    *bad, good = run(exchange())
    for events in bad:
        assert [getattr(event, "type", "closed") for event in events] == ["error", "audio-stop"], events
        assert "\\ud800" in Error.from_event(events[0]).text
    assert good[-1].type == "audio-stop" and any(AudioChunk.is_type(event.type) for event in good)
    assert not [r for r in caplog.records if r.exc_info]


def test_a_long_streamed_reply_gives_each_sentence_the_deadline_from_its_turn(server):
    """An LLM's long reply streamed in a slow voice: every sentence came in at once, and each one's deadline counted
    from then, so a sentence behind many others ran out of time while waiting its turn and the reply was cut."""
    sentence = "This sentence of the long answer has quite a few words in it, to take the voice a little while. "
    count = 40

    async def stream():
        async with server.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny-single")).event())
            await client.write_event(SynthesizeChunk(text=sentence * count).event())
            await client.write_event(SynthesizeStop().event())
            started = time.monotonic()
            reply = await read_reply(client, SynthesizeStopped().event().type)
            return reply, time.monotonic() - started

    run(synthesize(server, sentence.strip(), SynthesizeVoice(name="tiny-single")))  # the voice loaded and warm
    alone = time.monotonic()
    one = run(synthesize(server, sentence.strip(), SynthesizeVoice(name="tiny-single")))
    alone = time.monotonic() - alone
    deadline = max(0.3, 5 * alone)  # each sentence has time enough for itself; the whole reply has not
    with limits(server, serve={"deadline_seconds": deadline}):
        reply, took = run(stream())
    assert took > deadline, f"the reply took {took:.2f} s, within one deadline ({deadline:.2f} s): the test says nothing"
    assert not reply.errors, [e.text for e in reply.errors]
    assert len(reply.pcm) == count * len(one.pcm)


def test_a_huge_voice_name_is_refused_without_being_quoted_back(server):
    """A 50,000-character voice name was quoted whole in the error event and in the server's log line."""
    name = "x" * 50_000

    async def ask():
        async with server.client() as client:
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name=name)).event())
            refused = await read_reply(client, "audio-stop")
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="tiny-single")).event())
            return refused, await read_reply(client, "audio-stop")

    refused, after = run(ask())
    (error,) = refused.errors
    assert "50000 characters" in error.text and len(error.text) < 300 and not refused.pcm, error.text[:300]
    assert not after.errors and len(after.pcm) > 0  # the connection serves the next request


def test_markdown_marks_in_an_assistants_reply_are_not_read_aloud(server):
    """Home Assistant's LLM agents answer in Markdown: "**Done.** I set a timer for *ten minutes*." was read "asterisk
    asterisk done asterisk asterisk ..." (wyoming-piper drops the stars); now as the words alone, in both flows."""
    voice = SynthesizeVoice(name="tiny-single")
    plain = run(synthesize(server, "Done. I set a timer for ten minutes.", voice))
    marked = run(synthesize(server, "**Done.** I set a timer for *ten minutes*.", voice))
    streamed = run(stream(server, ["**Do", "ne.** I set a ", "timer for *ten", " minutes*."], voice))
    assert not (plain.errors or marked.errors or streamed.errors)
    assert len(plain.pcm) > 0 and marked.pcm == plain.pcm
    assert streamed.pcm == plain.pcm  # sentence by sentence as it came, no stars either
    bold = run(stream(server, ["**Done. I set a timer", " for ten minutes.**"], voice))  # one bold run, two sentences
    assert not bold.errors and bold.pcm == plain.pcm
    items = run(stream(server, ["Your list:\n- milk\n- ", "eggs\n- bread\n"], voice))  # each item its pause, as its comma gives
    assert not items.errors and items.pcm == run(synthesize(server, "Your list:\nmilk,\neggs,\nbread,", voice)).pcm
