"""Shared fixtures. Test models are generated once per session (or reused from
``$DEMOD_VOICE_TEST_CACHE`` when set, for quick local reruns)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin" / "demod-voice"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The real-voice fixtures (a speech recogniser, the released joe voice, the peer's WER): see tests/intelligibility.py.
from intelligibility import joe_voice, peer_wer, recogniser  # noqa: E402, F401

# Piper backends loaded in this process (joe_backend, tiny_backend): see tests/piper_loaded.py.
from piper_loaded import joe_backend, tiny_backend  # noqa: E402, F401


@pytest.fixture(scope="session", autouse=True)
def earlier_runs_removed(tmp_path_factory):
    """Earlier finished runs' base folders (pytest-of-USER/pytest-N) go before this run writes anything. pytest keeps
    the last three and removes older ones only as a run ends; a failed run keeps all it made (the generated models, the
    joe voice, what its failed tests wrote), so two or three failed runs held hundreds of MB of the space this run needs
    (CI's /tmp had 0.3-1.4 GiB free). A folder with pytest's lock file (a run still going, or one that crashed) is left
    alone, as pytest does; so is a base folder given with --basetemp."""
    current = tmp_path_factory.getbasetemp()
    if not (re.fullmatch(r"pytest-\d+", current.name) and current.parent.name.startswith("pytest-of-")):
        return
    for earlier in current.parent.glob("pytest-*"):
        if (re.fullmatch(r"pytest-\d+", earlier.name) and earlier != current and not earlier.is_symlink()
                and not (earlier / ".lock").exists()):
            shutil.rmtree(earlier, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """No test reads the developer's own config or DEMOD_VOICE_* variables. Each test's config and cache
    folders go when it ends: a test that speaks the joe voice prepares ~150 MB of graphs in its cache, and
    kept to the session's end they came to gigabytes (a CI machine with less free disk failed on them)."""
    home = tmp_path_factory.mktemp("xdg")
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for name in list(os.environ):
        if name.startswith("DEMOD_VOICE_") and name != "DEMOD_VOICE_TEST_CACHE":
            monkeypatch.delenv(name)
    yield home / "demod-voice" / "config.yaml"
    for folder in (home, cache):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def process_state_put_back():
    """What a test that runs the CLI in this process changes process-wide is put back when it ends: the root logger's
    handlers and level (``configure_logging`` points them at the stderr of its time, a capture that pytest closes: the
    next test's log records went to a closed file, '--- Logging error ---' in CI's output) and the SIGINT
    handler (the Ctrl-C test of piped text found an earlier test's in place of Python's own). pytest's own capture
    handlers come and go around each phase and are left to it."""
    from demod_voice.logs import LogFormatter

    root = logging.getLogger()
    level = root.level
    sigint = signal.getsignal(signal.SIGINT)
    yield
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, LogFormatter):
            root.removeHandler(handler)
    root.setLevel(level)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not sigint:
        signal.signal(signal.SIGINT, sigint)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A module-scoped fixture's ``tmp_path_factory.mktemp`` folders go when its module ends (after the fixture's own
    teardown), unless a test failed meanwhile. pytest keeps them to the session's end (``tmp_path_retention_policy``
    covers tests' own ``tmp_path`` only): each module's server left its caches behind (the page's server 129 MB of the
    joe voice's prepared graphs), all still held through the training tests on a CI machine with 0.3-1.4 GiB free.
    Session fixtures' folders (the generated models, the joe voice) are theirs to keep: set up first, not counted."""
    if fixturedef.scope != "module":
        return (yield)
    for name in fixturedef.argnames:  # what it depends on is set up before its own folders are counted
        request.getfixturevalue(name)
    factory, made = request.getfixturevalue("tmp_path_factory"), []
    failed = request.session.testsfailed

    def remove() -> None:
        if request.session.testsfailed == failed:
            for folder in made:
                shutil.rmtree(folder, ignore_errors=True)

    fixturedef.addfinalizer(remove)  # added before the fixture's own teardown, so run after it
    mktemp = factory.mktemp
    factory.mktemp = lambda *args, **kwargs: made.append(mktemp(*args, **kwargs)) or made[-1]
    try:
        return (yield)
    finally:
        del factory.mktemp  # the class's own again


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
    """A tiny Piper voice with three speakers named speaker_0..speaker_2 (and HiFi-GAN's type-1 residual blocks)."""
    return _generated(tmp_path_factory, "tiny-multi.onnx", "make_piper_voice.py", "--size", "tiny", "--speakers", "3", "--resblock", "1")


@pytest.fixture(scope="session")
def vc_model(tmp_path_factory) -> Path:
    """OpenVoice v2's converter at its released size (random weights, ~130 MB), from coqui-tts's own classes."""
    return _generated(tmp_path_factory, "OpenVoiceV2-converter", "make_vc_model.py")


@pytest.fixture(scope="session")
def xtts_model(tmp_path_factory) -> Path:
    """A small XTTS checkpoint folder built from coqui-tts's own classes (random weights)."""
    return _generated(tmp_path_factory, "xtts-tiny", "make_xtts_model.py", "--size", "tiny")


def small_tmpfs(folder: Path, size: str, instead: str = ""):
    """A tmpfs of ``size`` mounted on the new folder ``folder`` (root only), unmounted after; the test is skipped, saying
    why (and ``instead``: what else covers it), where mounting is not allowed. For a fixture to ``yield from``."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'}){instead}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def voiced_signal(seconds: float, rate: int, channels: int = 1, level: float = 0.3):
    """A speech-like test signal: a 120 Hz harmonic source under a 4 Hz syllable envelope."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    source = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    mono = (level * source * envelope / np.abs(source * envelope).max()).astype("float32")
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def video_without_sound(path: Path) -> Path:
    """A short MP4 video with no audio stream (a screen recording exported without its sound)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as box:
        stream = box.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            box.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        box.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> dict[str, Path]:
    """Reference recordings in several formats, rates and channel counts."""
    import soundfile

    folder = tmp_path_factory.mktemp("refs")
    refs = {}
    for name, rate, channels, fmt in [("ref.wav", 22050, 1, "WAV"), ("ref.flac", 44100, 2, "FLAC"), ("ref.ogg", 16000, 1, "OGG")]:
        path = folder / name
        soundfile.write(str(path), voiced_signal(8.0, rate, channels), rate, format=fmt)
        refs[name] = path
    if "MP3" in soundfile.available_formats():
        soundfile.write(str(folder / "ref.mp3"), voiced_signal(8.0, 44100, 2), 44100, format="MP3")
        refs["ref.mp3"] = folder / "ref.mp3"
    return refs


@pytest.fixture(scope="session")
def lj_dataset(tmp_path_factory) -> Path:
    """12 espeak-ng clips (id|text|normalized) in wav/flac/ogg/mp3, plus five faulty entries."""
    return _generated(tmp_path_factory, "dataset-lj", "make_dataset.py", "--clips", "12", "--faults")


@pytest.fixture(scope="session")
def multi_dataset(tmp_path_factory) -> Path:
    """9 espeak-ng clips from three voices (id|speaker|text)."""
    return _generated(tmp_path_factory, "dataset-multi", "make_dataset.py", "--clips", "9", "--speakers", "3")
