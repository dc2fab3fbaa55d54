"""A third-party backend, installed like any plugin, works through every front door.

``tests/plugin_pkg`` is an out-of-tree package (its own pyproject.toml, not a module of
demod_voice) that declares two backends in the entry-point group ``demod_voice.backends``:
``sine`` (numpy sine tones, through the real engine and its subprocess workers) and ``broken``
(its module cannot be imported). It is built and installed without network into a temporary
folder (never into the project's venv), which reaches the processes through ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_cli
from live_server import free_port, start_server

from demod_voice.backends import registry
from demod_voice.checks import FAIL
from demod_voice.health import Report, check_plugins

PACKAGE = Path(__file__).resolve().parent.parent / "plugin_pkg"
TEXT = "A tone for each sentence. And here is another one!"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin, built from a copy of its sources (the tree stays clean) and installed into a folder of its own."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PACKAGE, work / "src")
    target = work / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index", "--no-deps",
                           "--target", str(target), str(work / "src")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (target / "demod_voice_sine-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture
def loaded(site, monkeypatch):
    """The plugin visible to this process (entry points are found on sys.path) and to the workers it starts."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


def env_for(site: Path, home: Path) -> dict:
    return {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "xdg")}


def tone(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``samples``, in Hz."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


def test_cli_lists_its_models_and_batch_rows_name_it(site, tmp_path):
    env = env_for(site, tmp_path)
    listed = run_cli("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr.decode()
    assert any(line.split()[:2] == ["sine", "sine-a440"] for line in listed.stdout.decode().splitlines())
    sheet = tmp_path / "rows.csv"
    sheet.write_text(f"text,output,backend,model\n{TEXT},a.wav,sine,sine-a440\n{TEXT},c.flac,sine,sine-c523\n", encoding="utf-8")
    done = run_cli("batch", str(sheet), "--output-dir", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert b"broken" not in done.stderr  # the plugin that fails to load stays out of the way
    for name, hz in (("a.wav", 440.0), ("c.flac", 523.25)):
        samples, rate = soundfile.read(str(tmp_path / "out" / name), dtype="float32")
        assert rate == 16000 and abs(tone(samples, rate) - hz) < 5
    bad = tmp_path / "bad.csv"
    bad.write_text("text,output,backend,model\nHi.,x.wav,sine,sine-nope\n", encoding="utf-8")
    refused = run_cli("batch", str(bad), "--output-dir", str(tmp_path / "out2"), env=env)
    assert refused.returncode != 0 and b"bad.csv:2: a sine row needs a model" in refused.stderr


def test_a_batch_row_naming_a_plugin_that_failed_to_load_says_why(site, tmp_path):
    """It said "unknown backend 'broken'; choose one of ..." although the backend is installed."""
    sheet = tmp_path / "rows.csv"
    sheet.write_text("text,output,backend\nHi.,a.wav,broken\n", encoding="utf-8")
    done = run_cli("batch", str(sheet), "--output-dir", str(tmp_path / "out"), env=env_for(site, tmp_path))
    assert done.returncode == 3
    assert (b"rows.csv:2: backend 'broken' is installed but could not be loaded (ModuleNotFoundError: No module named "
            b"'demod_voice_sine_missing_dependency'); 'demod-voice health' says more\n") in done.stderr, done.stderr


def test_a_plugin_that_fails_to_load_is_reported_and_breaks_nothing(loaded):
    assert "sine" in registry.names() and "broken" not in registry.names()
    failed = {f.name: f for f in registry.failures()}
    assert "No module named 'demod_voice_sine_missing_dependency'" in failed["broken"].error
    assert failed["broken"].source == "demod-voice-sine"
    checks = check_plugins()
    assert [(c.name, c.status, c.needed_by) for c in checks] == [("backend broken", FAIL, ("broken",))]
    report = Report(checks=checks, backends=[*registry.names(), "broken"])
    assert "broken" not in report.usable and {"piper", "xtts", "sine"} <= set(report.usable)


def test_the_page_lists_its_voices(loaded, tmp_path):
    from demod_voice.config import Config
    from demod_voice.serve.core import build_context
    from demod_voice.serve.ui.actions import choose, voice_options

    config = Config(cache_dir=str(tmp_path / "cache"))
    ctx = build_context(config, engine=None)
    options = dict(voice_options(ctx))
    assert options["sine-a440 (sine tone, 440 Hz)"] == "sine|sine-a440|"
    choice = choose(ctx, "sine|sine-a440|")
    assert choice.kind == "sine" and choice.sample_rate == 16000 and choice.job("Hi.").options.frequency == 440.0


def test_http_and_wyoming_speak_with_it(site, tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("wyoming")
    wyoming_port = free_port()
    server = start_server(tmp_path / "srv", {}, "--wyoming", f"tcp://127.0.0.1:{wyoming_port}", env={"PYTHONPATH": str(site)})
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            models = [m["id"] for m in client.get("/v1/models").json()["data"]]
            assert {"sine-a440", "sine-c523"} <= set(models)
            voices = {v["id"]: v for v in client.get("/v1/audio/voices").json()["voices"]}
            assert voices["sine-c523"]["kind"] == "sine"
            spoken = client.post("/v1/audio/speech", json={"model": "sine-a440", "input": TEXT, "voice": "any",
                                                            "response_format": "wav"})
            assert spoken.status_code == 200, spoken.text
            samples, rate = soundfile.read(io.BytesIO(spoken.content), dtype="float32")
            assert rate == 16000 and abs(tone(samples, rate) - 440.0) < 5
        info, start, pcm = asyncio.run(asyncio.wait_for(_wyoming(wyoming_port), 120))
        listed = {voice.name: voice for program in info.tts for voice in program.voices}
        assert listed["sine-c523"].attribution.name == "Sine tones" and listed["sine-c523"].languages == ["en"]
        assert start.rate == 16000
        assert abs(tone(np.frombuffer(pcm, dtype="<i2"), 16000) - 523.25) < 5
    finally:
        assert server.stop() == 0, server.log_text()


async def _wyoming(port: int):
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info
    from wyoming.tts import Synthesize, SynthesizeVoice

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
        while not Info.is_type(event.type):
            event = await client.read_event()
        info = Info.from_event(event)
        await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="sine-c523")).event())
        start, pcm = None, bytearray()
        while True:
            event = await client.read_event()
            assert event is not None and event.type != "error", event
            if AudioStart.is_type(event.type):
                start = AudioStart.from_event(event)
            elif AudioChunk.is_type(event.type):
                pcm += AudioChunk.from_event(event).audio
            elif AudioStop.is_type(event.type):
                return info, start, bytes(pcm)
