"""Voice conversion with OpenVoice v2's converter (released architecture, random weights) through every front door."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from catalog_server import CatalogServer
from conftest import ROOT, run_cli, voiced_signal

from demod_voice.voices.profiles import profiles_dir, write_profile

RATE = 22050
HOP = 256
FAST = {"DEMOD_VOICE_CONVERT_SEED": "7"}

COQUI = """
import sys, numpy as np, torch
from TTS.vc.configs.openvoice_config import OpenVoiceConfig
from TTS.vc.models.openvoice import OpenVoice
config = OpenVoiceConfig()
model = OpenVoice(config)
model.load_checkpoint(config, sys.argv[1] + "/checkpoint.pth", eval=True)
torch.manual_seed(int(sys.argv[4]))
np.save(sys.argv[5], model.voice_conversion(sys.argv[2], [sys.argv[3]]))
"""
"""coqui-tts's own conversion, as its ``tts --source_wav --target_wav`` makes it (Synthesizer._load_openvoice, voice_conversion)."""


def env_for(tmp_path, vc_model, **extra):
    return {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "DEMOD_VOICE_CONVERT_MODEL_DIR": str(vc_model), **FAST, **extra}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(3)
    made = {}
    for name, seconds, rate in (("short.wav", 1.5, RATE), ("low-rate.flac", 1.2, 8000), ("long.wav", 3.0, RATE)):
        signal = voiced_signal(seconds, rate) + (0.01 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
        soundfile.write(str(folder / name), signal, rate)
        made[name] = folder / name
    t = np.arange(4 * RATE) / RATE  # another "voice": a higher, gliding pitch with breath noise
    other = 0.3 * np.sin(2 * np.pi * (260 + 60 * np.sin(2 * np.pi * 0.5 * t)) * t) + 0.05 * rng.standard_normal(len(t))
    soundfile.write(str(folder / "other-voice.wav"), other.astype(np.float32), RATE)
    made["other-voice.wav"] = folder / "other-voice.wav"
    return made


def converted(path):
    audio, rate = soundfile.read(str(path), dtype="float32")
    assert rate == RATE
    return audio


def test_conversion_equals_coqui_and_keeps_the_length(vc_model, sources, references, tmp_path):
    out = tmp_path / "out.wav"
    done = run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(out),
                   env=env_for(tmp_path, vc_model))
    assert done.returncode == 0, done.stderr.decode()
    ours = converted(out)
    source_frames = soundfile.info(str(sources["short.wav"])).frames
    assert abs(len(ours) - source_frames) < HOP
    assert np.sqrt(np.mean(ours ** 2)) > 1e-4  # not silent

    theirs = tmp_path / "coqui.npy"
    subprocess.run([sys.executable, "-c", COQUI, str(vc_model), str(sources["short.wav"]), str(references["ref.wav"]), "7", str(theirs)],
                   check=True, capture_output=True, timeout=600, cwd=ROOT)
    theirs = np.load(theirs)
    assert len(theirs) <= len(ours) and len(ours) - len(theirs) < 4 * HOP  # coqui drops n_fft - hop samples at the end
    # Equal up to the 16-bit output file: one step of 1/32768, plus rounding.
    assert np.abs(ours[: len(theirs)] - np.clip(theirs, -1, 1)).max() <= 2 / 32768
    assert not np.abs(ours[len(theirs):]).any()

    other = tmp_path / "other-target.wav"
    assert run_cli("convert", str(sources["short.wav"]), "--reference", str(sources["other-voice.wav"]), "-o", str(other),
                   env=env_for(tmp_path, vc_model)).returncode == 0
    difference = converted(other) - ours
    assert np.sqrt(np.mean(difference ** 2) / np.mean(ours ** 2)) > 0.01  # the target voice matters


def test_sample_rate_mismatch_and_stdout(vc_model, sources, references, tmp_path):
    done = run_cli("convert", str(sources["low-rate.flac"]), "--reference", str(references["ref.flac"]), "-o", "-",
                   env=env_for(tmp_path, vc_model))
    assert done.returncode == 0, done.stderr.decode()
    pcm = np.frombuffer(done.stdout, dtype="<i2")
    expected = soundfile.info(str(sources["low-rate.flac"])).frames * RATE / 8000
    assert abs(len(pcm) - expected) < HOP and np.abs(pcm).max() > 3
    assert "8000 Hz" in done.stderr.decode()  # the warning about what a low rate lacks


def test_windows_join_within_tolerance_of_whole(vc_model, sources, references, tmp_path):
    """At tau 0 (no noise) a source converted in 2 s windows overlapping by 1 s equals its whole-clip
    conversion within 0.1% RMS (stated in docs/conversion.md); the source embedding is the same for both."""
    same = {"DEMOD_VOICE_CONVERT_TAU": "0", "DEMOD_VOICE_CONVERT_SOURCE_EMBEDDING_SECONDS": "60"}
    whole, windowed = tmp_path / "whole.wav", tmp_path / "windowed.wav"
    assert run_cli("convert", str(sources["long.wav"]), "--reference", str(references["ref.wav"]), "-o", str(whole),
                   env=env_for(tmp_path, vc_model, **same)).returncode == 0
    done = run_cli("-v", "convert", str(sources["long.wav"]), "--reference", str(references["ref.wav"]), "-o", str(windowed),
                   "--window-seconds", "2", "--overlap-seconds", "1", env=env_for(tmp_path, vc_model, **same))
    assert done.returncode == 0, done.stderr.decode()
    a, b = converted(whole), converted(windowed)
    assert len(a) == len(b)
    assert np.sqrt(np.mean((a - b) ** 2) / np.mean(a ** 2)) < 1e-3


def test_profiles_as_targets(vc_model, xtts_model, sources, references, tmp_path):
    env = env_for(tmp_path, vc_model, DEMOD_VOICE_XTTS_MODEL_DIR=str(xtts_model))
    assert run_cli("voices", "add", "erin", str(references["ref.wav"]), env=env).returncode == 0
    out = tmp_path / "erin.wav"
    done = run_cli("convert", str(sources["short.wav"]), "--voice", "erin", "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert np.sqrt(np.mean(converted(out) ** 2)) > 1e-4

    old = profiles_dir(tmp_path / "cache") / "old.npz"  # a profile made before conversion existed (format 1)
    write_profile(old, "old", "m", ["ab" * 32], np.zeros((1, 4, 8), np.float32), np.zeros((1, 8, 1), np.float32))
    done = run_cli("convert", str(sources["short.wav"]), "--voice", "old", "-o", str(tmp_path / "o.wav"), env=env)
    assert done.returncode == 3 and "made before voice conversion existed" in done.stderr.decode()
    assert done.stderr.decode().count("\n") == 1 and not (tmp_path / "o.wav").exists()


def test_hostile_sources_are_refused(vc_model, references, tmp_path):
    import os

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "noise.wav").write_bytes(os.urandom(5000))
    good = voiced_signal(2.0, RATE)
    soundfile.write(str(bad / "whole.flac"), good, RATE)
    (bad / "cut.flac").write_bytes((bad / "whole.flac").read_bytes()[:600])
    soundfile.write(str(bad / "silent.wav"), np.zeros(RATE, np.float32), RATE)
    soundfile.write(str(bad / "long.wav"), voiced_signal(3.0, 8000), 8000)
    (bad / "empty.wav").write_bytes(b"")
    soundfile.write(str(bad / "blip.wav"), good[: RATE // 20], RATE)  # 0.05 s: it said "holds no audio", and not what to do
    (bad / "takes").mkdir()  # a folder of recordings given as one source (it said "not found")
    damaged = good.astype(np.float32)
    damaged[RATE // 2] = np.nan  # a float recording with a sample that is no number: "synthesis failed (openvoice backend)", exit 1
    soundfile.write(str(bad / "nan.wav"), damaged, RATE, subtype="FLOAT")
    cases = {"noise.wav": "not audio that can be read", "cut.flac": "cut.flac", "silent.wav": "is silent",
             "long.wav": "convert.max_source_seconds", "empty.wav": "empty.wav", "missing.wav": "not found",
             "takes": "is a folder", "blip.wav": "at least 0.1 s", "nan.wav": "not numbers (NaN or infinity)"}
    env = env_for(tmp_path, vc_model, DEMOD_VOICE_CONVERT_MAX_SOURCE_SECONDS="2")
    for name, words in cases.items():
        out = tmp_path / f"{name}.out.wav"
        done = run_cli("convert", str(bad / name), "--reference", str(references["ref.wav"]), "-o", str(out), env=env)
        message = done.stderr.decode()
        assert done.returncode == 3 and words in message and message.count("\n") == 1 and "Traceback" not in message, (name, message)
        assert not out.exists()
    done = run_cli("convert", str(bad / "whole.flac"), "--reference", str(bad / "nan.wav"), "-o", str(tmp_path / "x.wav"), env=env)
    assert done.returncode == 3 and "reference nan.wav holds samples that are not numbers" in done.stderr.decode(), done.stderr
    done = run_cli("convert", str(bad / "whole.flac"), "-o", str(tmp_path / "x.wav"), env=env)
    assert done.returncode == 2 and "--voice" in done.stderr.decode()
    # a recording given as --voice: it was told to make a profile named after the file, or that a path "cannot name a voice"
    for given in ("whole.flac", str(bad / "whole.flac")):
        done = run_cli("convert", str(bad / "long.wav"), "--voice", given, "-o", str(tmp_path / "x.wav"), env=env, cwd=bad)
        message = done.stderr.decode()
        assert done.returncode == 3 and f"--reference {given}" in message and message.count("\n") == 1, message
    # several sources into a folder that does not exist yet: a refused run leaves no empty folder behind
    folder = tmp_path / "converted"
    done = run_cli("convert", str(bad / "whole.flac"), str(bad / "silent.wav"), "--reference", str(references["ref.wav"]),
                   "-o", f"{folder}/", env=env)
    assert done.returncode == 3 and "is silent" in done.stderr.decode(), done.stderr.decode()
    assert not folder.exists()




def test_speech_written_over_its_reference_is_refused(xtts_model, tmp_path):
    """The same loss when speaking: ``xtts-zero-shot bob.wav TEXT -o bob.wav`` replaced the reference with the speech
    (exit 0), as did a batch row whose output names its reference."""
    soundfile.write(str(tmp_path / "bob.wav"), voiced_signal(6.0, RATE), RATE)
    (tmp_path / "rows.csv").write_text("reference,text,output\nbob.wav,Hello.,bob.wav\n")
    kept = (tmp_path / "bob.wav").read_bytes()
    for args in (["xtts-zero-shot", "bob.wav", "Hello.", "-o", "bob.wav"], ["batch", "rows.csv", "--output-dir", "."]):
        done = run_cli(*args, env={"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "DEMOD_VOICE_XTTS_MODEL_DIR": str(xtts_model),
                                   "DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}, cwd=tmp_path)
        message = done.stderr.decode()
        assert done.returncode == 3 and "itself" in message and "Traceback" not in message, (args, message)
        assert (tmp_path / "bob.wav").read_bytes() == kept, args

def test_one_source_into_a_folder(vc_model, references, tmp_path):
    """``-o converted/`` (or an existing folder) with one source writes ``converted/NAME.wav``, as it does for several:
    ``convert takes/*.wav -o converted/`` was refused ("cannot tell the audio format of 'converted/'") when the pattern
    matched one take, and an existing folder was "a directory; give a file name such as .../speech.wav"."""
    take = tmp_path / "take.flac"
    soundfile.write(str(take), voiced_signal(1.0, RATE), RATE)
    existing = tmp_path / "existing"
    existing.mkdir()
    for output, made in ((f"{tmp_path / 'converted'}/", tmp_path / "converted" / "take.wav"), (str(existing), existing / "take.wav")):
        done = run_cli("convert", str(take), "--reference", str(references["ref.wav"]), "-o", output, env=env_for(tmp_path, vc_model))
        assert done.returncode == 0, done.stderr.decode()
        assert len(converted(made)) == soundfile.info(str(take)).frames
        assert sorted(path.name for path in made.parent.iterdir()) == ["take.wav"]

def test_released_converter_downloads_into_the_cache(vc_model, sources, references, tmp_path):
    hub = tmp_path / "hub"
    (hub / "converter").mkdir(parents=True)
    for name in ("config.json", "checkpoint.pth"):
        shutil.copy(vc_model / name, hub / "converter" / name)
    with CatalogServer(hub) as server:
        server.cut_once["converter/checkpoint.pth"] = 1 << 20  # a dropped connection, once: the next run resumes
        env = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "DEMOD_VOICE_CONVERT_URL": server.url + "converter/", **FAST}
        missing = run_cli("models", "path", "openvoice_v2", env=env)  # the converter answers for its name, not Piper's catalog
        assert missing.returncode != 0 and "models download openvoice_v2" in missing.stderr.decode(), missing.stderr.decode()
        first = run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(tmp_path / "a.wav"), env=env)
        assert first.returncode != 0 and not (tmp_path / "a.wav").exists()
        done = run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(tmp_path / "a.wav"), env=env)
        assert done.returncode == 0, done.stderr.decode()
        assert ("converter/checkpoint.pth", "bytes=1048576-") in server.requests
        folder = tmp_path / "cache" / "convert" / "OpenVoiceV2"
        assert (folder / "checkpoint.pth").read_bytes() == (vc_model / "checkpoint.pth").read_bytes()
        requests = len(server.requests)
        assert run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(tmp_path / "b.wav"),
                       env=env).returncode == 0
        assert len(server.requests) == requests  # once in the cache, never fetched again
        assert run_cli("models", "path", "openvoice_v2", env=env).stdout.decode().strip() == str(folder)


# --- HTTP -------------------------------------------------------------------------------------


SPEAK, ENROLL = "speak-key-0001", "enroll-key-0002"


@pytest.fixture(scope="module")
def server(tmp_path_factory, vc_model, xtts_model):
    import signal

    from live_server import start_server

    folder = tmp_path_factory.mktemp("serve-convert")
    config = {
        "xtts": {"model_dir": str(xtts_model), "max_new_tokens": 24},
        "convert": {"model_dir": str(vc_model), "seed": 7},
        "serve": {"keys": {SPEAK: "speak", ENROLL: "speak,enroll"},
                  "limits": {"max_upload_mb": 2.0, "max_reference_seconds": 10.0}},
    }
    live = start_server(folder, config, "-v")
    yield live
    live.stop(signal.SIGKILL)


def streamed_samples(data: bytes):
    import io

    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return np.concatenate([frame.to_ndarray().astype(np.float32).reshape(-1) for frame in container.decode(stream)])


def post_conversion(server, files, key=ENROLL, **data):
    import httpx

    return httpx.post(server.url + "/v1/audio/conversions", files=files, data=data, timeout=300,
                      headers={"Authorization": f"Bearer {key}"})


def test_http_conversion(server, vc_model, sources, references, tmp_path):
    import io
    import os

    import httpx

    source = ("file", ("short.wav", sources["short.wav"].read_bytes()))
    reference = ("references", ("ref.wav", references["ref.wav"].read_bytes()))
    assert post_conversion(server, [source, reference], key=SPEAK).status_code == 403  # the enrollment scope

    response = post_conversion(server, [source, reference])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav" and response.headers["x-sample-rate"] == str(RATE)
    served, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
    cli = tmp_path / "cli.wav"
    assert run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(cli),
                   env=env_for(tmp_path, vc_model)).returncode == 0
    assert rate == RATE and len(served) == len(converted(cli))
    assert np.abs(served - converted(cli)).max() <= 2 / 32768  # the same conversion as the CLI's (16-bit source decoded alike)

    enrolled = httpx.post(server.url + "/v1/voices", data={"name": "fay"}, files=[("files", ("ref.wav", references["ref.wav"].read_bytes()))],
                          headers={"Authorization": f"Bearer {ENROLL}"}, timeout=300)
    assert enrolled.status_code == 201, (enrolled.text, server.log_text()[-3000:])
    flac = post_conversion(server, [source], voice="fay", response_format="flac")
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
    samples = streamed_samples(flac.content)  # a streamed FLAC does not know its length up front: read it through FFmpeg
    assert abs(len(samples) - len(served)) < HOP and np.sqrt(np.mean(samples ** 2)) > 1e-4

    long = tmp_path / "long.wav"
    soundfile.write(str(long), voiced_signal(12.0, 8000), 8000)
    cases = [
        ([("file", ("x.wav", os.urandom(20000))), reference], {}, 400, "x.wav"),
        # a source too long was told that "6-30 s is enough for a voice reference": it is no reference, all of it is wanted
        ([("file", ("long.wav", long.read_bytes())), reference], {}, 413, "convert it in parts of up to 10 s"),
        ([source, ("references", ("long.wav", long.read_bytes()))], {}, 413, "enough for a voice reference"),
        ([source], {}, 400, "'voice'"),
        ([source, reference], {"voice": "fay"}, 400, "one of the two"),
        ([source], {"voice": "nobody"}, 404, "nobody"),
        ([source], {"voice": "../evil"}, 400, "voice id"),
        ([source, reference], {"response_format": "exe"}, 400, "response_format"),
        ([reference], {"voice": "fay"}, 400, "'file'"),
    ]
    for files, data, status, words in cases:
        answer = post_conversion(server, files, **data)
        assert answer.status_code == status, (files[0][1][0], data, answer.text)
        message = answer.json()["error"]["message"]
        assert words in message and str(server.folder) not in message, message
    assert not list(server.folder.rglob("convert-*"))  # no upload left behind



def test_a_client_that_leaves_before_the_audio_cancels_its_conversion(server, references, tmp_path):
    """A client gone before the first audio (a timeout, a closed tab) left its conversion running on the one converter
    until the deadline (120 s by default, then the worker was killed for not stopping); speech was cancelled already."""
    import socket
    import time
    import uuid

    from live_server import metric, wait_until

    def metrics() -> str:
        import httpx

        return httpx.get(server.url + "/metrics", timeout=10).text

    source = io_wav(voiced_signal(9.0, RATE))
    boundary = uuid.uuid4().hex.encode()
    parts = [(b"file", b"take.wav", source), (b"references", b"ref.wav", references["ref.wav"].read_bytes())]
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n\r\n%s\r\n" % (boundary, *part)
                    for part in parts) + b"--%s--\r\n" % boundary
    host = server.url.removeprefix("http://")
    before = metric(metrics(), "demod_voice_cancelled_requests_total", 'reason="client_gone"')
    with socket.create_connection(tuple(host.split(":")), timeout=30) as sock:
        sock.sendall(b"POST /v1/audio/conversions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     b"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s"
                     % (host.encode(), ENROLL.encode(), boundary, len(body), body))
        assert wait_until(lambda: metric(metrics(), "demod_voice_running_jobs") == 1, 120), server.log_text()[-2000:]
        time.sleep(0.5)
    assert wait_until(lambda: metric(metrics(), "demod_voice_cancelled_requests_total", 'reason="client_gone"') == before + 1, 15)
    assert wait_until(lambda: metric(metrics(), "demod_voice_running_jobs") == 0, 30)
    assert wait_until(lambda: not list(server.folder.rglob("convert-*")), 10)  # its upload went with it


def io_wav(samples) -> bytes:
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()

def test_batch_rows_with_a_source(vc_model, sources, references, tmp_path):
    sheet = tmp_path / "rows.csv"
    shutil.copy(sources["short.wav"], tmp_path / "line1.wav")
    shutil.copy(references["ref.wav"], tmp_path / "ref.wav")
    sheet.write_text("source,reference,output\nline1.wav,ref.wav,line1-converted.wav\n")
    out = tmp_path / "out"
    done = run_cli("batch", str(sheet), "--output-dir", str(out), env=env_for(tmp_path, vc_model))
    assert done.returncode == 0, done.stderr.decode()
    made = converted(out / "line1-converted.wav")
    cli = tmp_path / "cli.wav"
    assert run_cli("convert", str(sources["short.wav"]), "--reference", str(references["ref.wav"]), "-o", str(cli),
                   env=env_for(tmp_path, vc_model)).returncode == 0
    assert np.array_equal(made, converted(cli))  # a row is the same job as the command
    again = run_cli("-v", "batch", str(sheet), "--output-dir", str(out), env=env_for(tmp_path, vc_model))
    assert again.returncode == 0 and "worker" not in again.stderr.decode()  # resumed: done already, no model loaded

    sheet.write_text("source,text,reference,output\nline1.wav,Hello,ref.wav,x.wav\nmissing.wav,,ref.wav,y.wav\n")
    bad = run_cli("batch", str(sheet), "--output-dir", str(out), env=env_for(tmp_path, vc_model))
    message = bad.stderr.decode()
    assert bad.returncode == 3 and "leave 'text' empty" in message and "missing.wav" in message and "not found" in message


def post_batch(server, sheet: str, files=(), key=ENROLL):
    import httpx

    parts = [("csv", ("rows.csv", sheet.encode())), *files]
    return httpx.post(server.url + "/v1/batch", files=parts, timeout=300, headers={"Authorization": f"Bearer {key}"})


def finished_job(server, job: str, key=ENROLL, timeout: float = 300) -> dict:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.url}/v1/batch/{job}", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        if state["state"] not in ("queued", "running", "interrupted"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"batch job {job} did not finish in {timeout} s: {server.log_text()[-3000:]}")


def test_server_batch_conversion_rows(server, vc_model, sources, references, tmp_path):
    """``POST /v1/batch`` with conversion rows: each row's ``source`` names a recording uploaded as a ``sources`` file
    (never a server path), decoded like any upload; the rows' audio equals the command's conversion of the same source."""
    import io
    import zipfile

    import httpx

    auth = {"Authorization": f"Bearer {ENROLL}"}
    reference = ("references", ("ref.wav", references["ref.wav"].read_bytes()))
    takes = [("sources", ("take-1.wav", sources["short.wav"].read_bytes())), ("sources", ("take-2.wav", sources["long.wav"].read_bytes()))]
    sheet = "source,reference,output\ntake-1.wav,ref.wav,one.wav\ntake-2.wav,ref.wav,sub/two.flac\n"
    jobs = server.folder / "cache"
    assert post_batch(server, sheet, [*takes, reference], key=SPEAK).status_code == 403  # converting needs the enroll scope
    refused = post_batch(server, sheet, [reference], key=SPEAK)  # the rows alone (no upload) are refused for the scope too
    assert refused.status_code == 403 and "'enroll'" in refused.json()["error"]["message"]

    created = post_batch(server, sheet, [*takes, reference])
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    state = finished_job(server, job)
    assert (state["state"], state["done"], state["failed"]) == ("done", 2, 0), (state, server.log_text()[-3000:])
    result = httpx.get(f"{server.url}/v1/batch/{job}/result", headers=auth, timeout=60)
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        made = {name: soundfile.read(io.BytesIO(archive.read(name)), dtype="float32") for name in ("one.wav", "sub/two.flac")}
        report = archive.read("report.jsonl").decode()
    assert str(server.folder) not in report and "srcs" not in report
    for (name, (audio, rate)), source in zip(made.items(), ("short.wav", "long.wav"), strict=True):
        cli = tmp_path / f"{source}.cli.wav"
        assert run_cli("convert", str(sources[source]), "--reference", str(references["ref.wav"]), "-o", str(cli),
                       env=env_for(tmp_path, vc_model)).returncode == 0
        assert rate == RATE and len(audio) == len(converted(cli)), name
        assert np.abs(audio - converted(cli)).max() <= 2 / 32768, name  # the same conversion as the command's

    folder = next(path for path in jobs.rglob(job) if path.is_dir())
    assert (folder / "srcs").is_dir()
    assert httpx.delete(f"{server.url}/v1/batch/{job}", headers=auth, timeout=60).json()["deleted"]
    assert not folder.exists()

    cases = [
        ("source,reference,output\n/etc/passwd,ref.wav,a.wav\n", [reference], "'/etc/passwd' was not uploaded"),  # a server path
        ("source,reference,output\nsrcs/0/take-1.wav,ref.wav,a.wav\n", [*takes, reference], "'srcs/0/take-1.wav' was not uploaded"),
        ("source,reference,output\nnot-sent.wav,ref.wav,a.wav\n", [*takes, reference], "'not-sent.wav' was not uploaded"),
        ("source,text,reference,output\ntake-1.wav,Hello,ref.wav,a.wav\n", [*takes, reference], "leave 'text' empty"),
        ("source,output\ntake-1.wav,a.wav\n", takes, "'reference'"),
        ("source,reference,output\nref.wav,ref.wav,a.wav\n", [reference], "'ref.wav' was not uploaded"),  # a reference is no source
    ]
    for sheet, files, words in cases:
        answer = post_batch(server, sheet, files)
        assert answer.status_code == 400, (sheet, answer.text)
        message = answer.json()["error"]["message"]
        assert words in message and "\n" not in message and str(server.folder) not in message, message
    bad_upload = post_batch(server, "source,reference,output\nx.wav,ref.wav,a.wav\n", [("sources", ("x.wav", b"RIFF" + bytes(3000))), reference])
    assert bad_upload.status_code == 400 and "x.wav" in bad_upload.json()["error"]["message"]
    assert str(server.folder) not in bad_upload.text
    assert not [path for path in jobs.rglob("*") if path.parent.name == "batch"]  # nothing left of refused or deleted jobs

    silent = io.BytesIO()
    soundfile.write(silent, np.zeros(RATE, np.float32), RATE, format="WAV")
    failing = post_batch(server, "source,reference,output\nquiet-take.flac,ref.wav,a.wav\n",
                         [("sources", ("quiet-take.flac", silent.getvalue())), reference])
    # refused by the rows' own checks, now at the upload (it was a 202, then a failed job): named as its client named it
    assert failing.status_code == 400, failing.text
    error = failing.json()["error"]["message"]
    assert "line 2" in error and "quiet-take" in error and "silent" in error, error
    assert str(server.folder) not in failing.text and "srcs" not in failing.text, failing.text


def test_a_stopped_conversion_into_a_new_folder_leaves_no_folder_and_no_warning(vc_model, references, tmp_path):
    """SIGTERM (or Ctrl-C) part way through a conversion of several sources: the folder it made went with the
    outputs it had begun, and the worker it had to kill was a warning, as if something had gone wrong."""
    import os
    import signal
    import time

    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    for path in (first, second):
        soundfile.write(str(path), voiced_signal(40.0, RATE), RATE)
    folder = tmp_path / "made-by-the-run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "demod-voice"), "convert", str(first), str(second),
                             "--reference", str(references["ref.wav"]), "--window-seconds", "4", "--overlap-seconds", "1",
                             "-o", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **env_for(tmp_path, vc_model, DEMOD_VOICE_ENGINE_CANCEL_KILL_AFTER="0.1")})
    try:
        deadline = time.monotonic() + 120
        while not (folder.is_dir() and any(p.name.endswith(".partial") for p in folder.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "the conversion never began its first output"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err.decode()
    assert not folder.exists(), sorted(p.name for p in folder.iterdir())
    assert "warning" not in err.decode(), err.decode()
    assert err.decode().strip().splitlines()[-1].startswith("demod-voice: error: terminated (SIGTERM)"), err.decode()


def test_an_audiobook_converted_into_an_m4b_keeps_its_chapters_tags_and_cover(vc_model, references, tmp_path):
    """``-o book.m4b`` was refused ("cannot tell the audio format"), and a converted ``.flac`` had no chapters or title."""
    from demod_voice.book import mux

    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                        "53de0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
    lengths = [int(1.2 * RATE), int(0.9 * RATE)]
    source = tmp_path / "book.m4b"
    mux.write_m4b(source, lengths, [voiced_signal(n / RATE, RATE) for n in lengths], ["One: Été", "Two"], RATE,
                  mux.Tags("A Book", "Ann Author", cover=png, cover_type="image/png"))
    out = tmp_path / "book-me.m4b"
    done = run_cli("convert", str(source), "--reference", str(references["ref.wav"]), "-o", str(out), env=env_for(tmp_path, vc_model))
    assert done.returncode == 0, done.stderr.decode()
    (marks, tags), (theirs, source_tags) = mux.read_marks(out), mux.read_marks(source)
    assert [title for _, title in marks] == ["One: Été", "Two"]
    assert [round(start, 2) for start, _ in marks] == [round(start, 2) for start, _ in theirs]
    assert tags == source_tags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book-me.m4b", "book.m4b"]  # nothing of the work left


def test_an_output_that_is_a_source_is_refused_and_the_recording_kept(vc_model, references, tmp_path):
    """``convert take.wav -o take.wav``, ``convert *.wav -o .`` in the takes' own folder, or a batch row whose output
    names its source, replaced the recordings with their conversions (exit 0): the user's takes were gone. Now refused
    before any work, the recordings untouched."""
    takes = tmp_path / "takes"
    takes.mkdir()
    for name in ("a.wav", "b.flac", "bob.wav"):
        soundfile.write(str(takes / name), voiced_signal(1.0, RATE), RATE)
    (takes / "rows.csv").write_text("source,reference,output\na.wav,bob.wav,a.wav\n")
    kept = {path.name: path.read_bytes() for path in takes.iterdir()}
    env = env_for(tmp_path, vc_model)
    for args in (["convert", "a.wav", "--reference", "bob.wav", "-o", "a.wav"], ["convert", "a.wav", "b.flac", "--reference", "bob.wav", "-o", "."],
                 ["convert", "./b.flac", "--reference", "bob.wav", "-o", str(takes / "b.flac")],
                 ["convert", "a.wav", "--reference", "bob.wav", "-o", "bob.wav"], ["batch", "rows.csv", "--output-dir", "."]):
        done = run_cli(*args, env=env, cwd=takes)
        message = done.stderr.decode()
        assert done.returncode == 3 and "itself" in message and "Traceback" not in message, (args, message)
        assert {path.name: path.read_bytes() for path in takes.iterdir()} == kept, args


def test_silence_around_a_references_speech_is_left_out_of_the_target_voice(vc_model, tmp_path):
    """``--reference memo.wav`` with 2.5 s of silence before the speech and 4 s after it was told "cut off, the voice is
    learnt from the speech alone", as cloning from it is, but the converter's target embedding was still made from
    the whole file, silence and all (0.0047 in cosine from the same speech's with this converter; now 0.00003)."""
    from demod_voice.backends.openvoice.engine import OpenVoiceBackend
    from demod_voice.backends.openvoice.request import reference_target
    from demod_voice.engine.jobs import LoadSpec

    speech = voiced_signal(6.0, RATE)

    def memo(name, before, after):
        path = tmp_path / name
        soundfile.write(str(path), np.concatenate([np.zeros(int(before * RATE)), speech, np.zeros(int(after * RATE))]), RATE)
        return str(path)

    backend = OpenVoiceBackend()
    backend.load(LoadSpec(backend="openvoice", model=str(vc_model), cache_dir=str(tmp_path)))
    clean = backend.target(reference_target((memo("clean.wav", 0.1, 0.1),))).numpy().ravel()
    padded = backend.target(reference_target((memo("memo.wav", 2.5, 4.0),))).numpy().ravel()
    distance = 1 - float(clean @ padded) / float(np.linalg.norm(clean) * np.linalg.norm(padded))
    assert distance < 0.001, distance


def test_a_long_conversion_shows_its_progress(vc_model, sources, references, tmp_path):
    """An hour's interview converted for many minutes without a sign of life (the other long commands show a bar): the
    seconds converted now move a bar on stderr, over the sources' length."""
    out = tmp_path / "progress.wav"
    done = run_cli("--progress", "convert", str(sources["long.wav"]), "--reference", str(references["ref.wav"]), "-o", str(out),
                   "--window-seconds", "2", "--overlap-seconds", "1", env=env_for(tmp_path, vc_model))
    assert done.returncode == 0, done.stderr.decode()
    assert "converting: 100%" in done.stderr.decode() and "3/3" in done.stderr.decode(), done.stderr.decode()
    assert abs(len(converted(out)) - soundfile.info(str(sources["long.wav"])).frames) < HOP
