"""What a backend is to the rest of the program: a *request side* and an *engine side*.

The **request side** (a :class:`RequestSide`) runs in the parent process: the CLI, the server,
``batch``, ``health``. It says which voices the backend offers, turns a voice and a text (or a
CSV row) into a :class:`~demod_voice.engine.jobs.SynthesisJob`, lists its installed models and
says what ``health`` should check. It never imports an engine library (torch, onnxruntime, ...).

The **engine side** is a :class:`~demod_voice.backends.base.Backend` subclass named by
:attr:`RequestSide.engine` (``"package.module:Class"``). It is imported only inside a worker
process, which loads a model once and then makes many jobs.

Built-in backends and third-party ones (entry-point group ``demod_voice.backends``) register the
same way, through :mod:`demod_voice.backends.registry`; docs/plugins.md walks through writing one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.checks import Check
from demod_voice.config import Config
from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob
from demod_voice.errors import InputError
from demod_voice.speech_text.prepare import TextOptions

MIN_SPEED, MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True)
class Scope:
    """Where a request side looks for voices and models, and the settings in force (built by a front door)."""

    config: Config
    """Effective configuration."""
    cache: Path
    """The cache folder (installed models, voice profiles)."""
    profiles: Path
    """Where saved voice profiles live (``voices add``)."""
    data_dir: Optional[Path] = None
    """The server's own files (voice side-cars); ``None`` outside ``serve``."""
    voice_paths: tuple[str, ...] = ()
    """Extra voice files or folders a server offers (``serve.piper_voices``)."""


@dataclass(frozen=True)
class Voice:
    """One voice a backend offers, as voice pickers, ``/v1/audio/voices`` and Wyoming list it."""

    id: str
    """What a request puts in ``voice`` (and in ``model`` when :attr:`by_model`)."""
    name: str
    """A readable name."""
    kind: str
    """The backend offering it (its registry name), or ``alias`` for a configured alias."""
    speakers: tuple[str, ...] = ()
    """Speaker names of a multi-speaker voice."""
    language: str = ""
    """Its own language code, when known."""
    sample_rate: int = 0
    """Output sample rate, when known without loading the model."""
    languages: tuple[str, ...] = ()
    """Every language it can speak, its own first (empty: only :attr:`language`)."""
    by_model: bool = False
    """The voice is a model of its own: ``/v1/models`` lists it and a request may name it in ``model``
    (then ``voice`` picks its speaker)."""
    speaker_picks_language: bool = False
    """Wyoming lists :attr:`languages` as this voice's speakers, and a chosen speaker is the language to speak."""
    kind_label: str = ""
    """What kind of voice it is, in words (``Piper``, ``cloned voice, XTTS``): Wyoming's description, the page's table."""
    describe: str = ""
    """What the page's voice picker shows after its id (``(Piper, en_US)``, ``— cloned voice (XTTS, en)``)."""
    model_path: Optional[str] = None
    """The model file, when the voice is one (:attr:`by_model`)."""

    def spoken(self) -> tuple[str, ...]:
        """The languages it speaks, its own first."""
        return self.languages or ((self.language,) if self.language else ())


@dataclass(frozen=True)
class Speech:
    """A resolved voice: everything needed to turn texts into jobs for it."""

    side: RequestSide
    """The request side that resolved it (and makes its jobs)."""
    voice_id: str
    """The voice as it was resolved (with ``:speaker`` when one was chosen)."""
    spec: LoadSpec
    """The model the jobs run on (what preloading and ``/readyz`` use)."""
    sample_rate: int
    """Output sample rate (known before any audio: WAV headers, Wyoming's audio-start)."""
    request: Any = None
    """The backend's own typed request with an empty text (opaque to front doors)."""
    reading: TextOptions = TextOptions()
    """How its texts are read: normalisation, lexicons, SSML (a front door sets it; :mod:`demod_voice.speech_text`)."""

    @property
    def kind(self) -> str:
        """The backend's registry name."""
        return self.side.name

    def job(self, text: str, speed: float = 1.0, label: str = "", output: str = STDOUT) -> SynthesisJob:
        """A job speaking ``text`` at ``speed`` (> 1 faster); ``output`` ``-`` streams to the handle."""
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise InputError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
        job = self.side.job(self, text, speed, output)
        return dataclasses.replace(job, label=label or f"{self.voice_id} request")

    def adjusted(self, variation: Optional[float] = None, temperature: Optional[float] = None) -> Speech:
        """The same voice with the web page's sliders applied (a backend ignores those it has no use for)."""
        return self.side.adjust(self, variation, temperature)


@dataclass(frozen=True)
class RowInput:
    """One request as named values, with the parts every backend needs already checked: a ``batch``
    CSV row, or a one-shot command's arguments (``piper-infer``, ``xtts-zero-shot``)."""

    values: dict[str, str]
    """Column -> stripped value (``reference`` (paths joined by ``|``), ``model``, ``voice``, ``language``,
    ``speaker``; a one-shot command may add ``config_json``)."""
    text: str
    """The text to speak (checked, normalised)."""
    output: Path
    """The checked output file (``-``: raw PCM on stdout)."""
    base: Path
    """The folder relative input paths start from (the CSV's folder; the current folder for a command)."""
    config: Config
    """Effective configuration."""
    cache: Path
    """The cache folder."""
    model: Optional[str] = None
    """The run's default voice model (``batch --model``)."""
    dry_run: bool = False
    """Validate only: nothing may be downloaded (raise :class:`WouldFetch` instead)."""
    progress: bool = True
    """Downloads may show progress on stderr."""
    reading: TextOptions = TextOptions()
    """How the text is read: normalisation, lexicons, SSML (:mod:`demod_voice.speech_text`)."""
    listed: tuple[str, ...] = ()
    """The reference recordings one by one (a command's arguments, whose file names may hold a ``|``), over
    ``values["reference"]``."""

    def path(self, value: str) -> Path:
        """An input path: relative ones start from :attr:`base` (so a batch folder can move as a whole)."""
        if len(value) > 2 and value[0].isalpha() and value[1] == ":" and value[2] in "\\/":  # was "/csv-folder/C:/voices/joe.onnx not found"
            raise InputError(f"'{value[:80]}' is a path on a Windows drive; copy the file to this machine and give its path "
                             "here (relative to the CSV's folder)")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else self.base.absolute() / path
        if "\\" in value and not path.exists():  # a sheet made on Windows: voices\joe.onnx names a folder's file
            return self.path(value.replace("\\", "/"))
        return path


class UnknownVoice(InputError):
    """The request names a voice, speaker or model that does not exist here (HTTP 404)."""

    code = "unknown_voice"


class UnknownModel(UnknownVoice):
    """The request's ``model`` names no model here (HTTP 404, ``unknown_model``)."""

    code = "unknown_model"


class WouldFetch(Exception):
    """A dry run met a row whose model would be downloaded first: the row is valid, and nothing is fetched.
    ``str()`` is the model's name."""

    kind: str = ""
    """The backend whose row it is (set by ``batch``)."""


@dataclass(frozen=True)
class Quantized:
    """A smaller copy of a model that ``models quantize`` wrote (:meth:`RequestSide.quantize`)."""

    model: Path
    """The copy."""
    config: Optional[Path]
    """Its settings file written beside it (a Piper voice's ``.onnx.json``), if any."""
    method: str
    """How it was made (``static``, ``dynamic``)."""
    float_bytes: int
    """Size of the original."""
    int8_bytes: int
    """Size of the copy."""


@dataclass(frozen=True)
class ModelEntry:
    """An installed model, as ``models list`` prints it."""

    kind: str
    """The backend's registry name."""
    name: str
    """What commands call it."""
    path: Path
    """Where it is."""
    size_bytes: Optional[int] = None
    """Size on disk, when cheap to tell."""


class RequestSide:
    """A backend's parent side. Subclass it, set the class attributes, override what the backend offers;
    every method has a default that offers nothing, so a minimal backend overrides :meth:`voices`,
    :meth:`resolve` and :meth:`job`."""

    name: str = ""
    """Registry name: what ``LoadSpec.backend``, a CSV row's ``backend`` column and ``health`` call it."""
    label: str = ""
    """A readable name (``Piper``); also the attribution Wyoming shows."""
    url: str = ""
    """Where the engine comes from (Wyoming's attribution)."""
    engine: str = ""
    """``package.module:Class`` of the engine side, imported only in workers."""
    generic_models: tuple[str, ...] = ()
    """``model`` values that mean "this backend" but pick no voice (``xtts``); the first is listed in ``/v1/models``."""
    claim_priority: int = 0
    """Batch rows without a ``backend`` column are offered to :meth:`claims_row` of higher priorities first
    (equal ones in registry order): a converter's rows (with a ``source``) before a cloned voice's."""
    catch_all: bool = False
    """It answers every model name it is asked about (an error for names it does not know): model lookups
    (``models download``, ``models path``) ask it after every other backend."""
    takes_text: bool = True
    """Its jobs speak a text (a batch row without one is refused); a converter's rows name a recording instead."""
    clones: bool = False
    """Its voices are made from reference recordings (:meth:`enroll_job`) and kept as voice profiles: ``voices add``,
    ``POST /v1/voices``, the page's Clone and Voices tabs, and voice conversion's targets are its voices."""
    converts: bool = False
    """It re-speaks recordings in another voice (voice conversion, :meth:`conversion_jobs`): ``convert``,
    ``POST /v1/audio/conversions``, the page's Convert tab and batch rows with a ``source``."""
    row_models: bool = False
    """A batch row's ``model`` column (and a run's default ``--model``, the page's "voice for rows without one") names one
    of its voice files; remote rows may name there only the voice files the server offers."""
    take_chars: int = 400
    """Most characters of text one job should hold for the engine to speak it well: long-form clients (``book``) cut
    their text into takes of at most this many, at sentence, then clause, then word boundaries."""

    # --- voices -----------------------------------------------------------------------------

    def voices(self, scope: Scope) -> list[Voice]:
        """Every voice a request may name."""
        return []

    def find(self, scope: Scope, voice_id: str) -> Optional[Voice]:
        """The voice called ``voice_id``, or ``None`` (override when listing everything is slow)."""
        return next((voice for voice in self.voices(scope) if voice.id == voice_id), None)

    def resolve(self, scope: Scope, voice: Voice, speaker: Optional[str], language: Optional[str]) -> Speech:
        """Everything needed to speak with ``voice`` (one of :meth:`voices`); raise :class:`InputError` for a
        speaker or language it cannot do."""
        raise InputError(f"the {self.label or self.name} backend offers no voices to speak with")

    def job(self, speech: Speech, text: str, speed: float, output: str) -> SynthesisJob:
        """A job speaking ``text`` with a resolved voice at ``speed`` (> 1 faster) into ``output`` (``-``: the handle)."""
        raise InputError(f"the {self.label or self.name} backend cannot make speech jobs")

    def adjust(self, speech: Speech, variation: Optional[float], temperature: Optional[float]) -> Speech:
        """Apply the web page's sliders: ``variation`` (how much delivery varies) and ``temperature`` (sampling)."""
        return speech

    # --- making voices (backends that :attr:`clones`) ---------------------------------------------

    def enroll_language(self, scope: Scope, language: str) -> str:
        """The language a new voice is enrolled with, as this backend writes it (``""``: its configured default);
        raise :class:`InputError` for one it cannot speak."""
        return language

    def enroll_job(self, scope: Scope, references: list[str], label: str) -> SynthesisJob:
        """A job whose value is a new voice's conditioning, made from the recordings ``references`` (checked here);
        :func:`demod_voice.voices.making.save_enrolled` writes that value as a voice profile."""
        raise InputError(f"the {self.label or self.name} backend does not make voices from recordings")

    def conversion_jobs(self, scope: Scope, sources: list[str], outputs: list[str], references: list[str],
                        voice: Optional[str], progress: bool = False) -> list[SynthesisJob]:
        """One job per source recording (checked here), re-speaking it into ``output`` (``-``: the handle) in the voice
        of the recordings ``references`` or of the voice profile ``voice`` (one of the two)."""
        raise InputError(f"the {self.label or self.name} backend does not convert recordings")

    # --- batch rows ---------------------------------------------------------------------------

    def claims_row(self, values: dict[str, str], config: Config) -> bool:
        """Whether a row without a ``backend`` column is this backend's (XTTS: it names a reference); rows no
        backend claims go to ``piper.backend``."""
        return False

    def row_job(self, row: RowInput) -> SynthesisJob:
        """The job for one ``batch`` row; raise :class:`InputError` naming what is wrong with it."""
        raise InputError(f"the {self.name} backend takes no batch rows")

    # --- models and health --------------------------------------------------------------------

    def models(self, scope: Scope) -> list[ModelEntry]:
        """Installed models, for ``models list``."""
        return []

    def download(self, scope: Scope, name: str, progress: bool) -> Optional[Path]:
        """Download model ``name`` if it is this backend's (``None``: not its name)."""
        return None

    def model_path(self, scope: Scope, name: str) -> Optional[Path]:
        """Where installed model ``name`` is, if it is this backend's (``None``: not its name)."""
        return None

    def forget_cache(self, scope: Scope, name: str) -> list[Path]:
        """Remove what this backend keeps in the cache for installed model ``name`` (prepared or optimised graphs) and
        return it: ``models remove`` calls it before the model's files go (the entries may be keyed by them)."""
        return []

    def quantize(self, scope: Scope, name: str, output: Optional[Path], method: str, text: Optional[str]) -> Optional[Quantized]:
        """Write a smaller (INT8) copy of model ``name`` to ``output`` (``None``: beside it) if the model is this backend's
        (``None``: not its name); ``text``: calibration text in the voice's language (``None``: the backend's own)."""
        return None

    def checks(self, config: Config) -> list[Check]:
        """What ``health`` checks for this backend (engine imports go through :func:`demod_voice.checks.probe`)."""
        return []
