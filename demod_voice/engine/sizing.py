"""How many workers a model gets when the settings leave it to the engine (``workers: 0``, the default).

Measured on a 2-core machine (docs/performance.md): a Piper voice is light (a medium voice is
63 MB, ~140 MB resident per worker) and its onnxruntime runs gain little from a second intra-op
thread, so one single-threaded worker per core makes the most audio per second (``batch`` of 200
rows: 2 workers 1.64x one ``piper`` process, 1 worker 1.26x). An XTTS model is heavy (1.9 GB on
disk, ~4.8 GB in use on a CPU) and torch already spreads one synthesis over every core, so it
gets one copy per device, which uses all the threads. The rule reads the model's files, not its
backend's name, so a plugin's models are sized the same way: a single file up to
:data:`LIGHT_MODEL_BYTES` is light; a folder (an XTTS checkpoint, whatever its size: test models
are small) or a larger file is heavy. ``engine.workers`` / ``serve.workers`` set a number instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from demod_voice.engine.jobs import LoadSpec

LIGHT_MODEL_BYTES = 300 * 2**20
"""Single-file models up to this size get a worker per core (Piper voices: 5-120 MB); others one per device."""
MOST_LIGHT_WORKERS = 8
"""At most this many workers for one light model: more copies mostly hold memory."""


def default_workers(spec: LoadSpec, cores: int | None = None) -> int:
    """Workers for ``spec`` when none are configured: one per core (at most :data:`MOST_LIGHT_WORKERS`)
    for a light model on the CPU, else one (a model copy per device, using all its threads)."""
    cores = cores or os.cpu_count() or 1
    if spec.device != "cpu" or not 0 < light_model_bytes(spec) <= LIGHT_MODEL_BYTES:
        return 1
    return max(1, min(cores, MOST_LIGHT_WORKERS))


def light_model_bytes(spec: LoadSpec) -> int:
    """The size of a model that is one file; 0 for a folder or a file that cannot be read (not yet downloaded)."""
    path = Path(spec.model)
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0
