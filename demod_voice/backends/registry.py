"""Backends by name. Importing this module imports no engine: each backend imports its own inside ``load``."""

from __future__ import annotations

import importlib

from demod_voice.backends.base import Backend
from demod_voice.errors import UsageError

BACKENDS: dict[str, str] = {
    "piper": "demod_voice.backends.piper.engine:PiperBackend",
    "xtts": "demod_voice.backends.xtts.engine:XttsBackend",
    "tinygrad": "demod_voice.backends.tinygrad.engine:TinygradBackend",
}


def create_backend(name: str) -> Backend:
    """Instantiate the backend called ``name``, or named by a ``module:Class`` path (plug-ins, tests)."""
    target = BACKENDS.get(name, name)
    if ":" not in target:
        raise UsageError(f"unknown backend '{name}'; choose one of {', '.join(sorted(BACKENDS))}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()
