"""Placement: whether a model may start a worker now, and which idle models to unload to make room.

The engine asks its :class:`Placement` before every worker start. The policy here keeps two
limits: ``engine.max_loaded_models`` (models with workers at once) and ``engine.memory_budget_mb``
(resident memory of every worker together). Idle models go first, the one idle longest first;
busy models are waited for. A model with no worker at all always gets one (work must move),
with a warning when that passes the memory budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from demod_voice.engine.jobs import LoadSpec

log = logging.getLogger(__name__)


class Placed(Protocol):
    """What placement sees of one model's pool of workers."""

    spec: LoadSpec
    last_used: float
    """``time.monotonic()`` of its last job."""
    rss_seen: int
    """The largest resident memory one of its workers has had (0: none has run yet)."""

    def live_workers(self) -> Sequence[Any]:
        """Its started workers."""

    def busy(self) -> bool:
        """Whether it has jobs waiting or running."""

    def rss(self) -> int:
        """Resident memory of its workers together, in bytes."""

    def stop(self, kill: bool = False) -> None:
        """Unload it: stop its workers."""


class Placement(Protocol):
    """The policy the engine asks before starting a worker."""

    def admit(self, pool: Placed, pools: Sequence[Placed]) -> bool:
        """Whether ``pool`` may start a worker now (``pools``: every pool, ``pool`` among them); may unload others."""


def model_size(spec: LoadSpec) -> int:
    """A first guess at a worker's memory before one has run: twice the model's files, plus 200 MB."""
    path = Path(spec.model)
    try:
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        size = sum(p.stat().st_size for p in files)
    except OSError:
        size = 0
    return 2 * size + 200 * 2**20


class Budget:
    """``engine.max_loaded_models`` and ``engine.memory_budget_mb`` (0: no limit)."""

    def __init__(self, memory_budget_mb: int, max_loaded_models: int, warn_once: Callable[[str], None]) -> None:
        self.memory_budget_mb = memory_budget_mb
        self.max_loaded_models = max_loaded_models
        self.warn_once = warn_once

    def admit(self, pool: Placed, pools: Sequence[Placed]) -> bool:
        if not self._model_slot(pool, pools):
            return False
        budget = self.memory_budget_mb * 2**20
        if not budget:
            return True
        need = pool.rss_seen or model_size(pool.spec)
        others = sorted((p for p in pools if p is not pool), key=lambda p: p.last_used)
        used = sum(p.rss() for p in pools)
        for other in others:
            if used + need <= budget:
                break
            if not other.busy() and other.live_workers():
                log.info("unloading %s to stay within engine.memory_budget_mb", other.spec.model)
                used -= other.rss()
                other.stop()
        if used + need <= budget:
            return True
        if not pool.live_workers():
            self.warn_once(f"loading {pool.spec.model} goes past engine.memory_budget_mb ({self.memory_budget_mb} MB)")
            return True
        return False

    def _model_slot(self, pool: Placed, pools: Sequence[Placed]) -> bool:
        """Whether ``pool`` may load its model under ``max_loaded_models``, unloading idle models
        (idle longest first) to make room; busy ones are waited for."""
        if not self.max_loaded_models or pool.live_workers():
            return True
        loaded = sorted((p for p in pools if p is not pool and p.live_workers()), key=lambda p: p.last_used)
        for other in loaded:
            if len(loaded) < self.max_loaded_models:
                break
            if not other.busy():
                log.info("unloading %s: engine.max_loaded_models is %d", other.spec.model, self.max_loaded_models)
                other.stop()
                loaded = [p for p in loaded if p is not other]
        return len(loaded) < self.max_loaded_models
