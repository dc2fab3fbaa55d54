"""A voice profile made before conversion existed (format 1) cannot be converted into: the server's clients (the API and
the web page) are told to enroll it again in their own terms, never with a command line they do not have; the command
line keeps its own advice."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import soundfile
from conftest import voiced_signal
from live_server import start_server

from demod_voice.voices.profiles import REENROLL_CLI, REENROLL_HTTP, profiles_dir, reenroll_advice, reenroll_text, write_profile

ENROLL = "enroll-key-advice-01"
CLI_WORDS = "demod-voice voices add"
HTTP_WORDS = "POST /v1/voices"


@pytest.fixture(scope="module")
def server(tmp_path_factory, vc_model):
    folder = tmp_path_factory.mktemp("serve-advice")
    cache = folder / "dv-cache"
    write_profile(profiles_dir(cache) / "old.npz", "old", "m", ["ab" * 32], np.zeros((1, 4, 8), np.float32),
                  np.zeros((1, 8, 1), np.float32))  # latents only: format 1
    config = {"cache_dir": str(cache), "convert": {"model_dir": str(vc_model)}, "serve": {"keys": {ENROLL: "speak,enroll"}}}
    live = start_server(folder, config)
    yield live
    live.stop(signal.SIGKILL)


def _post(server, path: str, **kwargs):
    return httpx.post(server.url + path, headers={"Authorization": f"Bearer {ENROLL}"}, timeout=120, **kwargs)


def _take(tmp_path) -> bytes:
    path = tmp_path / "take.wav"
    soundfile.write(str(path), voiced_signal(1.0, 22050), 22050)
    return path.read_bytes()


def test_a_format_1_voice_gets_http_advice_from_the_conversion_route(server, tmp_path):
    answer = _post(server, "/v1/audio/conversions", data={"voice": "old"}, files=[("file", ("take.wav", _take(tmp_path)))])
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "made before voice conversion existed" in message and HTTP_WORDS in message and "Clone tab" in message, message
    assert CLI_WORDS not in message and "--reference" not in message, message


def test_a_format_1_voice_in_a_batch_job_gets_http_advice(server, tmp_path):
    """The row is refused at the upload (the job's own row checks run then; it was a 202 and a job that failed when it
    ran), saying how to enroll over HTTP."""
    rows = "source,voice,output\ntake.wav,old,take-old.wav\n"
    made = _post(server, "/v1/batch", files=[("csv", ("rows.csv", rows.encode())), ("sources", ("take.wav", _take(tmp_path)))])
    assert made.status_code == 400, made.text
    error = made.json()["error"]["message"]
    assert "'old' was made before voice conversion existed" in error and HTTP_WORDS in error, error
    assert CLI_WORDS not in error and "srcs" not in error and str(tmp_path) not in error, error


def test_the_advice_is_the_command_lines_outside_the_server():
    """The default stays the command line's; the server's words hold inside the block, in threads started from it with
    its context (asyncio.to_thread, as the conversion route does), and not in a thread started bare (the batch job's thread
    sets them itself)."""
    assert reenroll_text("ann") == REENROLL_CLI.format(name="ann") and CLI_WORDS + " ann" in reenroll_text("ann")
    seen: dict[str, str] = {}
    with reenroll_advice(REENROLL_HTTP):
        assert reenroll_text("ann") == REENROLL_HTTP
        seen["to_thread"] = asyncio.run(asyncio.to_thread(reenroll_text, "ann"))
        bare = threading.Thread(target=lambda: seen.update(bare=reenroll_text("ann")))
        bare.start()
        bare.join()
    assert seen == {"to_thread": REENROLL_HTTP, "bare": REENROLL_CLI.format(name="ann")}
    assert reenroll_text("ann") == REENROLL_CLI.format(name="ann")


def test_a_missing_converter_is_the_administrators_to_fix_and_names_no_server_folder(tmp_path, monkeypatch):
    """A server that could not download the converter answered 500 with "to install it by hand, put OpenVoice v2's
    converter/config.json and checkpoint.pth in /home/.../convert/OpenVoiceV2": a folder of the server, and a fix only its
    administrator can make (the web page's Convert tab showed it to its user). The command line keeps that advice."""
    from demod_voice.backends.openvoice.request import ConvertRequest, make_jobs
    from demod_voice.config import ConvertSettings
    from demod_voice.errors import ModelMissing
    from demod_voice.serve.errors import from_engine

    take = tmp_path / "take.wav"
    take.write_bytes(_take(tmp_path))
    with socket.socket() as closed:  # a port nothing listens on: the download is refused at once
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/converter/"
    request = ConvertRequest(sources=(str(take),), outputs=(str(tmp_path / "out.wav"),), references=(str(take),),
                             settings=ConvertSettings(url=url), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ModelMissing) as missing:
        make_jobs(request)
    assert "put OpenVoice v2's converter/config.json and checkpoint.pth in" in str(missing.value)  # the command line's
    answer = from_engine(missing.value)
    assert answer.status == 503 and answer.code == "model_missing", (answer.status, answer.code)
    assert "its administrator can install it" in str(answer) and str(tmp_path) not in str(answer) and "put " not in str(answer)
    from demod_voice.serve.http import conversions

    monkeypatch.setattr(conversions.registry, "converter", lambda: SimpleNamespace(conversion_jobs=lambda *args: make_jobs(request)))
    monkeypatch.setattr(conversions, "scope", lambda ctx: None)
    refused = asyncio.run(_convert_in_process(tmp_path))
    assert (refused.status, str(refused)) == (503, str(answer))  # the route answered with the command line's words


async def _convert_in_process(tmp_path):
    """What ``POST /v1/audio/conversions`` raises for a take and a reference (the converter stood in for by the caller)."""
    from starlette.requests import Request

    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.http import conversions

    limits = SimpleNamespace(max_upload_mb=2.0, max_reference_seconds=20.0, deadline_seconds=10.0)
    ctx = SimpleNamespace(draining=threading.Event(), data_dir=tmp_path, settings=SimpleNamespace(limits=limits))
    built = httpx.Request("POST", "http://x/", files=[("file", ("a.wav", _take(tmp_path))), ("references", ("r.wav", _take(tmp_path)))])
    body = built.read()
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", built.headers["content-type"].encode()), (b"content-length", str(len(body)).encode())]}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        await conversions.convert(Request(scope, receive), ctx)
    except ApiError as err:
        return err
    raise AssertionError("the conversion was not refused")
