"""A Piper voice replaced at its path while ``serve`` runs with it loaded (re-exported, copied over, re-downloaded).

Workers were keyed by the voice's path: the old model went on speaking until a restart, and its ``.onnx.json`` (speaker
map, sample rate) was not read again either. Now the files' version is part of what a request resolves: the next
request loads the new files, the old workers go once idle, and a preload passes to the new files.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from live_server import children, start_server, wait_until

from demod_voice.backends.piper.request import read_voice_config

TEXT = "Hello there, the voice was replaced."


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice, piper_multi_voice):
    folder = tmp_path_factory.mktemp("replaced")
    voices = folder / "voices"
    voices.mkdir()
    install(piper_voice, voices / "kitchen.onnx")
    install(piper_multi_voice, voices / "multi.onnx")  # the new voice as a voice of its own, to compare with
    config = {"piper": {"noise_scale": 0.0, "noise_w_scale": 0.0}, "serve": {"piper_voices": [str(voices)], "workers": 1}}
    live = start_server(folder, config, "--preload", "kitchen")
    live.voices = voices
    assert wait_until(lambda: ready(live), timeout=60), live.log_text()
    yield live
    live.stop(signal.SIGKILL)


def install(source: Path, target: Path) -> None:
    """A voice written beside ``target`` and renamed over it, config first (as ``models download`` does)."""
    for suffix in (".json", ""):
        partial = target.with_name(f".{target.name}{suffix}.partial")
        shutil.copyfile(f"{source}{suffix}", partial)
        os.replace(partial, f"{target}{suffix}")


def ready(server) -> bool:
    return httpx.get(server.url + "/readyz", timeout=10).status_code == 200


def speak(server, voice: str = "kitchen") -> np.ndarray:
    answer = httpx.post(server.url + "/v1/audio/speech", timeout=60,
                        json={"model": "tts-1", "voice": voice, "input": TEXT, "response_format": "pcm"})
    assert answer.status_code == 200, answer.text
    return np.frombuffer(answer.content, "<i2").astype(np.float32) / 32768.0


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=2e-3))


def test_the_next_request_after_a_voice_is_replaced_is_spoken_by_the_new_voice(server, piper_voice, piper_multi_voice):
    kitchen = server.voices / "kitchen.onnx"
    before, new = speak(server), speak(server, "multi")
    assert not same(before, new)
    workers = len(children(server.pid))

    install(piper_multi_voice, kitchen)  # re-exported and renamed over the old files
    assert same(speak(server), new)
    # the old model's worker goes once idle; the preload passed to the new files and /readyz reads them
    assert wait_until(lambda: len(children(server.pid)) == workers, timeout=30), children(server.pid)
    assert ready(server)
    speakers = httpx.get(server.url + "/v1/audio/voices", timeout=10).json()
    assert "speaker_2" in str(speakers), speakers  # its .onnx.json was read again: the new speaker map

    for suffix in (".json", ""):  # copied in place (the same files, written over), as `cp` does
        shutil.copyfile(f"{piper_voice}{suffix}", f"{kitchen}{suffix}")
    assert same(speak(server), before)
    assert wait_until(lambda: len(children(server.pid)) == workers and ready(server), timeout=30)


def test_a_voice_caught_half_copied_is_spoken_whole_once_the_copy_ends(server, piper_voice, piper_multi_voice):
    kitchen = server.voices / "kitchen.onnx"
    new = speak(server, "multi")
    shutil.copyfile(f"{piper_multi_voice}.json", f"{kitchen}.json")
    whole = piper_multi_voice.read_bytes()
    kitchen.write_bytes(whole[: len(whole) // 2])  # a copy still being written
    answer = httpx.post(server.url + "/v1/audio/speech", timeout=60,
                        json={"model": "tts-1", "voice": "kitchen", "input": TEXT, "response_format": "pcm"})
    if answer.status_code != 200:  # the old voice, or a one-line error without the server's paths
        said = answer.json()["error"]["message"]
        assert "\n" not in said and str(server.folder) not in said, said
    time.sleep(0.05)  # the whole copy's change time is a later one
    kitchen.write_bytes(whole)
    assert same(speak(server), new)
    assert wait_until(lambda: ready(server), timeout=30), httpx.get(server.url + "/readyz", timeout=10).text
    install(piper_voice, kitchen)


def test_a_voice_config_replaced_at_the_same_path_is_read_again(tmp_path, piper_voice, piper_multi_voice):
    config = tmp_path / "voice.onnx.json"
    shutil.copyfile(f"{piper_voice}.json", config)
    assert read_voice_config(config)["num_speakers"] == 1
    shutil.copyfile(f"{piper_multi_voice}.json", config)
    assert read_voice_config(config)["num_speakers"] == 3


def test_an_xtts_checkpoint_replaced_in_its_folder_is_a_new_version_and_an_answer_keeps_its_own(tmp_path, xtts_model, references):
    from demod_voice.backends.xtts.request import XttsRequest, make_job
    from demod_voice.config import XttsSettings

    folder = tmp_path / "xtts"
    folder.mkdir()
    for name in ("config.json", "vocab.json"):
        shutil.copyfile(xtts_model / name, folder / name)
    (folder / "model.pth").symlink_to(xtts_model / "model.pth")
    request = XttsRequest((str(references["ref.wav"]),), "Hello.", "-", XttsSettings(model_dir=str(folder)), str(tmp_path / "cache"))
    first = make_job(request).spec
    time.sleep(0.02)
    shutil.copyfile(xtts_model / "config.json", folder / "config.json")  # a fine-tune exported over the old checkpoint
    now = make_job(request).spec
    assert now.place() == first.place() and now.version > first.version
    assert make_job(dataclasses.replace(request, version=first.version)).spec == first  # an answer resolved before it


def test_a_converter_replaced_in_its_folder_is_a_new_version(tmp_path, vc_model, references):
    from demod_voice.backends.openvoice.request import ConvertRequest, make_jobs
    from demod_voice.config import ConvertSettings

    folder = tmp_path / "converter"
    folder.mkdir()
    shutil.copyfile(vc_model / "config.json", folder / "config.json")
    (folder / "checkpoint.pth").symlink_to(vc_model / "checkpoint.pth")
    source = str(references["ref.wav"])
    request = ConvertRequest((source,), (str(tmp_path / "out.wav"),), ConvertSettings(model_dir=str(folder)), str(tmp_path / "cache"),
                             references=(source,))
    first = make_jobs(request)[0].spec
    time.sleep(0.02)
    shutil.copyfile(vc_model / "config.json", folder / "config.json")
    now = make_jobs(request)[0].spec
    assert now.place() == first.place() and now.version > first.version
