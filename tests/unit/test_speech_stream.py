"""A streamed speech answer ended by its deadline after its audio began: broken, and counted once, as the deadline's."""

from __future__ import annotations

import asyncio
import collections
import time
from types import SimpleNamespace

import numpy as np
import pytest

from demod_voice.audio.encode import StreamEncoder
from demod_voice.serve.http import speech
from demod_voice.serve.http.streaming import StreamBroken


class Counted:
    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()

    def labels(self, reason: str) -> SimpleNamespace:
        return SimpleNamespace(inc=lambda: self.counts.update([reason]))


class Handle:
    cancelled = False

    def done(self) -> bool:
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True


def test_a_deadline_after_the_audio_began_ends_the_answer_broken_and_is_counted_once():
    """It was counted as the deadline's and again as the client's leaving ("client_gone"), and the answer ended
    normally: a short file taken for a whole one."""
    cancelled = Counted()
    ctx = SimpleNamespace(metrics=SimpleNamespace(cancelled=cancelled),
                          settings=SimpleNamespace(limits=SimpleNamespace(deadline_seconds=0.05)))
    handle = Handle()

    async def slow_engine():
        await asyncio.Event().wait()  # the next chunk never comes in time
        yield None

    async def answer() -> list[bytes]:
        loop = asyncio.get_running_loop()
        run = speech._Run(ctx, handle, "piper", time.perf_counter(), loop.time() + 0.05, 12)
        first = SimpleNamespace(samples=np.zeros(2205, np.float32))
        got = []
        with pytest.raises(StreamBroken):
            async for data in run.audio(StreamEncoder("wav", 22050), first, slow_engine()):
                got.append(data)
        return got

    sent = asyncio.run(answer())
    assert sent and sent[0].startswith(b"RIFF")  # the audio had begun
    assert handle.cancelled
    assert cancelled.counts == {"deadline": 1}, cancelled.counts
