"""A local worker calls its backend's ``idle()`` once when a pause begins, not between jobs that follow one another."""

from __future__ import annotations

import threading
import time
from multiprocessing import Pipe

import numpy as np

from demod_voice.audio.chunks import AudioChunk
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.engine import worker
from demod_voice.engine.jobs import LoadSpec, SynthesisJob

SPEC = LoadSpec("fake", "/models/fake")


class Recording(Backend):
    def __init__(self) -> None:
        self.events: list[str] = []

    def load(self, spec):
        return LoadInfo(device="cpu", sample_rate=8000)

    def synthesize(self, job):
        self.events.append(job.text)
        yield AudioChunk(np.zeros(80, dtype=np.float32), 8000)

    def idle(self) -> None:
        self.events.append("idle")


def _answers(conn, count: int) -> list[tuple]:
    got: list[tuple] = []
    while sum(1 for message in got if message[0] == "done") < count:
        assert conn.poll(10), f"no answer from the worker; so far {got}"
        got.append(conn.recv())
    return got


def test_idle_is_called_once_per_pause_and_not_between_jobs_in_a_row(monkeypatch):
    backend = Recording()
    monkeypatch.setattr(worker, "load_backend", lambda spec: (backend, ("ready", backend.load(spec))))
    monkeypatch.setattr(worker, "IDLE_SECONDS", 0.2)
    ours, theirs = Pipe()
    thread = threading.Thread(target=worker.serve, args=(theirs, SPEC), daemon=True)
    thread.start()
    try:
        assert ours.recv()[0] == "ready"
        time.sleep(1.0)  # a pause of several IDLE_SECONDS: one call, not one per IDLE_SECONDS
        assert backend.events == ["idle"]
        # as the engine does under load: the next hand-over as soon as the last is answered
        for text in ("first", "second", "third"):
            ours.send([SynthesisJob(SPEC, text, "-")])
            _answers(ours, 1)
        time.sleep(1.0)
        assert backend.events == ["idle", "first", "second", "third", "idle"]
    finally:
        ours.send(None)
        thread.join(10)
    assert not thread.is_alive()
