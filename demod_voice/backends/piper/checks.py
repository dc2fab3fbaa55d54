"""What ``health`` checks for Piper: onnxruntime installed once (CPU or GPU build), piper-tts and
onnxruntime import (in a child interpreter), and which device ``--gpu`` would get."""

from __future__ import annotations

from demod_voice.checks import FAIL, OK, WARN, Check, dist_version, probe

PROBE = """
import json, onnxruntime
out = {"onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
import piper.voice
print(json.dumps(out))
"""


def piper_checks(device: str) -> list[Check]:
    """Every check of the Piper backend, in report order."""
    return [check_onnxruntime_mix(), *check_piper(device)]


def check_onnxruntime_mix() -> Check:
    cpu, gpu = dist_version("onnxruntime"), dist_version("onnxruntime-gpu")
    if cpu and gpu:
        return Check(
            "onnxruntime build", FAIL, f"both onnxruntime {cpu} and onnxruntime-gpu {gpu} are installed (they overwrite each other)",
            "pip uninstall -y onnxruntime onnxruntime-gpu, then install one: onnxruntime (CPU) or onnxruntime-gpu (CUDA)",
            ("piper",),
        )
    if not (cpu or gpu):
        return Check("onnxruntime build", FAIL, "onnxruntime is not installed", "pip install 'demod-voice[piper]'", ("piper",))
    return Check("onnxruntime build", OK, f"onnxruntime-gpu {gpu}" if gpu else f"onnxruntime {cpu}", needed_by=("piper",))


def check_piper(device: str) -> list[Check]:
    result, error = probe(PROBE)
    if result is None:
        return [Check("piper", FAIL, f"cannot import piper-tts/onnxruntime: {error}",
                      "pip install -c constraints.txt 'demod-voice[piper]'", ("piper",))]
    providers = result["providers"]
    checks = [Check("piper", OK, f"piper-tts {dist_version('piper-tts')}, onnxruntime {result['onnxruntime']}", needed_by=("piper",))]
    has_cuda = "CUDAExecutionProvider" in providers
    gets = "CUDA" if has_cuda else "CPU"
    status = WARN if device == "gpu" and not has_cuda else OK
    checks.append(Check(
        "piper --gpu", status, f"onnxruntime providers: {', '.join(providers)}; --gpu would run on {gets}",
        "" if has_cuda else "for GPU Piper, replace onnxruntime with onnxruntime-gpu (with CUDA 12 libraries)", (),
    ))
    return checks


