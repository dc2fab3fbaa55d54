"""The messages between the engine and a worker, in one place.

Parent -> worker: a list of :class:`~demod_voice.engine.jobs.SynthesisJob` (a hand-over: one job,
or jobs with one ``together`` key), ``("cancel", index)`` while it runs, ``("join", offset, jobs)``: more jobs of
the running hand-over (of jobs that say ``joins``), at places ``offset`` on, or ``None`` to stop.

Worker -> parent: first ``("ready", LoadInfo)`` or ``("failed", kind, message)``; then, for each
job of a hand-over, any number of ``("chunk", samples, rate, index)`` and ``("value", data, index)``,
and one ``("done", index)`` or ``("error", kind, message, index)``. ``index`` is the job's place in
its hand-over. A backend that makes jobs one after another answers them in order; one that
makes them together (XTTS streaming a GPT batch) interleaves their chunks, so each job streams
from its first audio while it shares the batch. A message without an index (an older worker, an
executor's own error) is about the first job not yet answered.
"""

from __future__ import annotations

from typing import Any, Optional

JOB_MESSAGES = {"chunk": 3, "value": 2, "done": 1, "error": 3}
"""A job message's length (its kind included) without its index."""


def chunk(samples: Any, rate: int, index: int) -> tuple:
    """Audio of job ``index``."""
    return ("chunk", samples, rate, index)


def done(index: int) -> tuple:
    """Job ``index`` is complete."""
    return ("done", index)


def error(kind: str, message: str, index: int) -> tuple:
    """Job ``index`` failed (``kind``: the error class's name on the wire)."""
    return ("error", kind, message, index)


def tagged(message: tuple, index: int) -> tuple:
    """``message`` about job ``index`` (an untagged job message gets the index; others stay as they are)."""
    size = JOB_MESSAGES.get(message[0])
    return (*message, index) if size is not None and len(message) == size else message


def join(offset: int, jobs: list) -> tuple:
    """``jobs`` join the running hand-over at places ``offset``, ``offset + 1``, ..."""
    return ("join", offset, jobs)


def shifted(message: tuple, offset: int) -> tuple:
    """A job message of a hand-over's later part answered on its own (jobs that joined once the rest was done): its
    place counted from the hand-over's start."""
    index = job_index(message)
    return message if index is None or not offset else (*message[:-1], index + offset)


def job_index(message: tuple) -> Optional[int]:
    """The hand-over position a job message is about; ``None``: untagged (the first job not yet answered)."""
    size = JOB_MESSAGES.get(message[0])
    return message[-1] if size is not None and len(message) == size + 1 else None
