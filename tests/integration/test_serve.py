"""``demod-voice serve`` end to end: one live server on 127.0.0.1, the official ``openai`` package as
the client, tiny generated Piper and XTTS models, real workers."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest
from live_server import alive, children, metric, start_server, wait_until

from demod_voice.engine.sizing import MOST_LIGHT_WORKERS

openai = pytest.importorskip("openai")
av = pytest.importorskip("av")

SPEAK, ENROLL, ADMIN = "speak-key-0001", "enroll-key-0002", "admin-key-0003"
TEXT = "Hello there, this is a test of the speech server."
RATES = {"mp3": 22050, "aac": 22050, "flac": 22050, "wav": 22050, "opus": 48000, "pcm": 24000}


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice, piper_multi_voice, xtts_model):
    folder = tmp_path_factory.mktemp("serve")
    config = {
        "piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
        "xtts": {"model_dir": str(xtts_model), "max_new_tokens": 24, "sentence_silence": 0.0},
        "serve": {
            "keys": {SPEAK: "speak", ENROLL: "speak,enroll", ADMIN: ["admin"]},
            "piper_voices": [str(piper_voice), str(piper_multi_voice)],
            "voices": {"alloy": {"model": piper_multi_voice.name[: -len(".onnx")], "speaker": 1}},
            "grace_seconds": 3.0,
            "xtts_token_streaming": True,  # audio from the first sentence on: the early-end tests need it soon
            "limits": {"max_input_chars": 2000, "max_upload_mb": 2.0, "max_reference_seconds": 30.0},
        },
    }
    live = start_server(folder, config, "--preload", "alloy", "-v")
    yield live
    live.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=SPEAK, max_retries=0, timeout=60)


def auth(key: str = ENROLL) -> dict:
    return {"Authorization": f"Bearer {key}"}


def decode(fmt: str, data: bytes) -> tuple[np.ndarray, int]:
    """Samples in [-1, 1] and the rate, read back through FFmpeg (pcm: as OpenAI defines it)."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 24000
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate(frames)
    return (samples / 32768.0 if np.abs(samples).max() > 2 else samples), rate


def check_audio(fmt: str, data: bytes, seconds: float = 0.0) -> float:
    samples, rate = decode(fmt, data)
    assert rate == RATES[fmt], (fmt, rate)
    duration = len(samples) / rate
    assert duration > 0.3, (fmt, duration)
    if seconds:
        assert abs(duration - seconds) < 0.12, (fmt, duration, seconds)  # codec padding only
    assert np.abs(samples).max() > 0.01 and np.sqrt(np.mean(samples**2)) > 1e-3, f"{fmt} is silent"
    return duration


def metrics(server) -> str:
    return httpx.get(server.url + "/metrics", timeout=10).text


# --- the OpenAI API -----------------------------------------------------------------------------


def test_health_ready_and_preloaded(server):
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    assert wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 60)
    assert "tiny-multi.onnx" in httpx.get(server.url + "/readyz").json()["models"]
    # its workers: by default one per core for a Piper voice (engine/sizing.py)
    workers = min(os.cpu_count() or 1, MOST_LIGHT_WORKERS)
    assert metric(metrics(server), "demod_voice_loaded_models", 'backend="piper",model="tiny-multi.onnx"') == workers


def test_every_format_with_create(client):
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav").content
    seconds = check_audio("wav", wav)
    for fmt in ("mp3", "opus", "aac", "flac", "pcm"):
        data = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt).content
        check_audio(fmt, data, seconds)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_streamed(client, fmt):
    with client.audio.speech.with_streaming_response.create(model="tiny-multi", voice="speaker_2", input=TEXT + " " + TEXT,
                                                            response_format=fmt) as response:
        assert response.headers["content-type"].startswith(("audio/", "application/"))
        parts = list(response.iter_bytes())
    check_audio(fmt, b"".join(parts))


def test_sse_stream_format(server):
    body = {"model": "tts-1", "voice": "tiny-single", "input": TEXT, "response_format": "wav", "stream_format": "sse"}
    events = []
    with httpx.stream("POST", server.url + "/v1/audio/speech", json=body, headers=auth(SPEAK), timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and set(kinds[:-1]) == {"speech.audio.delta"} and len(kinds) >= 2
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert abs(check_audio("wav", audio) - events[-1]["audio_seconds"]) < 0.01


def test_sse_with_the_openai_client_too(client):
    data = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="mp3", stream_format="sse").content
    assert data.startswith(b"data: ") and b"speech.audio.done" in data


def test_speed_changes_duration(client):
    normal = check_audio("wav", client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav").content)
    fast = check_audio("wav", client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav",
                                                         speed=2.0).content)
    assert 0.35 < fast / normal < 0.65


def test_models_and_voices(client, server):
    ids = [m.id for m in client.models.list()]
    assert {"tts-1", "tts-1-hd", "xtts", "tiny-single", "tiny-multi"} <= set(ids)
    voices = httpx.get(server.url + "/v1/audio/voices", headers=auth(SPEAK)).json()["voices"]
    assert all(set(v) >= {"id", "name"} for v in voices)
    by_id = {v["id"]: v for v in voices}
    assert by_id["alloy"]["kind"] == "alias" and by_id["tiny-multi"]["speakers"] == ["speaker_0", "speaker_1", "speaker_2"]
    models = httpx.get(server.url + "/v1/audio/models", headers=auth(SPEAK)).json()["models"]
    assert {"tts-1", "tiny-multi"} <= {m["id"] for m in models}
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/audio/speech", "/v1/voices", "/v1/batch"} <= set(spec["paths"])


# --- refusals -----------------------------------------------------------------------------------


def status_of(call) -> tuple[int, dict]:
    with pytest.raises(openai.APIStatusError) as err:
        call()
    return err.value.status_code, err.value.body


def test_auth(server, client):
    speak = {"model": "tts-1", "voice": "alloy", "input": "Hi."}
    assert httpx.post(server.url + "/v1/audio/speech", json=speak).status_code == 401
    no_key = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong-key-000", max_retries=0)
    code, body = status_of(lambda: no_key.audio.speech.create(**speak))
    assert code == 401 and "not valid" in body["message"]
    response = httpx.delete(server.url + "/v1/voices/anyone", headers=auth(SPEAK))
    assert response.status_code == 403 and "'enroll'" in response.json()["error"]["message"]
    assert httpx.post(server.url + "/v1/audio/speech", json=speak, headers=auth(ADMIN)).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200  # probes need no key


def test_input_too_long_is_413(client):
    code, body = status_of(lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="word " * 500))
    assert code == 413 and "max_input_chars" in body["message"]


@pytest.mark.parametrize("payload,code,words", [
    (b"{bad json", 400, "not valid JSON"),
    (b'{"model": "tts-1", "voice": "alloy"}', 400, "input"),
    (b'{"model": "tts-1", "voice": "alloy", "input": "Hi", "response_format": "ogg"}', 400, "response_format"),
    (b'{"model": "tts-1", "voice": "alloy", "input": "Hi", "speed": 9}', 400, "speed"),
    (b'{"model": "tts-1", "voice": "nobody", "input": "Hi"}', 404, "no voice 'nobody'"),
    (b'{"model": "nomodel", "voice": "alloy", "input": "Hi"}', 404, "no model 'nomodel'"),
    (b'{"model": "tts-1", "voice": "../../etc/passwd", "input": "Hi"}', 404, "no voice"),
    (b'{"model": "tts-1", "voice": "alloy", "input": "   "}', 400, "empty"),
    # an object without its id spoke with the default voice, 200
    (b'{"model": "tts-1", "voice": {"name": "alice"}, "input": "Hi"}', 400, "'voice' as an object needs its 'id'"),
])
def test_bad_requests(server, payload, code, words):
    response = httpx.post(server.url + "/v1/audio/speech", content=payload, headers={**auth(SPEAK), "content-type": "application/json"})
    assert response.status_code == code
    assert words in response.json()["error"]["message"]


def test_null_optional_fields_are_taken_as_not_sent(server):
    """Typed clients send ``"speed": null`` (and the like) for a field left unset, as OpenAI takes it; each was a 400
    here ("speed: Input should be a valid number"). A null ``input`` is still refused."""
    unset = {"model": None, "voice": "alloy", "input": "Hi.", "response_format": None, "speed": None, "stream_format": None,
             "normalize": None, "instructions": None, "lexicon": None}
    response = httpx.post(server.url + "/v1/audio/speech", json=unset, headers=auth(SPEAK), timeout=120)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg", response.text[:300]
    refused = httpx.post(server.url + "/v1/audio/speech", json={"voice": "alloy", "input": None}, headers=auth(SPEAK), timeout=120)
    assert refused.status_code == 400 and "input" in refused.json()["error"]["message"], refused.text


def test_models_and_voices_are_named_for_what_they_are(server, client):
    """An unknown model was answered with the code ``unknown_voice``; ``models.retrieve("tts-1")`` (an app checking its
    model) was a bare 404 "Not Found"; deleting an installed voice said "there is no voice" though it is listed."""
    response = httpx.post(server.url + "/v1/audio/speech", json={"model": "whisper-1", "voice": "alloy", "input": "Hi"}, headers=auth(SPEAK))
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_model", response.text
    assert client.models.retrieve("tts-1").id == "tts-1"
    code, body = status_of(lambda: client.models.retrieve("whisper-1"))
    assert code == 404 and body["code"] == "unknown_model", body
    installed = next(v["id"] for v in httpx.get(server.url + "/v1/audio/voices", headers=auth(SPEAK)).json()["voices"] if v["kind"] == "piper")
    refused = httpx.delete(f"{server.url}/v1/voices/{installed}", headers=auth(ENROLL))
    assert refused.status_code == 409 and "installed" in refused.json()["error"]["message"], refused.text


# --- voices -------------------------------------------------------------------------------------


def enroll(server, name, files, key=ENROLL, **data):
    return httpx.post(server.url + "/v1/voices", data={"name": name, **data}, files=files, headers=auth(key), timeout=120)


def test_enroll_speak_download_delete_import(server, client, references):
    files = [("files", ("ref.wav", references["ref.wav"].read_bytes(), "audio/wav")),
             ("files", ("../../ref.flac", references["ref.flac"].read_bytes(), "audio/flac"))]
    response = enroll(server, "alice", files, language="en")
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["id"] == "alice" and made["references"] == 2 and made["language"] == "en" and made["seconds"] > 15
    assert made["warnings"] == [], made["warnings"]
    # what the reference checks say reaches the client, as the command line shows it (it went only to the server's log)
    import soundfile
    from conftest import voiced_signal

    short = io.BytesIO()
    soundfile.write(short, voiced_signal(3.5, 22050), 22050, format="WAV")
    brief = enroll(server, "brief", [("files", ("phone take.wav", short.getvalue(), "audio/wav"))])
    assert brief.status_code == 201, brief.text
    assert any("phone take.wav is only 3.5 s" in line for line in brief.json()["warnings"]), brief.json()
    assert str(server.folder) not in brief.text
    assert httpx.delete(server.url + "/v1/voices/brief", headers=auth()).json()["deleted"] is True
    assert not (server.folder / "ref.flac").exists() and not (server.folder / "cache" / "ref.flac").exists()
    assert httpx.get(server.url + "/v1/voices/alice", headers=auth(SPEAK)).json()["digest"] == made["digest"]
    assert "alice" in {v["id"] for v in httpx.get(server.url + "/v1/audio/voices", headers=auth(SPEAK)).json()["voices"]}

    samples, rate = decode("wav", client.audio.speech.create(model="xtts", voice="alice", input="Hi there.", response_format="wav").content)
    assert rate == 24000 and len(samples) > 0 and np.abs(samples).max() > 0.001

    again = enroll(server, "alice", files)
    assert again.status_code == 409 and "force=true" in again.json()["error"]["message"]

    profile = httpx.get(server.url + "/v1/voices/alice/download", headers=auth())
    assert profile.status_code == 200 and profile.content[:2] == b"PK"
    with np.load(io.BytesIO(profile.content), allow_pickle=False) as data:  # the enrollment job's value: latents and audio
        assert data["reference_audio"].dtype == np.int16 and int(data["reference_lengths"].sum()) == len(data["reference_audio"])
    assert httpx.delete(server.url + "/v1/voices/alice", headers=auth()).json()["deleted"] is True
    assert httpx.get(server.url + "/v1/voices/alice", headers=auth(SPEAK)).status_code == 404
    code, _ = status_of(lambda: client.audio.speech.create(model="xtts", voice="alice", input="Hi."))
    assert code == 404

    imported = httpx.post(server.url + "/v1/voices/import", files={"file": ("alice.npz", profile.content)}, headers=auth(), timeout=60)
    assert imported.status_code == 201 and imported.json()["digest"] == made["digest"]
    wav = client.audio.speech.create(model="tts-1", voice="alice", input="Hi there.", response_format="wav").content
    assert decode("wav", wav)[1] == 24000
    # a second export called 'alice' (a friend's) goes in under another name, as `voices import --name` does; the import
    # took no name, and its 409 said only to delete the voice there or replace it
    clash = httpx.post(server.url + "/v1/voices/import", files={"file": ("alice.npz", profile.content)}, headers=auth(), timeout=60)
    assert clash.status_code == 409 and "'name'" in clash.json()["error"]["message"], clash.text
    other = httpx.post(server.url + "/v1/voices/import", files={"file": ("alice.npz", profile.content)}, data={"name": "alice-2"},
                       headers=auth(), timeout=60)
    assert other.status_code == 201 and other.json()["id"] == "alice-2", other.text
    assert other.json()["created"] == made["created"]  # the voice's own date, as `voices import --name` keeps it
    assert httpx.get(server.url + "/v1/voices/alice-2/download", headers=auth()).status_code == 200
    wav = client.audio.speech.create(model="tts-1", voice="alice-2", input="Hi there.", response_format="wav").content
    assert decode("wav", wav)[1] == 24000
    bad = httpx.post(server.url + "/v1/voices/import", files={"file": ("alice.npz", profile.content)}, data={"name": "../x"},
                     headers=auth(), timeout=60)
    assert bad.status_code == 400 and "not a valid voice id" in bad.json()["error"]["message"], bad.text


def test_an_enrollments_seconds_are_the_speech_it_was_learnt_from(server):
    """A phone memo of 4 s of silence, 7 s of speech and 3 s of silence was answered "seconds": 14.0, beside a warning
    that the silence was cut off: a user told a voice needs 6 s of speech could not tell whether this one had them. The
    same memo sent twice (a copy) counted twice."""
    import soundfile
    from conftest import voiced_signal

    rate = 22050
    memo = io.BytesIO()
    soundfile.write(memo, np.concatenate([np.zeros(4 * rate), voiced_signal(7.0, rate), np.zeros(3 * rate)]), rate, format="WAV")
    files = [("files", ("memo.wav", memo.getvalue(), "audio/wav")), ("files", ("memo (1).wav", memo.getvalue(), "audio/wav"))]
    made = enroll(server, "memo-seconds", files)
    assert made.status_code == 201, made.text
    assert made.json()["seconds"] == pytest.approx(7.0, abs=0.1), made.json()
    assert any("4.0 s of silence before the speech" in line for line in made.json()["warnings"]), made.json()
    httpx.delete(f"{server.url}/v1/voices/memo-seconds", headers=auth(ENROLL))


def test_hostile_uploads(server, references, tmp_path):
    good = references["ref.wav"].read_bytes()
    flac = references["ref.flac"].read_bytes()
    cases = [
        ("bad name", "../evil", [("files", ("r.wav", good))], 400, "not a valid voice id"),
        ("not audio", "junk", [("files", ("x.wav", os.urandom(20000)))], 400, "x.wav"),
        ("truncated", "cut", [("files", ("cut.flac", flac[:600]))], 400, "cut.flac"),
        ("too big", "huge", [("files", ("huge.wav", b"\0" * 2_500_000))], 413, "max_upload_mb"),
        ("no files", "none", [], 400, "files"),
    ]
    for label, name, files, code, words in cases:
        response = enroll(server, name, files or None) if files else httpx.post(
            server.url + "/v1/voices", data={"name": name}, headers=auth(), files={"other": ("a.txt", b"x")})
        assert response.status_code == code, (label, response.text)
        assert words in response.json()["error"]["message"], (label, response.text)
    bad_profile = httpx.post(server.url + "/v1/voices/import", files={"file": ("p.npz", b"PK\x03\x04garbage")}, headers=auth())
    assert bad_profile.status_code == 400
    assert not list((server.folder / "cache").rglob("*evil*"))


def test_reference_seconds_limit(server, tmp_path):
    import soundfile
    from conftest import voiced_signal

    path = tmp_path / "long.wav"
    soundfile.write(str(path), voiced_signal(32.0, 8000), 8000)
    response = enroll(server, "longvoice", [("files", ("long.wav", path.read_bytes()))])
    assert response.status_code == 413 and "max_reference_seconds" in response.json()["error"]["message"]


# --- streams that end early ---------------------------------------------------------------------


LONG = " ".join(f"Sentence number {i} is here to keep the voice busy for a while." for i in range(28))


def test_client_disconnect_frees_the_worker(server, client, references):
    files = [("files", ("ref.wav", references["ref.wav"].read_bytes()))]
    assert enroll(server, "bob", files).status_code == 201
    with httpx.stream("POST", server.url + "/v1/audio/speech", headers=auth(SPEAK), timeout=60,
                      json={"model": "xtts", "voice": "bob", "input": LONG, "response_format": "pcm"}) as response:
        assert response.status_code == 200
        next(response.iter_bytes())
        assert metric(metrics(server), "demod_voice_running_jobs") == 1
    # Gone after one chunk of 28 sentences: the server cancels the job and the engine's slot is free (the worker
    # stops the job, or is replaced if it does not within engine.cancel_kill_after).
    assert wait_until(lambda: metric(metrics(server), "demod_voice_cancelled_requests_total", 'reason="client_gone"') == 1, 15)
    assert wait_until(lambda: metric(metrics(server), "demod_voice_running_jobs") == 0, 15)
    short = client.audio.speech.create(model="xtts", voice="bob", input="Hi.", response_format="wav").content
    assert decode("wav", short)[1] == 24000


def test_worker_killed_mid_request(server, client):
    body = {"model": "xtts", "voice": "bob", "input": LONG, "response_format": "pcm", "stream_format": "sse"}
    restarts = metric(metrics(server), "demod_voice_worker_restarts_total")
    events = []
    with httpx.stream("POST", server.url + "/v1/audio/speech", json=body, headers=auth(SPEAK), timeout=60) as response:
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                break
        for pid in _busy(children(server.pid)):
            os.kill(pid, signal.SIGKILL)
        events.extend(json.loads(line[6:]) for line in lines if line.startswith("data: "))
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error" and "killed by SIGKILL" in events[-1]["error"]["message"]
    # The next request gets a fresh worker.
    assert decode("wav", client.audio.speech.create(model="xtts", voice="bob", input="Hi.", response_format="wav").content)[1] == 24000
    assert metric(metrics(server), "demod_voice_worker_restarts_total") >= restarts


def _busy(pids: list[int]) -> list[int]:
    """The workers using the CPU now (the one making the long request), all sampled over the same 0.3 s: one at a
    time, the long request could end before the last of them was looked at."""
    def ticks(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return -1
        return int(fields[11]) + int(fields[12])

    first = {pid: ticks(pid) for pid in pids}
    time.sleep(0.3)
    return [pid for pid in pids if first[pid] >= 0 and ticks(pid) > first[pid]]


def test_parent_process_never_loads_an_engine(server):
    maps = open(f"/proc/{server.pid}/maps").read()
    for library in ("libtorch", "onnxruntime", "libespeak"):
        assert library not in maps, f"the server process itself loaded {library}"


def test_sigterm_during_a_stream_exits_0_and_leaves_no_worker(server):
    workers = children(server.pid)
    assert workers, "the server has no workers to check"
    got: list[bytes] = []
    streaming = threading.Event()

    def listen() -> None:
        body = {"model": "xtts", "voice": "bob", "input": LONG, "response_format": "pcm"}
        try:
            with httpx.stream("POST", server.url + "/v1/audio/speech", json=body, headers=auth(SPEAK), timeout=60) as response:
                for part in response.iter_bytes():
                    got.append(part)
                    streaming.set()
        except httpx.HTTPError:
            pass  # a stream cut at the end of the grace period
        streaming.set()

    thread = threading.Thread(target=listen)
    thread.start()
    assert streaming.wait(30)
    started = time.monotonic()
    code = server.stop(signal.SIGTERM, timeout=30)
    thread.join(30)
    assert code == 0, server.log_text()
    assert time.monotonic() - started < 3.0 + 10  # grace_seconds, then cancelled
    assert not thread.is_alive() and got
    assert wait_until(lambda: not any(alive(pid) for pid in workers), 10)
