"""Jobs made one after another as a lazy feed gives them, their audio going to one output in turn: text piped in as it
is written (``tail -f log | demod-voice piper-infer VOICE - -o -``), where the jobs are not known up front as a batch's
rows are (:meth:`EngineService.run <demod_voice.engine.service.EngineService.run>` takes them all first)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Optional

from demod_voice.audio.chunks import AudioChunk, silence
from demod_voice.audio.writer import Sink, StreamedSink
from demod_voice.config import EngineSettings
from demod_voice.engine.handles import JobHandle, JobResult
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.service import EngineService
from demod_voice.errors import Interrupted, NothingToSpeak

log = logging.getLogger(__name__)

WAIT = 0.2
"""Seconds between looks at the executor while a job is being made (Ctrl-C is seen at once either way)."""


def run_in_turn(jobs: Iterable[SynthesisJob], sink: Sink, settings: EngineSettings, log_level: int, pause: float = 0.0,
                ready: Optional[LoadSpec] = None) -> float:
    """Make each job as ``jobs`` gives it, one at a time, writing its audio to ``sink`` as it is made, with ``pause``
    seconds of silence between jobs; commit ``sink`` and return its seconds of audio. ``ready``: the model to load at
    once, while the first job is still to come (its text may be slow, and a voice's worker takes seconds to start). A
    job with nothing to say (a sentence of only symbols) is skipped. The engine's own thread writes every chunk, as in a one-shot run, so Ctrl-C
    never cuts one in half: it stops the job being made and raises :class:`Interrupted`."""
    service = EngineService(settings, workers=1, log_level=log_level, max_loaded_models=1)
    handle: Optional[JobHandle] = None
    spoken = False
    try:
        if ready is not None:
            service.preload(ready, keep=False)
        for job in jobs:
            handle = service.submit(job, _InTurn(sink, pause if spoken else 0.0))
            result = _wait(handle, service)
            handle = None
            if isinstance(result.error, NothingToSpeak):
                log.debug("%s had nothing to say; skipped", job.describe())
            elif result.error is not None:
                raise result.error
            spoken = spoken or result.ok
        return sink.commit()
    except KeyboardInterrupt:
        raise Interrupted("interrupted: the audio made so far was written") from None
    finally:
        if handle is not None:  # the run stops as a whole, as a one-shot run's Ctrl-C: a stubborn worker's kill is no warning
            service.cancel_and_wait([handle])
        service.shutdown()


def _wait(handle: JobHandle, service: EngineService) -> JobResult:
    while True:
        try:
            return handle.result(timeout=WAIT)
        except TimeoutError:
            service.executor.check()


class _InTurn(StreamedSink):
    """One job's share of the output the jobs write in turn: the pause before its audio, and a retry only until its own
    first chunk has left (the output's own commit comes once, after the last job)."""

    def __init__(self, sink: Sink, pause: float) -> None:
        super().__init__()
        self._sink = sink
        self._pause = pause

    def write(self, chunk: AudioChunk) -> None:
        if self._pause and self.retryable:
            self._sink.write(silence(self._pause, chunk.sample_rate))
        self._sink.write(chunk)
        self._sent(chunk)
