"""Which voice reads the book: one typed request, checked once before any take is planned, from which
the backend's own request side (``make_job``) makes each take's job with the take's words and file.

Pauses between sentences are the book's (its takes are trimmed and spaced at mastering), so the
backend adds none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.piper.request import PiperRequest
from demod_voice.backends.piper.request import make_job as piper_job
from demod_voice.backends.xtts.request import XttsRequest
from demod_voice.backends.xtts.request import make_job as xtts_job
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import InputError
from demod_voice.models.registry import is_installed, looks_like_name, resolve_piper_model
from demod_voice.speech_text.prepare import TextOptions
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


@dataclass(frozen=True)
class Reader:
    """The voice that reads a book: the backend's typed request with an empty text, checked once, and the backend's
    own ``make_job`` that turns it into each take's job. ``make_job`` reads the take's words as the voice should say
    them (:mod:`demod_voice.speech_text`: normalisation, lexicons), so a take's text is prepared exactly once."""

    request: Any
    """A :class:`PiperRequest` or :class:`XttsRequest` (its ``reading`` says how texts are read)."""
    make: Callable[[Any], SynthesisJob]
    """The backend's ``make_job``."""
    template: SynthesisJob
    """The job for a placeholder text: what every take shares (the model, the options)."""

    @property
    def take_chars(self) -> int:
        """Most characters of one take: what the backend's request side says it speaks well."""
        return registry.request_side(self.template.spec.backend).take_chars

    def job(self, text: str, output: str, label: str) -> SynthesisJob:
        """A take's job: its own words (read by the backend) into its own file."""
        return dataclasses.replace(self.make(dataclasses.replace(self.request, text=text, output=output)), label=label)


def reader_for(choice: VoiceChoice, config: Config, reading: Optional[TextOptions] = None, progress: bool = False) -> Reader:
    """The checked voice every take is read with; :class:`InputError` when the voice cannot be used."""
    cache = cache_root(config)
    reading = reading or TextOptions()
    backend = choice.backend or _guess_backend(choice, cache)
    if backend == "xtts":
        settings = dataclasses.replace(config.xtts, sentence_silence=0.0)
        if choice.language:
            settings = dataclasses.replace(settings, language=choice.language)
        profile = load_named(cache, choice.voice) if choice.voice and not choice.references else None
        refs = tuple(str(Path(r).expanduser().absolute()) for r in choice.references)
        request: Any = XttsRequest(refs, PLACEHOLDER, PLACEHOLDER, settings, str(cache), config.device, profile, stream=False,
                                   reading=reading)
        return Reader(request, xtts_job, xtts_job(request))
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
    request = PiperRequest(str(Path(model).expanduser().absolute()), PLACEHOLDER, PLACEHOLDER, settings, config.device, str(cache),
                           speaker=choice.speaker, backend=backend, reading=reading)
    return Reader(request, piper_job, piper_job(request))


def _guess_backend(choice: VoiceChoice, cache: Path) -> str:
    if choice.references:
        return "xtts"
    voice = choice.voice or ""
    if voice and not voice.endswith(".onnx") and not is_installed(voice, cache) and (profiles_dir(cache) / f"{voice}.npz").exists():
        return "xtts"
    return "piper"


def language_of(template: SynthesisJob, book_language: str) -> str:
    """The language the takes are spoken in: XTTS's setting, else the book's, else English."""
    language = getattr(template.options, "language", None)
    return (language or book_language or "en").split("-")[0].lower()
