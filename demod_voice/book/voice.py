"""Which voice reads the book, as one checked job that every take copies with its own text.

The voice is checked once, by the backend's own request side (``make_job``), before any take is
planned; each take's job is that job with its text and output replaced. Pauses between sentences
are the book's (its takes are trimmed and spaced at mastering), so the backend adds none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.backends.piper.request import PiperRequest
from demod_voice.backends.piper.request import make_job as piper_job
from demod_voice.backends.xtts.request import XttsRequest
from demod_voice.backends.xtts.request import make_job as xtts_job
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import InputError
from demod_voice.models.registry import is_installed, looks_like_name, resolve_piper_model
from demod_voice.voices.profiles import load_named, profiles_dir

PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class VoiceChoice:
    """How the CLI or the server named the voice."""

    voice: Optional[str] = None
    """A Piper voice (an ``.onnx`` path or an installed name) or a saved XTTS voice profile."""
    references: tuple[str, ...] = ()
    """Reference recordings: an XTTS clone."""
    speaker: Optional[str] = None
    """Speaker of a multi-speaker Piper voice."""
    language: Optional[str] = None
    """XTTS language (a Piper voice speaks its own)."""
    backend: Optional[str] = None
    """``piper``, ``tinygrad`` or ``xtts``; ``None``: from the voice."""


def template_job(choice: VoiceChoice, config: Config, progress: bool = False) -> SynthesisJob:
    """The checked job every take copies; :class:`InputError` when the voice cannot be used."""
    cache = cache_root(config)
    backend = choice.backend or _guess_backend(choice, cache)
    if backend == "xtts":
        settings = dataclasses.replace(config.xtts, sentence_silence=0.0)
        if choice.language:
            settings = dataclasses.replace(settings, language=choice.language)
        profile = load_named(cache, choice.voice) if choice.voice and not choice.references else None
        refs = tuple(str(Path(r).expanduser().absolute()) for r in choice.references)
        return xtts_job(XttsRequest(refs, PLACEHOLDER, PLACEHOLDER, settings, str(cache), config.device, profile, stream=False))
    if not choice.voice:
        raise InputError("name the voice that reads the book: --voice VOICE (a Piper voice, or a saved XTTS voice), "
                         "or --reference FILE to clone one")
    if choice.language:
        raise InputError("--language is for XTTS voices; a Piper voice speaks its own language")
    model = choice.voice
    path = Path(model).expanduser()
    if not path.exists() and looks_like_name(model):
        model = resolve_piper_model(model, config.models.catalog_url, cache, config.models.auto_download, progress)
    settings = dataclasses.replace(config.piper, sentence_silence=0.0)
    return piper_job(PiperRequest(str(Path(model).expanduser()), PLACEHOLDER, PLACEHOLDER, settings, config.device, str(cache),
                                  speaker=choice.speaker, backend=backend))


def _guess_backend(choice: VoiceChoice, cache: Path) -> str:
    if choice.references:
        return "xtts"
    voice = choice.voice or ""
    if voice and not voice.endswith(".onnx") and not is_installed(voice, cache) and (profiles_dir(cache) / f"{voice}.npz").exists():
        return "xtts"
    return "piper"


def take_job(template: SynthesisJob, text: str, output: str, label: str) -> SynthesisJob:
    """A take's job: the template with its own words and output."""
    return dataclasses.replace(template, text=text, output=output, label=label)


def language_of(template: SynthesisJob, book_language: str) -> str:
    """The language the takes are spoken in: XTTS's setting, else the book's, else English."""
    language = getattr(template.options, "language", None)
    return (language or book_language or "en").split("-")[0].lower()
