"""Placement: whether a model may start a worker now, and which idle models to unload to make room.

The engine asks its :class:`Placement` before every worker start. The policy here keeps two
limits: ``engine.max_loaded_models`` (models with workers at once) and ``engine.memory_budget_mb``
(resident memory of every worker together). Idle models go first, the one idle longest first, and preloaded
(``serve --preload``) ones only after every other; busy models are waited for. A model with no worker at all always
gets one (work must move), with a warning when that passes the memory budget. A preloaded model loaded again after
another took its room unloads nobody (``evict=False``): it waits until that one is unloaded.
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
    pinned: bool
    """A preloaded model (``serve --preload``): kept loaded."""

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

    def admit(self, pool: Placed, pools: Sequence[Placed], evict: bool = True) -> bool:
        """Whether ``pool`` may start a worker now (``pools``: every pool, ``pool`` among them); may unload others if
        ``evict``."""


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

    def admit(self, pool: Placed, pools: Sequence[Placed], evict: bool = True) -> bool:
        if not self._model_slot(pool, pools, evict):
            return False
        budget = self.memory_budget_mb * 2**20
        if not budget:
            return True
        need = pool.rss_seen or model_size(pool.spec)
        used = sum(p.rss() for p in pools)
        for other in _by_eviction(pools, pool) if evict else ():
            if used + need <= budget:
                break
            if not other.busy() and other.live_workers():
                log.info("unloading %s to stay within engine.memory_budget_mb", other.spec.model)
                used -= other.rss()
                self._unload(other, pool, "engine.memory_budget_mb")
        if used + need <= budget:
            return True
        if not pool.live_workers() and (evict or not any(p.live_workers() for p in pools if p is not pool)):
            self.warn_once(f"loading {pool.spec.model} goes past engine.memory_budget_mb ({self.memory_budget_mb} MB)")
            return True
        return False

    def _model_slot(self, pool: Placed, pools: Sequence[Placed], evict: bool) -> bool:
        """Whether ``pool`` may load its model under ``max_loaded_models``, unloading idle models
        (:func:`_by_eviction`) to make room if ``evict``; busy ones are waited for."""
        if not self.max_loaded_models or pool.live_workers():
            return True
        loaded = [p for p in _by_eviction(pools, pool) if p.live_workers()]
        for other in loaded if evict else ():
            if len(loaded) < self.max_loaded_models:
                break
            if not other.busy():
                log.info("unloading %s: engine.max_loaded_models is %d", other.spec.model, self.max_loaded_models)
                self._unload(other, pool, f"engine.max_loaded_models is {self.max_loaded_models}")
                loaded = [p for p in loaded if p is not other]
        return len(loaded) < self.max_loaded_models

    def _unload(self, other: Placed, pool: Placed, limit: str) -> None:
        """Unload ``other`` for ``pool``; a preloaded model's unloading is said once (``/readyz`` turns 'loading')."""
        if other.pinned:
            self.warn_once(f"{other.spec.model}, a preloaded model, was unloaded to make room for {pool.spec.model} ({limit}):"
                           " /readyz says 'loading' until it is loaded again, once the other is unloaded (engine.idle_timeout);"
                           " raise the limit to keep both loaded")
        other.stop()


def _by_eviction(pools: Sequence[Placed], pool: Placed) -> list[Placed]:
    """The pools other than ``pool`` in the order they are unloaded to make room for it: models not preloaded first,
    then preloaded ones (``/readyz`` waits for them), each the one idle longest first."""
    return sorted((p for p in pools if p is not pool), key=lambda p: (p.pinned, p.last_used))
