"""``health`` against the real environment and against environments broken on purpose."""

from __future__ import annotations

import json
import os

from conftest import run_cli


def health(*args, env=None):
    done = run_cli("health", "--json", *args, env=env)
    report = json.loads(done.stdout)  # JSON always parses, whatever the verdict
    return done.returncode, report, {c["name"]: c for c in report["checks"]}


def shim(tmp_path, files: dict[str, str]) -> dict[str, str]:
    """A folder put first on PYTHONPATH of the health process (and so of its probes)."""
    folder = tmp_path / "shim"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)}


def test_real_environment_is_usable():
    code, report, checks = health()
    assert code == 0
    assert report["status"] in ("ok", "warn") and "piper" in report["usable_backends"]
    assert checks["piper"]["status"] == "ok" and "piper-tts 1.8.0" in checks["piper"]["detail"]
    assert "--gpu would run on" in checks["piper --gpu"]["detail"]
    assert all(set(c) == {"name", "status", "detail", "fix", "needed_by"} for c in report["checks"])
    assert all(c["fix"] for c in report["checks"] if c["status"] != "ok")


def test_text_report_has_a_line_per_check_and_a_verdict():
    done = run_cli("health")
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0
    assert any(line.startswith("ok    piper ") for line in lines)
    assert lines[-1].startswith(("ok: usable backends: piper", "warn: usable backends: piper"))


def test_hidden_package_fails_its_backend_with_a_fix(tmp_path):
    env = shim(tmp_path, {"onnxruntime/__init__.py": "raise ImportError('onnxruntime hidden by the test')\n"})
    code, report, checks = health(env=env)
    assert code == 1 and report["status"] == "fail" and report["usable_backends"] == []
    assert checks["piper"]["status"] == "fail"
    assert "onnxruntime hidden by the test" in checks["piper"]["detail"]
    assert "pip install" in checks["piper"]["fix"]


def test_onnxruntime_and_onnxruntime_gpu_together_are_flagged(tmp_path):
    env = shim(tmp_path, {"onnxruntime_gpu-1.23.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.23.0\n"})
    code, _, checks = health(env=env)
    assert code == 1
    assert checks["onnxruntime build"]["status"] == "fail"
    assert "onnxruntime-gpu 1.23.0" in checks["onnxruntime build"]["detail"]
    assert "uninstall" in checks["onnxruntime build"]["fix"]


def test_bad_config_file_fails_with_fix(isolated_config):
    isolated_config.parent.mkdir(parents=True, exist_ok=True)
    isolated_config.write_text("engine:\n  retries: lots\n")
    code, report, checks = health()
    assert code == 1 and report["usable_backends"] == []
    assert checks["config"]["status"] == "fail" and "'engine.retries'" in checks["config"]["detail"]
    assert "config init" in checks["config"]["fix"]


def test_unwritable_cache_is_a_warning_not_a_failure():
    code, _, checks = health(env={"DEMOD_VOICE_CACHE_DIR": "/proc/demod-voice-cache"})
    assert code == 0
    assert checks["cache"]["status"] == "warn" and "not writable" in checks["cache"]["detail"]
    assert "cache_dir" in checks["cache"]["fix"]


def test_deep_loads_and_speaks_each_voice(piper_voice, tmp_path):
    code, _, checks = health("--deep", "--model", str(piper_voice), "--model", str(tmp_path / "gone.onnx"))
    assert code == 0
    assert checks[f"voice {piper_voice.name}"]["status"] == "ok"
    assert "loaded and spoke" in checks[f"voice {piper_voice.name}"]["detail"]
    assert checks["voice gone.onnx"]["status"] == "fail"
