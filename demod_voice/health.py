"""``health``: what works on this machine, what does not, and how to fix it.

Imports of engines run in child interpreters with a timeout (:func:`probe`), so a
broken install can neither hang nor crash the report. Each check says which backends
need it; a backend is usable when none of its checks failed.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput
from demod_voice.backends.whisper.checks import check_recogniser
from demod_voice.checks import EVERY, FAIL, OK, WARN, Check, dist_version
from demod_voice.config import cache_root, load_config
from demod_voice.engine.executors.ray_cluster import check_ray
from demod_voice.engine.service import EngineRun
from demod_voice.errors import ConfigError, DemodVoiceError
from demod_voice.models.registry import installed_piper_voices
from demod_voice.paths import can_create_in

__all__ = ["FAIL", "OK", "WARN", "Check", "Report", "dist_version", "run_checks"]

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 2 * 1024**3


@dataclass
class Report:
    """All checks and the verdict."""

    checks: list[Check] = field(default_factory=list)
    """In the order they ran."""
    seconds: float = 0.0
    """How long the checks took."""

    backends: list[str] = field(default_factory=registry.names)
    """Every backend the report is about: the registered ones, and plugins that failed to load."""

    @property
    def usable(self) -> list[str]:
        """Backends with no failed check."""
        return [b for b in self.backends if not any(c.status == FAIL and (b in c.needed_by or c.needed_by == EVERY) for c in self.checks)]

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
             "checks": [{**asdict(c), "needed_by": list(self.backends if c.needed_by == EVERY else c.needed_by)} for c in self.checks]},
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


# --- checks ----------------------------------------------------------------------------------


def check_python() -> Check:
    """Which interpreter the backends will run in (the package itself refuses to install below 3.10)."""
    return Check("python", OK, f"{platform.python_version()} at {sys.executable}")


def check_config(explicit: Optional[str]) -> list[Check]:
    """The config file parses and validates; the cache folder is writable with room to spare."""
    try:
        config, used = load_config(explicit)
    except ConfigError as err:
        # not 'config init --force' first: it would replace the administrator's file, keys and all, for a typo
        return [Check("config", FAIL, f"{err}; every command stops on it",
                      "correct the file (or move it aside, then 'demod-voice config init' writes a fresh one)")]
    checks = [Check("config", OK, str(used) if used else "no file; using defaults")]
    checks.append(check_cache(cache_root(config)))
    return checks


def check_cache(folder: Path) -> Check:
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


def check_plugins() -> list[Check]:
    """Backends declared (entry point ``demod_voice.backends``) that could not be loaded: each fails only itself. One
    refused because its name was taken fails no backend: the one registered under that name works on."""
    registered = set(registry.names())
    return [Check(f"backend {failed.name}", FAIL, f"from {failed.source}: {failed.error}", _plugin_fix(failed, registered),
                  () if failed.name in registered else (failed.name,))
            for failed in registry.failures()]


def _side_checks(side: Any, future: Any) -> list[Check]:
    """A backend's own checks; a ``checks()`` that raises fails that backend only (a plugin's bug must not stop ``health``,
    the command that tells what is wrong with it)."""
    try:
        return list(future.result())
    except Exception as err:  # noqa: BLE001 - reported as the backend's failed check
        log.debug("the %s backend's checks() failed", side.name, exc_info=err)
        return [Check(f"backend {side.name}", FAIL, f"its checks() failed: {type(err).__name__}: {err}",
                      f"fix or remove the package that provides the {side.name} backend (-vv: the traceback)", (side.name,))]


def _plugin_fix(failed: registry.PluginFailure, registered: set[str]) -> str:
    if failed.name in registered:
        return (f"give it a name of its own, in its entry point and its RequestSide's 'name' ({failed.target}), "
                f"or remove the package that declares it")
    return f"reinstall or remove the package that declares it ({failed.target})"


def run_checks(explicit_config: Optional[str], config: Any, deep: Optional[Callable[[], list[Check]]] = None,
               extras: Sequence[Callable[[], Check]] = ()) -> Report:
    """Every check, in report order: the interpreter and config, then each backend's own checks (its request
    side's :meth:`~demod_voice.backends.plugin.RequestSide.checks`, run in parallel), plugins that failed to load,
    ffmpeg, ``extras`` (the front doors': serve, Wyoming), and ``deep`` (model load-and-speak checks)."""
    started = time.perf_counter()
    sides = registry.request_sides()
    report = Report(backends=list(dict.fromkeys([side.name for side in sides] + [failed.name for failed in registry.failures()])))
    with ThreadPoolExecutor(max_workers=max(1, len(sides))) as pool:
        running = [pool.submit(side.checks, config) for side in sides]
        report.checks.append(check_python())
        report.checks.extend(check_config(explicit_config))
        for side, future in zip(sides, running, strict=True):
            report.checks.extend(_side_checks(side, future))
    report.checks.extend(check_plugins())
    report.checks.append(check_ffmpeg())
    report.checks.append(check_recogniser())
    report.checks.append(check_ray(config.engine.executor, config.engine.ray_address))
    report.checks.extend(extra() for extra in extras)
    if deep is not None:
        report.checks.extend(deep())
    report.seconds = time.perf_counter() - started
    return report


def deep_checks(voices: list[str], config: Any) -> list[Check]:
    """Load each Piper voice (on ``piper.backend``) in a worker and speak a short phrase; report timings."""
    side = registry.request_side(config.piper.backend)
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, voice in enumerate(voices):
            name = f"voice {Path(voice).name}"
            request = RowInput({"model": voice}, "Health check.", Path(tmp) / f"{i}.wav", Path.cwd(), config, cache_root(config),
                               progress=False)
            try:
                job = side.row_job(request)
            except DemodVoiceError as err:
                checks.append(Check(name, FAIL, str(err), "fix or remove this voice", ()))
                continue
            started = time.perf_counter()
            result = EngineRun(config.engine).run([job])[0]
            took = time.perf_counter() - started
            if result.ok:
                detail = f"loaded and spoke {result.audio_seconds:.2f} s of audio in {took:.2f} s (worker start, load, synthesis)"
                checks.append(Check(name, OK, detail, needed_by=()))
            else:
                checks.append(Check(name, FAIL, str(result.error), "re-download the voice, or run piper-infer -vv on it", ()))
    return checks


def installed_voices(cache: Path) -> list[str]:
    """Piper voices installed by name (``models download``)."""
    return [str(p) for p in installed_piper_voices(cache)]
