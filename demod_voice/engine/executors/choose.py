"""The one place an executor is chosen from the settings (``engine.executor``), for every front
door: ``batch``, ``serve`` (HTTP, Wyoming, the page), the one-shot commands and ``health --deep``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from demod_voice.config import EngineSettings
from demod_voice.engine.executors import Executor
from demod_voice.engine.executors.local import LocalExecutor
from demod_voice.engine.executors.ray import RayExecutor
from demod_voice.engine.executors.ray_cluster import check_address

EXECUTORS: dict[str, Callable[[EngineSettings, int], Executor]] = {
    "local": lambda settings, log_level: LocalExecutor(),
    "ray": lambda settings, log_level: RayExecutor(settings, log_level=log_level),
}
"""``engine.executor`` values and how each is made (Ray connects to its cluster here)."""


def choose_executor(settings: EngineSettings, log_level: int = logging.WARNING) -> Executor:
    """The executor ``engine.executor`` names: local subprocess workers, or actors on a Ray cluster."""
    return EXECUTORS[settings.executor](settings, log_level)


def check_executor(settings: EngineSettings) -> None:
    """Raise now what choosing the executor would raise for its settings alone (a Ray address that cannot be one), so
    that a command refuses before it makes anything."""
    if settings.executor == "ray":
        check_address(settings.ray_address)


def workers_per_model(executor: Executor, settings: EngineSettings, requested: int, most_jobs: int = 0) -> int:
    """Workers per model: ``requested``; 0 means sized per model from its files and the cores
    (:mod:`demod_voice.engine.sizing`), or on a Ray cluster as many actors as its CPUs hold
    (``engine.ray_num_cpus`` each). Never more than ``most_jobs``, the most jobs one model has (when known): each worker
    loads its model (``engine.ray_num_cpus: 0.01`` on 2 CPUs started 199 actors per model for 40 rows)."""
    cluster = getattr(executor, "cluster", None)
    workers = cluster.slots(settings.ray_num_cpus) if requested <= 0 and cluster is not None else max(0, requested)
    return min(workers, most_jobs) if most_jobs > 0 else workers
