"""``health``: what works on this machine, what does not, and how to fix it.

Imports of engines run in child interpreters with a timeout (:func:`probe`), so a
broken install can neither hang nor crash the report. Each check says which backends
need it; a backend is usable when none of its checks failed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

OK, WARN, FAIL = "ok", "warn", "fail"
ALL = ("piper", "xtts", "tinygrad")
PROBE_TIMEOUT = 60.0
MIN_FREE_BYTES = 2 * 1024**3


@dataclass
class Check:
    """One line of the report."""

    name: str
    """What was checked."""
    status: str
    """ok, warn or fail."""
    detail: str
    """Version, device, path: what was found."""
    fix: str = ""
    """For anything not ok: what to do."""
    needed_by: tuple[str, ...] = ALL
    """Backends that cannot work when this check fails."""


@dataclass
class Report:
    """All checks and the verdict."""

    checks: list[Check] = field(default_factory=list)
    """In the order they ran."""
    seconds: float = 0.0
    """How long the checks took."""

    @property
    def usable(self) -> list[str]:
        """Backends with no failed check."""
        return [b for b in ALL if not any(c.status == FAIL and b in c.needed_by for c in self.checks)]

    @property
    def status(self) -> str:
        """fail when no backend is usable; warn when anything is not ok; else ok."""
        if not self.usable:
            return FAIL
        return WARN if any(c.status != OK for c in self.checks) else OK

    def to_json(self) -> str:
        """``{"status", "usable_backends", "seconds", "checks": [{name, status, detail, fix, needed_by}]}``."""
        return json.dumps(
            {"status": self.status, "usable_backends": self.usable, "seconds": round(self.seconds, 3),
             "checks": [asdict(c) for c in self.checks]},
            indent=2,
        )

    def to_text(self) -> str:
        """One line per check, a ``fix:`` line under anything not ok, then the verdict."""
        width = max(len(c.name) for c in self.checks)
        lines = []
        for c in self.checks:
            lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
            if c.fix and c.status != OK:
                lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
        usable = ", ".join(self.usable) or "none"
        lines.append(f"{self.status}: usable backends: {usable} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def dist_version(name: str) -> Optional[str]:
    """Installed version of a distribution, from metadata only (nothing is imported)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --- probes: engine imports in a child interpreter ------------------------------------------

PROBES: dict[str, str] = {
    "piper": """
import json, onnxruntime
out = {"onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
import piper.voice
print(json.dumps(out))
""",
    "tinygrad": """
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
""",
    "xtts": """
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
""",
}

# (package, bad version prefix, package it breaks with, why, fix)
KNOWN_BAD = [
    ("transformers", "5.24", "coqui-tts", "breaks XTTS generation ('NoneType' object has no attribute 'get_seq_length')",
     "pip install transformers==5.23.0"),
]
CUDA_ONLY_MARKERS = ("libnvrtc", "libcudart", "libcuda", "Could not load this library", "_torchaudio")


def probe(name: str, timeout: float = PROBE_TIMEOUT, preamble: str = "") -> tuple[Optional[dict[str, Any]], str]:
    """Run probe ``name`` (after ``preamble``) in a fresh interpreter: (its JSON result, "") or (None, why it failed)."""
    code = preamble + PROBES[name]
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"importing it took longer than {timeout:.0f} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        if done.returncode < 0:
            return None, f"importing it crashed the interpreter (signal {-done.returncode})"
        return None, lines[-1] if lines else f"exit code {done.returncode}"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, "the probe printed no result"


# --- checks ----------------------------------------------------------------------------------


def check_python() -> Check:
    """Which interpreter the backends will run in (the package itself refuses to install below 3.10)."""
    return Check("python", OK, f"{platform.python_version()} at {sys.executable}")


def check_config(explicit: Optional[str]) -> list[Check]:
    """The config file parses and validates; the cache folder is writable with room to spare."""
    from demod_voice.config import cache_root, load_config
    from demod_voice.errors import ConfigError

    try:
        config, used = load_config(explicit)
    except ConfigError as err:
        return [Check("config", FAIL, str(err), "correct the file, or write a fresh one with 'demod-voice config init --force'")]
    checks = [Check("config", OK, str(used) if used else "no file; using defaults")]
    checks.append(check_cache(cache_root(config)))
    return checks


def check_cache(folder: Path) -> Check:
    from demod_voice.paths import can_create_in

    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not can_create_in(probe_dir) or (folder.exists() and not folder.is_dir()):
        return Check("cache", WARN, f"{folder} is not writable: optimised graphs are rebuilt on every run",
                     "set cache_dir in the config (or DEMOD_VOICE_CACHE_DIR) to a writable folder", ())
    free = shutil.disk_usage(probe_dir).free
    detail = f"{folder} ({free / 1024**3:.1f} GB free)"
    if free < MIN_FREE_BYTES:
        return Check("cache", WARN, detail, "free some disk space: models and caches need a few GB", ())
    return Check("cache", OK, detail, needed_by=())


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
    result, error = probe("piper")
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


def check_tinygrad(device: str) -> list[Check]:
    """The experimental backend: tinygrad, onnx and piper import, and the CPU device really compiles a kernel."""
    from demod_voice.devices import TINYGRAD_GPU_DEVICES

    needs = ("tinygrad",)
    result, error = probe("tinygrad", preamble=f"GPU_DEVICES = {TINYGRAD_GPU_DEVICES!r}\n")
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


def check_known_bad() -> list[Check]:
    checks = []
    for package, bad, partner, why, fix in KNOWN_BAD:
        version, other = dist_version(package), dist_version(partner)
        if version and other and version.startswith(bad):
            checks.append(Check(f"{package} version", FAIL, f"{package} {version} with {partner} {other} {why}", fix, ("xtts",)))
        elif version:
            checks.append(Check(f"{package} version", OK, f"{package} {version}", needed_by=("xtts",)))
    return checks


def check_xtts(device: str, model_dir: Optional[str], cache: Path, accepted: bool) -> list[Check]:
    result, error = probe("xtts")
    if result is None:
        fix = "pip install -c constraints.txt 'demod-voice[xtts]'"
        if any(marker in error for marker in CUDA_ONLY_MARKERS):
            error = f"a CUDA-only build next to CPU torch: {error}"
            fix = "python -m demod_voice.fixups torchaudio-cpu (torchaudio), or pip install torchcodec==0.13.0 (torchcodec)"
        return [Check("xtts", FAIL, f"cannot import coqui-tts/torch/torchaudio/torchcodec: {error}", fix, ("xtts",))]
    build = f"CUDA {result['cuda_build']}" if result["cuda_build"] else "CPU-only"
    checks = [Check("xtts", OK, f"coqui-tts {result['coqui']}, torch {result['torch']} ({build})", needed_by=("xtts",))]
    devices = ", ".join(result["devices"]) or "none"
    status = WARN if device == "gpu" and not result["cuda"] else OK
    checks.append(Check("xtts --gpu", status, f"CUDA devices: {devices}; --gpu would run on {'CUDA' if result['cuda'] else 'CPU'}",
                        "" if result["cuda"] else "for GPU XTTS, install a CUDA build of torch 2.13.0", ()))
    checks.append(check_xtts_model(model_dir, cache, accepted))
    return checks


def check_xtts_model(model_dir: Optional[str], cache: Path, accepted: bool) -> Check:
    from demod_voice.models.registry import LICENSE_HELP, missing_xtts_files, released_xtts_dir

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


def check_ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if not path:
        fix = "install ffmpeg (e.g. apt-get install ffmpeg): torchcodec, which XTTS uses to read audio, needs its libraries"
        return Check("ffmpeg", WARN, "not found", fix, ())
    try:
        first = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        first = "found, but 'ffmpeg -version' failed"
    return Check("ffmpeg", OK, f"{first} ({path})", needed_by=())


def check_serve() -> Check:
    """The ``serve`` extra (optional: its absence only warns)."""
    from demod_voice.serve.server import serve_status

    usable, detail, fix = serve_status()
    return Check("serve", OK if usable else WARN, detail, fix, needed_by=())


def check_wyoming() -> Check:
    """The ``wyoming`` extra for ``serve --wyoming`` (optional: its absence only warns)."""
    from demod_voice.serve.wyoming.server import wyoming_status

    usable, detail, fix = wyoming_status()
    return Check("wyoming", OK if usable else WARN, detail, fix, needed_by=())


def run_checks(explicit_config: Optional[str], config: Any, deep: Optional[Callable[[], list[Check]]] = None) -> Report:
    """Every check, in report order; ``deep`` adds model load-and-speak checks. Probes run in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from demod_voice.config import cache_root

    started = time.perf_counter()
    report = Report()
    with ThreadPoolExecutor(max_workers=3) as pool:
        piper = pool.submit(check_piper, config.device)
        tiny = pool.submit(check_tinygrad, config.device)
        xtts = pool.submit(check_xtts, config.device, config.xtts.model_dir, cache_root(config), config.xtts.accept_license)
        report.checks.append(check_python())
        report.checks.extend(check_config(explicit_config))
        report.checks.append(check_onnxruntime_mix())
        report.checks.extend(piper.result())
        report.checks.extend(check_known_bad())
        report.checks.extend(xtts.result())
        report.checks.extend(tiny.result())
    report.checks.append(check_ffmpeg())
    report.checks.append(check_serve())
    report.checks.append(check_wyoming())
    if deep is not None:
        report.checks.extend(deep())
    report.seconds = time.perf_counter() - started
    return report


def deep_checks(voices: list[str], engine_settings: Any, cache_dir: Optional[str], device: str) -> list[Check]:
    """Load each voice in a worker and speak a short phrase; report timings."""
    import tempfile

    from demod_voice.backends.piper.request import PiperRequest, make_job
    from demod_voice.config import PiperSettings
    from demod_voice.engine.service import Engine
    from demod_voice.errors import DemodVoiceError

    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, voice in enumerate(voices):
            name = f"voice {Path(voice).name}"
            try:
                job = make_job(PiperRequest(voice, "Health check.", os.path.join(tmp, f"{i}.wav"), PiperSettings(),
                                            device=device, cache_dir=cache_dir))
            except DemodVoiceError as err:
                checks.append(Check(name, FAIL, str(err), "fix or remove this voice", ()))
                continue
            started = time.perf_counter()
            result = Engine(engine_settings).run([job])[0]
            took = time.perf_counter() - started
            if result.ok:
                detail = f"loaded and spoke {result.audio_seconds:.2f} s of audio in {took:.2f} s (worker start, load, synthesis)"
                checks.append(Check(name, OK, detail, needed_by=()))
            else:
                checks.append(Check(name, FAIL, str(result.error), "re-download the voice, or run piper-infer -vv on it", ()))
    return checks


def installed_voices(cache: Path) -> list[str]:
    """Piper voices installed by name (``models download``)."""
    from demod_voice.models.registry import installed_piper_voices

    return [str(p) for p in installed_piper_voices(cache)]
