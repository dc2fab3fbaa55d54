from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import BIN, run_cli

from demod_voice import __version__
from demod_voice.cli.main import main

HEAVY = ("torch", "onnxruntime", "TTS", "piper", "tinygrad", "transformers", "numpy")


def test_help_imports_no_engine():
    code = (
        "import runpy, sys, io, contextlib\n"
        f"sys.argv = ['demod-voice', '--help']\n"
        "out = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(out):\n"
        f"        runpy.run_path({str(BIN)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "assert 'piper-infer' in out.getvalue()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_missing_subcommand_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_unknown_flag_is_usage_error_not_text(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["piper-infer", "voice.onnx", "hello", "--lenght-scale", "2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_global_flags_before_and_after_subcommand(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("device: gpu\n")
    assert main(["--config", str(config), "config", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "gpu"
    assert main(["config", "show", "--json", "--config", str(config), "--cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
    assert main(["--cpu", "config", "show", "--json", "--gpu"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "gpu"


def test_config_show_never_prints_a_key(capsys, tmp_path):
    """``config show`` printed serve.keys in clear: what an administrator pastes into a bug report."""
    config = tmp_path / "c.yaml"
    config.write_text("serve:\n  keys:\n    supersecretkey123: [speak]\n    anothersecret456: admin\n")
    for extra in ([], ["--json"]):
        assert main(["--config", str(config), "config", "show", *extra]) == 0
        out = capsys.readouterr().out
        assert "supersecretkey123" not in out and "anothersecret456" not in out, out
        shown = (json.loads(out) if extra else yaml.safe_load(out))["serve"]["keys"]
        assert shown == "2 keys (not shown)", shown


def test_config_init_then_show(isolated_config, capsys):
    assert main(["config", "init"]) == 0
    assert isolated_config.is_file()
    assert main(["config", "init"]) == 3
    assert "--force" in capsys.readouterr().err
    assert main(["config", "show"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["engine"]["retries"] == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("piper: [unclosed\n", "malformed YAML"),
        ("piper:\n  speed: 2\n", "unknown key 'piper.speed'"),
        ("piper:\n  volume: loud\n", "'piper.volume' must be a number"),
    ],
)
def test_bad_config_is_one_line_exit_3(isolated_config, text, expected, tmp_path):
    isolated_config.parent.mkdir(parents=True, exist_ok=True)
    isolated_config.write_text(text)
    done = run_cli("piper-infer", str(tmp_path / "v.onnx"), "hello", "-o", str(tmp_path / "out.wav"))
    assert done.returncode == 3
    err = done.stderr.decode()
    assert expected in err and str(isolated_config) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_verbose_error_shows_traceback(tmp_path):
    done = run_cli("-vv", "piper-infer", str(tmp_path / "missing.onnx"), "hello", "-o", str(tmp_path / "o.wav"))
    assert done.returncode == 3
    assert "Traceback" in done.stderr.decode()


@pytest.mark.parametrize("command", [("xtts-zero-shot",), ("voices", "add"), ("convert",)])
def test_help_names_the_phone_formats_that_are_read(command, capsys):
    """The help of the commands that take recordings said (wav, flac, ogg, mp3) or nothing; a phone's m4a is read too."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "m4a/aac" in " ".join(capsys.readouterr().out.split())


def test_adding_a_recording_to_a_saved_voice_says_how_to_keep_the_first_ones(capsys, tmp_path, monkeypatch):
    """A second memo of the same person given to 'voices add ann' was told "pass --force to replace it": done, the voice
    was learnt from the second memo alone and the first one's part in it was lost. The refusal says how to have both."""
    monkeypatch.setenv("DEMOD_VOICE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "profiles").mkdir(parents=True)
    (tmp_path / "cache" / "profiles" / "ann.npz").write_bytes(b"a profile")
    second = str(tmp_path / "second memo.m4a")
    assert main(["voices", "add", "ann", second]) == 3
    err = capsys.readouterr().err
    assert err.strip().endswith("a voice profile 'ann' exists already: --force replaces it with these recordings alone; "
                                "to learn it from more recordings, give them all at once "
                                f"(demod-voice voices add ann --force FIRST.wav {shlex.quote(second)})"), err
    assert len(err.strip().splitlines()) == 1


def test_importing_another_models_voice_over_a_saved_one_names_no_passing_copy(capsys, tmp_path, monkeypatch, xtts_model):
    """A voice exported from a machine with another XTTS model is made again here from the recordings it holds, copied to
    a temporary folder: imported over a saved voice of its name, the refusal is the import's (--name NEW or --force),
    not the one 'voices add' gives, which would name those copies, gone once it is read."""
    import numpy as np

    from demod_voice.voices.profiles import write_profile

    monkeypatch.setenv("DEMOD_VOICE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEMOD_VOICE_XTTS_MODEL_DIR", str(xtts_model))
    (tmp_path / "cache" / "profiles").mkdir(parents=True)
    (tmp_path / "cache" / "profiles" / "ann.npz").write_bytes(b"a profile")
    write_profile(tmp_path / "ann.voice.npz", "ann", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"),
                  np.zeros((1, 8, 1), "float32"), np.zeros(24000, "int16"), np.array([24000]), 24000)
    assert main(["voices", "import", str(tmp_path / "ann.voice.npz")]) == 3
    err = capsys.readouterr().err
    assert "a voice profile 'ann' exists already; import this one under another name (--name NEW), or replace it (--force)" in err
    assert "demod-voice-again-" not in err, err
