"""The engine side (worker process only): "loads" nothing and yields one tone per sentence."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from demod_voice.audio.chunks import AudioChunk
from demod_voice.audio.text import split_sentences
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.engine.jobs import LoadSpec, SynthesisJob

SAMPLE_RATE = 16000


class SineBackend(Backend):
    def load(self, spec: LoadSpec) -> LoadInfo:
        return LoadInfo(device="cpu", detail="numpy sine tones", sample_rate=SAMPLE_RATE)

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        for sentence in split_sentences(job.text, 200):
            count = max(1, int(len(sentence) * job.options.seconds_per_character * SAMPLE_RATE))
            t = np.arange(count, dtype=np.float32) / SAMPLE_RATE
            yield AudioChunk((0.5 * np.sin(2 * np.pi * job.options.frequency * t)).astype(np.float32), SAMPLE_RATE)
