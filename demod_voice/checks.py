"""What a ``health`` check is, and how engine imports are tried without risk.

Kept below the backends so that each backend's request side can say what it needs checked
(:meth:`demod_voice.backends.plugin.RequestSide.checks`) while :mod:`demod_voice.health`
gathers the report.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Optional

from demod_voice.sandbox import python_child

OK, WARN, FAIL = "ok", "warn", "fail"
EVERY = ("*",)
"""``needed_by`` of a check every backend needs (the interpreter, the config)."""
PROBE_TIMEOUT = 120.0


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
    needed_by: tuple[str, ...] = EVERY
    """Backends that cannot work when this check fails (``("*",)``: all of them)."""


def dist_version(name: str) -> Optional[str]:
    """Installed version of a distribution, from metadata only (nothing is imported)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def probe(code: str, timeout: float = PROBE_TIMEOUT) -> tuple[Optional[dict[str, Any]], str]:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON: (that result, "") or (None, why it failed).

    Engine imports are tried this way so that a broken install can neither hang nor crash ``health``."""
    try:
        done = subprocess.run(python_child(code), capture_output=True, text=True, timeout=timeout)
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
