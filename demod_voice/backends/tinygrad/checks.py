"""What ``health`` checks for the tinygrad backend: tinygrad, onnx and piper-tts import (in a child
interpreter), the CPU device really compiles a kernel (it needs clang), and which GPU devices it sees."""

from __future__ import annotations

from demod_voice.checks import FAIL, OK, WARN, Check, probe
from demod_voice.devices import TINYGRAD_GPU_DEVICES

PROBE = """
import json, os, shutil
from importlib import metadata
out = {"clang": shutil.which(os.environ.get("CC", "clang")), "version": metadata.version("tinygrad"), "gpus": []}
import onnx, piper.voice
from tinygrad import Device, Tensor
try:
    out["cpu"], out["cpu_error"] = (Tensor([1.0, 2.0], device="CPU") + 1).tolist() == [2.0, 3.0], ""
except Exception as err:
    out["cpu"], out["cpu_error"] = False, (f"{type(err).__name__}: {err}".splitlines() or [""])[0]
for name in GPU_DEVICES:
    try:
        Device[name]
        out["gpus"].append(name)
    except Exception:
        pass
print(json.dumps(out))
"""


def check_tinygrad(device: str) -> list[Check]:
    """The experimental backend: tinygrad, onnx and piper import, and the CPU device really compiles a kernel."""
    needs = ("tinygrad",)
    result, error = probe(f"GPU_DEVICES = {TINYGRAD_GPU_DEVICES!r}\n" + PROBE)
    if result is None:
        return [Check("tinygrad", FAIL, f"cannot import tinygrad/onnx/piper-tts: {error}",
                      "pip install -c constraints.txt 'demod-voice[tinygrad]'", needs)]
    gpus = result["gpus"]
    if not result["cpu"]:
        fix = "install clang (apt-get install clang): tinygrad's CPU device compiles every kernel with it"
        if result["clang"]:
            fix = "run 'python -c \"from tinygrad import Tensor; print(Tensor([1]).tolist())\"' with DEBUG=2 to see why"
        return [Check("tinygrad", FAIL, f"tinygrad {result['version']}: the CPU device does not work ({result['cpu_error']})", fix, needs)]
    checks = [Check("tinygrad", OK, f"tinygrad {result['version']}, CPU kernels compiled with {result['clang'] or 'clang'}", needed_by=needs)]
    status = WARN if device == "gpu" and not gpus else OK
    checks.append(Check("tinygrad --gpu", status, f"GPU devices: {', '.join(gpus) or 'none'}; --gpu would run on {gpus[0] if gpus else 'CPU'}",
                        "" if gpus else "tinygrad needs a CUDA, AMD, Metal or OpenCL runtime for --gpu", ()))
    return checks


