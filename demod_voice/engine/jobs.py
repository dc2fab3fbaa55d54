"""The unit of work: one text to one audio output, and the key that says which loaded model can serve it."""

from __future__ import annotations

from dataclasses import dataclass
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
