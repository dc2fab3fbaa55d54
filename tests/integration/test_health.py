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
    assert lines[-1].startswith(("ok: usable backends: piper, xtts", "warn: usable backends: piper, xtts"))


def test_hidden_package_fails_its_backend_with_a_fix(tmp_path):
    env = shim(tmp_path, {"onnxruntime/__init__.py": "raise ImportError('onnxruntime hidden by the test')\n"})
    code, report, checks = health(env=env)
    assert code == 0 and report["usable_backends"] == ["xtts", "openvoice"]
    assert checks["piper"]["status"] == "fail"
    assert "onnxruntime hidden by the test" in checks["piper"]["detail"]
    assert "pip install" in checks["piper"]["fix"]


def test_no_usable_backend_exits_1(tmp_path):
    env = shim(tmp_path, {"onnxruntime/__init__.py": "raise ImportError('hidden')\n",
                          "torchaudio/__init__.py": "raise ImportError('hidden')\n"})
    code, report, _ = health(env=env)
    assert code == 1 and report["status"] == "fail" and report["usable_backends"] == []


def test_cuda_only_torchaudio_points_to_the_fixup(tmp_path):
    message = "OSError: Could not load this library: torchaudio/lib/_torchaudio.abi3.so (libnvrtc.so.13: cannot open)"
    env = shim(tmp_path, {"torchaudio/__init__.py": f"raise OSError({message!r})\n"})
    code, report, checks = health(env=env)
    assert code == 0 and report["usable_backends"] == ["piper", "tinygrad"]
    assert checks["xtts"]["status"] == "fail" and "CUDA-only build" in checks["xtts"]["detail"]
    assert "python -m demod_voice.fixups torchaudio-cpu" in checks["xtts"]["fix"]


def test_tinygrad_is_reported_with_its_compiler():
    _, report, checks = health()
    assert "tinygrad" in report["usable_backends"]
    assert checks["tinygrad"]["status"] == "ok" and "tinygrad 0.14.0" in checks["tinygrad"]["detail"]
    assert "clang" in checks["tinygrad"]["detail"]
    assert "--gpu would run on" in checks["tinygrad --gpu"]["detail"]


def test_missing_clang_fails_only_the_tinygrad_backend():
    # tinygrad compiles with $CC (default clang); CACHELEVEL=0 keeps its kernel cache from hiding the compiler.
    code, report, checks = health(env={"CC": "/nonexistent/clang", "CACHELEVEL": "0"})
    assert code == 0 and "tinygrad" not in report["usable_backends"] and "piper" in report["usable_backends"]
    assert checks["tinygrad"]["status"] == "fail" and "CPU device does not work" in checks["tinygrad"]["detail"]
    assert "apt-get install clang" in checks["tinygrad"]["fix"]


def test_transformers_5_24_with_coqui_is_flagged(tmp_path):
    env = shim(tmp_path, {"transformers-5.24.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: transformers\nVersion: 5.24.0\n"})
    code, report, checks = health(env=env)
    assert code == 0 and "xtts" not in report["usable_backends"]
    assert checks["transformers version"]["status"] == "fail"
    assert "get_seq_length" in checks["transformers version"]["detail"]
    assert checks["transformers version"]["fix"] == "pip install transformers==5.23.0"


def test_xtts_licence_state_is_reported(xtts_model):
    _, _, checks = health()
    assert checks["xtts model"]["status"] == "warn" and "licence is not accepted" in checks["xtts model"]["detail"]
    assert "--accept-license" in checks["xtts model"]["fix"]
    _, _, checks = health(env={"DEMOD_VOICE_XTTS_MODEL_DIR": str(xtts_model)})
    assert checks["xtts model"]["status"] == "ok"


def test_onnxruntime_and_onnxruntime_gpu_together_are_flagged(tmp_path):
    env = shim(tmp_path, {"onnxruntime_gpu-1.23.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.23.0\n"})
    code, report, checks = health(env=env)
    assert code == 0 and report["usable_backends"] == ["xtts", "tinygrad", "openvoice"]
    assert checks["onnxruntime build"]["status"] == "fail"
    assert "onnxruntime-gpu 1.23.0" in checks["onnxruntime build"]["detail"]
    assert "uninstall" in checks["onnxruntime build"]["fix"]


def test_bad_config_file_fails_with_fix(isolated_config):
    isolated_config.parent.mkdir(parents=True, exist_ok=True)
    isolated_config.write_text("engine:\n  retries: lots\n")
    code, report, checks = health()
    assert code == 1 and report["usable_backends"] == []  # a broken config breaks every command
    assert checks["config"]["status"] == "fail" and "'engine.retries'" in checks["config"]["detail"]
    assert "config init" in checks["config"]["fix"] and "--force" not in checks["config"]["fix"]  # it would replace the keys too


def test_with_a_bad_config_file_the_rest_is_checked_with_the_environments_settings(isolated_config, tmp_path):
    """The other checks ran on the defaults alone: ``DEMOD_VOICE_CACHE_DIR`` was dropped, so the converter was looked
    for in ~/.cache."""
    isolated_config.parent.mkdir(parents=True, exist_ok=True)
    isolated_config.write_text("piper: [unclosed\n")
    _, _, checks = health(env={"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "mine")})
    assert checks["config"]["status"] == "fail"
    assert str(tmp_path / "mine" / "convert") in checks["voice conversion"]["detail"], checks["voice conversion"]


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


def test_ray_is_reported_and_fails_every_backend_when_the_executor_needs_it(tmp_path):
    _, _, checks = health()
    assert checks["ray"]["status"] == "ok" and checks["ray"]["detail"].startswith("Ray 2.")
    env = {**shim(tmp_path, {"ray/__init__.py": "raise ModuleNotFoundError('No module named ray')\n"}),
           "DEMOD_VOICE_ENGINE_EXECUTOR": "ray"}
    code, report, checks = health(env=env)
    assert code == 1 and report["usable_backends"] == []
    assert checks["ray"]["status"] == "fail" and "engine.executor is ray" in checks["ray"]["detail"]
    assert "pip install 'demod-voice[ray]'" in checks["ray"]["fix"]
