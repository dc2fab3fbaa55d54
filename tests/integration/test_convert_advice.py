"""A voice profile made before conversion existed (format 1) cannot be converted into: the server's clients (the API and
the web page) are told to enroll it again in their own terms, never with a command line they do not have; the command
line keeps its own advice."""

from __future__ import annotations

import asyncio
import signal
import threading

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
