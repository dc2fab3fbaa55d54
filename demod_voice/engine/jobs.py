"""The unit of work: one text to one audio output, and the key that says which loaded model can serve it."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from stat import S_ISDIR
from typing import Any, Optional

STDOUT = "-"


@dataclass(frozen=True)
class LoadSpec:
    """What a worker loads once and then serves many jobs with: jobs with equal specs share workers."""

    backend: str
    """Backend name (``piper``) or ``module:Class`` of a backend class."""
    model: str
    """Absolute path of the model file or folder."""
    device: str = "cpu"
    """Requested device, ``cpu`` or ``gpu``; the worker reports what it really got."""
    model_config: Optional[str] = None
    """Absolute path of a side-car config (Piper's ``.onnx.json``), when the backend has one."""
    cache_dir: Optional[str] = None
    """Folder where the backend may keep derived files (optimised graphs); ``None`` disables caching."""
    fetch: Optional[str] = None
    """A published model name the worker downloads into ``model`` when that folder is incomplete."""
    version: tuple[int, ...] = ()
    """The model's files as they were when the request was resolved (:func:`files_version`); ``()``: not tracked. Files
    replaced at the same path make another spec, so the next request loads them on new workers while the old ones
    finish what they took: a voice re-exported over the old one went on being spoken from the old model until a
    restart."""

    def place(self) -> LoadSpec:
        """This spec whatever its files' version: specs that differ only in version are one model over time."""
        return replace(self, version=())


def files_version(*paths: str) -> tuple[int, ...]:
    """Who ``paths`` are now: for each (a folder counts its files, one level down) the change time, modification time,
    size and inode, the latest change time first, so that files replaced later compare greater. The change time is the
    kernel's (a copy that keeps the old modification time, ``cp -p``, still changes it), and it is two ``stat`` calls
    for a Piper voice (microseconds: it is read at every request). Raises :class:`OSError` for a path that is gone."""
    stamps: list[int] = []
    for path in paths:
        for entry in _entries(path):
            stamps += (entry.st_ctime_ns, entry.st_mtime_ns, entry.st_size, entry.st_ino)
    return (max(stamps[::4], default=0), *stamps)


def _entries(path: str) -> list[os.stat_result]:
    stat = os.stat(path)
    if not S_ISDIR(stat.st_mode):
        return [stat]
    with os.scandir(path) as found:
        return [stat, *(entry.stat() for entry in sorted(found, key=lambda e: e.name) if entry.is_file())]


@dataclass(frozen=True)
class JobValue:
    """What a job that makes something other than audio gives back (an enrollment's conditioning):
    plain values and numpy arrays by name. A backend yields it among (or instead of) audio chunks;
    it reaches the client as :attr:`JobResult.value <demod_voice.engine.handles.JobResult.value>`."""

    data: dict
    """Names to values (picklable: it crosses the worker's socket or Ray's object store)."""


@dataclass(frozen=True, slots=True)
class SynthesisJob:
    """One synthesis request, already validated: everything a worker needs and nothing it must look up."""

    spec: LoadSpec
    """The model this job runs on."""
    text: str
    """Text to speak (non-empty)."""
    output: str
    """Output file path, or ``-`` for raw 16-bit PCM on stdout."""
    options: Any = None
    """Backend-specific options (a frozen dataclass such as ``PiperOptions``)."""
    label: str = ""
    """How messages name this job (a file name, a CSV line number)."""
    together: Optional[str] = None
    """Jobs with the same key may be handed to one worker at once, which makes their audio as one
    batch (XTTS: same voice and settings); ``None``: always one at a time."""
    together_limit: int = 1
    """The most jobs handed over at once."""
    joins: bool = False
    """A later job with the same ``together`` key may join this one's hand-over while it runs (``("join", offset,
    jobs)``, :mod:`.protocol`): the backend takes it in between two of its rounds (XTTS streaming: the next sentence of
    every job is one GPT batch), so a request that arrives while a long one streams waits for one round, not for all."""
    segments: Optional[tuple] = None
    """Pieces to speak in turn and exact pauses between them (:mod:`demod_voice.speech_text.script`'s
    ``Speak`` and ``Pause``), when the text needs them (SSML); ``None``: ``text`` is spoken as it is."""
    waiting: int = 0
    """Set by the engine when it hands the job to a worker: how many jobs for the same model were
    still queued behind it that no other free worker could take at once. A backend may trade first audio for throughput when it is not 0 (Piper
    then decodes a streamed sentence whole rather than in windows: its first audio waits in the queue
    anyway, and windows cost CPU time that the jobs behind it need)."""

    def describe(self) -> str:
        """A short name for messages."""
        return self.label or ("stdout" if self.output == STDOUT else self.output)
