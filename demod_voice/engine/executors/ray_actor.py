"""The Ray actor behind :class:`~demod_voice.engine.executors.ray.RayWorker` (worker side: it runs
in a Ray worker process on some node, and imports Ray).

It loads its model once in its constructor (which Ray reruns when it restarts the actor) with
:func:`demod_voice.engine.worker.load_backend`, and answers each hand-over with
:func:`~demod_voice.engine.worker.answer`, the code a local worker runs. ``answer`` pushes
messages; a streaming-generator method turns them into a stream the driver pulls: the messages
that are ready at each step go back as one list (fewer objects through Ray), the last list ending
with ``("rss", bytes)`` for the driver's memory accounting.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import ray

from demod_voice.engine import worker
from demod_voice.engine.jobs import LoadSpec, SynthesisJob

_END = object()
SHARED_HINT = "inputs (models, reference recordings) must be at the same path on every node: put them on storage all nodes mount"


class WorkerActor:
    """One loaded model on one node; methods run one at a time except :meth:`cancel`."""

    def __init__(self, spec: LoadSpec, log_level: int, parent_path: list[str], threads: int) -> None:
        sys.stdout = sys.stderr  # whatever an engine prints is a log line, never data
        worker.prepare(log_level, threads, parent_path)
        self.cancelled: set[tuple[int, int]] = set()
        missing = _missing([spec.model, spec.model_config] if not spec.fetch else [spec.model_config])
        if missing:
            self.backend: Any = None
            self.message: tuple = ("failed", "InputError", f"{missing} is not visible on Ray node {_ip()}; {SHARED_HINT}")
        else:
            self.backend, self.message = worker.load_backend(spec)

    def hello(self) -> tuple[int, str, str, tuple]:
        """(pid, node id, node IP, the load message: ``("ready", info)`` or ``("failed", kind, text)``)."""
        return os.getpid(), ray.get_runtime_context().get_node_id(), _ip(), self.message

    def answer(self, seq: int, jobs: list[SynthesisJob]) -> Iterator[list[tuple]]:
        """Stream the protocol messages for hand-over number ``seq``, in lists."""
        box: queue.Queue = queue.Queue()
        threading.Thread(target=self._answer, args=(box, seq, jobs), name="answer", daemon=True).start()
        ended = False
        while not ended:
            batch = [box.get()]
            while True:
                try:
                    batch.append(box.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is _END:
                ended = True
                batch[-1] = ("rss", _rss())
            yield batch
        self.cancelled = {mark for mark in self.cancelled if mark[0] > seq}

    @ray.method(concurrency_group="control")
    def cancel(self, seq: int, index: int) -> None:
        """Stop job ``index`` of hand-over ``seq`` at its next chunk (runs beside :meth:`answer`)."""
        self.cancelled.add((seq, index))

    def _answer(self, box: queue.Queue, seq: int, jobs: list[SynthesisJob]) -> None:
        try:
            problem = self._problem(jobs)
            if problem is not None:
                for _ in jobs:
                    box.put(problem)
            else:
                worker.answer(box.put, self.backend, jobs, lambda index: (seq, index) in self.cancelled)
        finally:
            box.put(_END)

    def _problem(self, jobs: list[SynthesisJob]) -> Optional[tuple]:
        """The error every job of the hand-over gets before any work: no model, or an input this node cannot see."""
        if self.backend is None:
            return ("error", *self.message[1:])
        references = [getattr(ref, "path", None) for job in jobs for ref in getattr(job.options, "references", None) or ()]
        missing = _missing(references)
        if missing:
            return ("error", "InputError", f"reference {missing} is not visible on Ray node {_ip()}; {SHARED_HINT}")
        return None


def _missing(paths: list[Optional[str]]) -> Optional[str]:
    """The first path given that does not exist here."""
    for path in paths:
        if path and not Path(path).exists():
            return path
    return None


def _ip() -> str:
    return ray.util.get_node_ip_address()


def _rss() -> Optional[int]:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
