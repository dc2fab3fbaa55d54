"""The contract between the worker and an engine."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from demod_voice.audio.chunks import AudioChunk
from demod_voice.devices import release_memory
from demod_voice.engine.jobs import LoadSpec, SynthesisJob

T = TypeVar("T")


def in_turn(run: Iterator[T], counts: Iterable[int]) -> Iterator[Iterator[T]]:
    """Each job's share of one run made for several (``counts``: its items, in order), for
    :meth:`Backend.synthesize_together`. A share given up part way (its job cancelled) is taken off
    the run before the next share starts: the next job, perhaps another client's, was sent the rest
    of it as its own audio."""
    for count in counts:
        share = itertools.islice(run, count)
        yield share
        for _ in share:
            pass


@dataclass
class LoadInfo:
    """What a backend reports after loading: shown at ``-v``, and warnings shown always (once)."""

    device: str
    """The device really used (``cpu``, ``cuda``)."""
    detail: str = ""
    """Runtime detail, e.g. the onnxruntime providers of the session."""
    sample_rate: int = 0
    """Output sample rate of the model."""
    warnings: list[str] = field(default_factory=list)
    """Things the user must hear about, such as a GPU fallback."""


class Backend(ABC):
    """An engine loaded once per worker, then asked for many jobs."""

    @abstractmethod
    def load(self, spec: LoadSpec) -> LoadInfo:
        """Load the model named by ``spec`` onto the requested device (falling back and saying so)."""

    @abstractmethod
    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        """Yield the job's audio as chunks (one per sentence or streaming step)."""

    def synthesize_together(self, jobs: list[SynthesisJob]) -> Iterator[Iterator[AudioChunk]]:
        """Jobs handed over at once (equal ``together`` keys): one chunk iterator per job, in order,
        each consumed before the next is asked for. A backend that batches across jobs overrides this."""
        for job in jobs:
            yield self.synthesize(job)

    def idle(self) -> None:
        """Called by a local worker that has had no job for a moment (``engine.worker.IDLE_SECONDS``), once per
        pause: memory kept for the next job goes back to the system (by default the heap's freed memory,
        :func:`demod_voice.devices.release_memory`)."""
        release_memory()
