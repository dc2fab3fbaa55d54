"""What ``health`` checks for XTTS-v2: known-bad package versions, coqui-tts/torch/torchaudio/torchcodec
import (in a child interpreter), CUDA, and the model folder with its licence state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from demod_voice.checks import FAIL, OK, WARN, Check, dist_version, probe
from demod_voice.models.registry import LICENSE_HELP, missing_xtts_files, released_xtts_dir

PROBE = """
import json, torch
out = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda": torch.cuda.is_available(), "devices": []}
for i in range(torch.cuda.device_count() if out["cuda"] else 0):
    props = torch.cuda.get_device_properties(i)
    out["devices"].append(f"{props.name} ({props.total_memory / 1024**3:.0f} GiB)")
import torchaudio, torchcodec
import TTS
from TTS.tts.models.xtts import Xtts
out["coqui"] = TTS.__version__
print(json.dumps(out))
"""

# (package, bad version prefix, package it breaks with, why, fix)
KNOWN_BAD = [
    ("transformers", "5.24", "coqui-tts", "breaks XTTS generation ('NoneType' object has no attribute 'get_seq_length')",
     "pip install transformers==5.23.0"),
]
# Backends that run on coqui-tts and torch: XTTS, and the OpenVoice converter built from coqui's classes.
COQUI_USERS = ("xtts", "openvoice")
CUDA_ONLY_MARKERS = ("libnvrtc", "libcudart", "libcuda", "Could not load this library", "_torchaudio")



def xtts_checks(device: str, model_dir: Optional[str], cache: Path, accepted: bool) -> list[Check]:
    """Every check of the XTTS backend, in report order."""
    checks = [*check_known_bad(), *check_xtts(device, model_dir, cache, accepted)]
    if any(c.name == "xtts" and c.status == OK for c in checks):  # coqui-tts imports: which languages it can speak
        checks.append(check_languages())
    return checks


def check_languages() -> Check:
    """The languages XTTS cannot speak here for want of a package (Japanese, Chinese: coqui-tts's extras)."""
    from demod_voice.backends.xtts.request import LANGUAGE_PACKAGES, language_install, language_missing

    lacking = [code for code in LANGUAGE_PACKAGES if language_missing(code)]
    missing = [f"{LANGUAGE_PACKAGES[code][0]} ({code})" for code in lacking]
    fixes = [language_install(code) for code in lacking]
    if not missing:
        return Check("xtts languages", OK, "all 17", needed_by=COQUI_USERS)
    return Check("xtts languages", WARN, f"15 of 17: {', '.join(missing)} need packages not installed here", "; ".join(fixes),
                 COQUI_USERS)


def check_known_bad() -> list[Check]:
    checks = []
    for package, bad, partner, why, fix in KNOWN_BAD:
        version, other = dist_version(package), dist_version(partner)
        if version and other and version.startswith(bad):
            checks.append(Check(f"{package} version", FAIL, f"{package} {version} with {partner} {other} {why}", fix, COQUI_USERS))
        elif version:
            checks.append(Check(f"{package} version", OK, f"{package} {version}", needed_by=COQUI_USERS))
    return checks


def check_xtts(device: str, model_dir: Optional[str], cache: Path, accepted: bool) -> list[Check]:
    result, error = probe(PROBE)
    if result is None:
        fix = "pip install -c constraints.txt 'demod-voice[xtts]'"
        if any(marker in error for marker in CUDA_ONLY_MARKERS):
            error = f"a CUDA-only build next to CPU torch: {error}"
            fix = "python -m demod_voice.fixups torchaudio-cpu (torchaudio), or pip install torchcodec==0.13.0 (torchcodec)"
        return [Check("xtts", FAIL, f"cannot import coqui-tts/torch/torchaudio/torchcodec: {error}", fix, COQUI_USERS)]
    build = f"CUDA {result['cuda_build']}" if result["cuda_build"] else "CPU-only"
    checks = [Check("xtts", OK, f"coqui-tts {result['coqui']}, torch {result['torch']} ({build})", needed_by=COQUI_USERS)]
    devices = ", ".join(result["devices"]) or "none"
    status = WARN if device == "gpu" and not result["cuda"] else OK
    checks.append(Check("xtts --gpu", status, f"CUDA devices: {devices}; --gpu would run on {'CUDA' if result['cuda'] else 'CPU'}",
                        "" if result["cuda"] else "for GPU XTTS, install a CUDA build of torch 2.13.0", ()))
    checks.append(check_xtts_model(model_dir, cache, accepted))
    return checks


def check_xtts_model(model_dir: Optional[str], cache: Path, accepted: bool) -> Check:

    folder = Path(model_dir).expanduser() if model_dir else released_xtts_dir(cache)
    missing = missing_xtts_files(folder)
    if not missing:
        return Check("xtts model", OK, str(folder), needed_by=())
    if model_dir:
        return Check("xtts model", FAIL, f"{folder} lacks {', '.join(missing)}", "fix xtts.model_dir in the config", ("xtts",))
    accepted = accepted or os.environ.get("COQUI_TOS_AGREED") == "1"
    if accepted:
        return Check("xtts model", WARN, "XTTS-v2 not downloaded yet; licence accepted, so the first use downloads it (~1.9 GB)",
                     "run any xtts-zero-shot command once with network access", ())
    return Check("xtts model", WARN, "XTTS-v2 not downloaded, and its licence is not accepted", LICENSE_HELP, ())
