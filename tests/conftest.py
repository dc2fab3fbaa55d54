"""Shared fixtures. Test models are generated once per session (or reused from
``$DEMOD_VOICE_TEST_CACHE`` when set, for quick local reruns)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin" / "demod-voice"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """No test reads the developer's own config or DEMOD_VOICE_* variables."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    for name in list(os.environ):
        if name.startswith("DEMOD_VOICE_") and name != "DEMOD_VOICE_TEST_CACHE":
            monkeypatch.delenv(name)
    return home / "demod-voice" / "config.yaml"


def run_cli(*args: str, input: bytes | str | None = None, env: dict | None = None, cwd: Path | None = None):
    """Run the real ``bin/demod-voice`` in a fresh interpreter; return the CompletedProcess (bytes stdout)."""
    if isinstance(input, str):
        input = input.encode("utf-8")
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(BIN), *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def _generated(tmp_path_factory, name: str, script: str, *args: str) -> Path:
    cache = os.environ.get("DEMOD_VOICE_TEST_CACHE")
    folder = Path(cache) if cache else tmp_path_factory.getbasetemp() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        # A separate interpreter keeps torch out of the test process.
        subprocess.run([sys.executable, str(FIXTURES / script), str(target), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
    return target


@pytest.fixture(scope="session")
def piper_voice(tmp_path_factory) -> Path:
    """A tiny single-speaker Piper voice (real VITS graph, random weights)."""
    return _generated(tmp_path_factory, "tiny-single.onnx", "make_piper_voice.py", "--size", "tiny")


@pytest.fixture(scope="session")
def piper_multi_voice(tmp_path_factory) -> Path:
    """A tiny Piper voice with three speakers named speaker_0..speaker_2."""
    return _generated(tmp_path_factory, "tiny-multi.onnx", "make_piper_voice.py", "--size", "tiny", "--speakers", "3")
