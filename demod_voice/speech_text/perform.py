"""Worker side of a script: each piece spoken by the backend, each pause exact zero samples,
each piece's volume applied. Imports numpy only when called."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from demod_voice.audio.chunks import AudioChunk
from demod_voice.speech_text.script import Pause, Segment, Speak


def perform(segments: Iterable[Segment], rate: int, speak: Callable[[Speak], Iterable[AudioChunk]]) -> Iterator[AudioChunk]:
    """The audio of ``segments``: ``speak`` makes a piece's chunks (its rate and language are the backend's to honour)."""
    import numpy as np

    for segment in segments:
        if isinstance(segment, Pause):
            count = int(round(segment.seconds * rate))
            if count:
                yield AudioChunk(np.zeros(count, dtype=np.float32), rate)
            continue
        for chunk in speak(segment):
            if segment.volume != 1.0:
                chunk = AudioChunk(np.clip(chunk.samples * segment.volume, -1.0, 1.0).astype(np.float32), chunk.sample_rate)
            yield chunk
