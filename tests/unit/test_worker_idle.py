"""A local worker calls its backend's ``idle()`` once when a pause begins, not between jobs that follow one another."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
import time
from multiprocessing import Pipe

import numpy as np
import pytest

from demod_voice import devices
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


@contextlib.contextmanager
def _serving(backend, monkeypatch, idle_seconds: float):
    """``worker.serve`` on a thread with ``backend`` loaded; yields the parent's end once it said ready, stops it after."""
    monkeypatch.setattr(worker, "load_backend", lambda spec: (backend, ("ready", backend.load(spec))))
    monkeypatch.setattr(worker, "IDLE_SECONDS", idle_seconds)
    ours, theirs = Pipe()
    thread = threading.Thread(target=worker.serve, args=(theirs, SPEC), daemon=True)
    thread.start()
    try:
        assert ours.recv()[0] == "ready"
        yield ours
    finally:
        ours.send(None)
        thread.join(10)
    assert not thread.is_alive()


def test_idle_is_called_once_per_pause_and_not_between_jobs_in_a_row(monkeypatch):
    backend = Recording()
    # IDLE_SECONDS 0.4: the test sends each next hand-over at once, but a busy machine may delay that by a moment
    with _serving(backend, monkeypatch, 0.4) as ours:
        time.sleep(1.5)  # a pause of several IDLE_SECONDS: one call, not one per IDLE_SECONDS
        assert backend.events == ["idle"]
        # as the engine does under load: the next hand-over as soon as the last is answered
        for text in ("first", "second", "third"):
            ours.send([SynthesisJob(SPEC, text, "-")])
            _answers(ours, 1)
        time.sleep(1.5)
        assert backend.events == ["idle", "first", "second", "third", "idle"]


class Failing(Recording):
    def idle(self) -> None:
        super().idle()
        raise RuntimeError("a plugin's idle() failed")


def test_a_failing_idle_leaves_the_worker_answering(monkeypatch):
    backend = Failing()
    with _serving(backend, monkeypatch, 0.1) as ours:
        time.sleep(0.5)
        ours.send([SynthesisJob(SPEC, "after", "-")])
        _answers(ours, 1)
        assert backend.events == ["idle", "after"]


class Plain(Backend):
    def load(self, spec):
        return LoadInfo(device="cpu")

    def synthesize(self, job):
        yield from ()


def _anon_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux") or devices._malloc_trim() is None, reason="glibc's malloc_trim")
def test_the_default_idle_gives_freed_heap_memory_back():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(2048)]  # 128 MiB on the heap (under glibc's mmap threshold)
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    for block in blocks[:-1]:  # the last one stays: the freed memory below it is kept for reuse, not returned
        libc.free(block)
    kept = _anon_mib()
    Plain().idle()
    given = kept - _anon_mib()
    libc.free(blocks[-1])
    assert given > 100, f"idle() gave back {given:.0f} MiB of 128 MiB freed"
