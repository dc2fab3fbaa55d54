"""Which voice reads the book, found through the backends' registry like every front door finds one,
checked once before any take is planned; each take's job is then made by the backend's own request
side with the take's words and file.

A named voice (a Piper voice by path or installed name, a saved voice profile, a plugin's voice)
is resolved once (:meth:`RequestSide.resolve`) and every take is a job of it
(:meth:`RequestSide.job`), as a speech request is; reference recordings to clone from are a row
(:meth:`RequestSide.row_job`), as in ``batch``. Either way the request side reads the take's
words (:mod:`demod_voice.speech_text`: normalisation, lexicons) once, when it makes the job.
Pauses between sentences are the book's (its takes are trimmed and spaced at mastering), so the
backend adds none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import RequestSide, RowInput, Scope, Speech, Voice, WouldFetch
from demod_voice.config import Config, PiperSettings, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import InputError
from demod_voice.logs import printable
from demod_voice.models.registry import is_installed, looks_like_name, resolve_piper_model
from demod_voice.speech_text.prepare import TextOptions
from demod_voice.voices.profiles import profiles_dir

PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class VoiceChoice:
    """How the CLI or the server named the voice."""

    voice: Optional[str] = None
    """A voice by name (an installed Piper voice, a saved voice profile, a plugin's voice) or a Piper ``.onnx`` path."""
    references: tuple[str, ...] = ()
    """Reference recordings to clone from (a backend that claims rows with a ``reference``: XTTS)."""
    speaker: Optional[str] = None
    """Speaker of a multi-speaker voice."""
    language: Optional[str] = None
    """The language a cloned voice speaks (a Piper voice speaks its own)."""
    backend: Optional[str] = None
    """A registered backend's name; ``None``: the first that offers the voice."""


@dataclass(frozen=True)
class Reader:
    """The voice that reads a book: its backend's request side and how a take's job is made."""

    side: RequestSide
    """The backend's request side."""
    make: Callable[[str, str], SynthesisJob]
    """``(words, output file) -> job``, by the request side (which prepares the words, once)."""
    template: SynthesisJob
    """The job for a placeholder text: what every take shares (the model, the options)."""
    name: str = ""
    """The voice in words, for messages ("the voice 'en_US-joe-medium'")."""
    language: str = ""
    """The language the takes are spoken in ("": not known before they are made)."""
    languages: tuple[str, ...] = ()
    """Every language the voice can speak (empty: only :attr:`language`)."""
    picks_language: bool = False
    """The language is chosen with ``--language`` (a voice cloned from recordings), not the voice's own."""

    @property
    def take_chars(self) -> int:
        """Most characters of one take: what the backend's request side says it speaks well."""
        return self.side.take_chars

    def job(self, text: str, output: str, label: str) -> SynthesisJob:
        """A take's job: its own words (read by the backend) into its own file."""
        return dataclasses.replace(self.make(text, output), label=label)


def reader_for(choice: VoiceChoice, config: Config, reading: Optional[TextOptions] = None, progress: bool = False,
               fetch: bool = True) -> Reader:
    """The checked voice every take is read with; :class:`InputError` when the voice cannot be used. Without ``fetch``
    (a dry run) a voice that would be downloaded first raises :class:`WouldFetch` instead."""
    reading = reading or TextOptions()
    cache = cache_root(config)
    config = _for_takes(config, choice)
    if choice.references:
        return _cloned(choice, config, cache, reading, progress, fetch)
    if not choice.voice:
        raise InputError("name the voice that reads the book: --voice VOICE (a Piper voice, or a saved XTTS voice), "
                         "or --reference FILE to clone one")
    resolved, voice = _resolved(choice, config, cache, progress, fetch)
    speech = dataclasses.replace(resolved, reading=reading)

    def make(text: str, output: str) -> SynthesisJob:
        return speech.side.job(speech, text, 1.0, output)

    template = make(PLACEHOLDER, PLACEHOLDER)
    spoken = getattr(template.options, "language", None) or voice.language  # a cloned voice's own, else the voice's
    return Reader(speech.side, make, template, f"the voice '{voice.id}'", spoken, voice.spoken())


def _for_takes(config: Config, choice: VoiceChoice) -> Config:
    """The settings takes are made with: no pause after a take (mastering spaces them); XTTS in batches of sentences,
    not token streaming (nobody listens to a take as it is made); Piper voices on the engine asked for."""
    piper = dataclasses.replace(config.piper, sentence_silence=0.0)
    if choice.backend in piper_engines():
        piper = dataclasses.replace(piper, backend=choice.backend)
    return dataclasses.replace(config, piper=piper, xtts=dataclasses.replace(config.xtts, sentence_silence=0.0),
                               serve=dataclasses.replace(config.serve, xtts_token_streaming=False))


def piper_engines() -> tuple[str, ...]:
    """The engines ``piper.backend`` may choose: the Piper side offers those voices, the setting picks what runs them."""
    return tuple(next(f for f in dataclasses.fields(PiperSettings) if f.name == "backend").metadata["choices"])


def _resolved(choice: VoiceChoice, config: Config, cache: Path, progress: bool, fetch: bool) -> tuple[Speech, Voice]:
    """The voice as the first request side that offers it resolves it (a Piper ``.onnx`` path is offered as a file)."""
    name = str(choice.voice)
    path = Path(name).expanduser()
    if not path.exists() and looks_like_name(name) and not _offered(choice, config, cache, (), name):
        if not fetch and config.models.auto_download and not is_installed(name, cache):
            raise WouldFetch(name)
        path = Path(resolve_piper_model(name, config.models.catalog_url, cache, config.models.auto_download, progress))
    files = (str(path.absolute()),) if path.exists() else ()
    voice_id = path.name[: -len(".onnx")] if files and path.name.endswith(".onnx") else name
    found = _offered(choice, config, cache, files, voice_id)
    if found is None:
        raise InputError(f"there is no voice '{name}': name an installed Piper voice ('demod-voice models list'), a saved "
                         "voice ('demod-voice voices list') or a Piper .onnx file")
    side, voice, scope = found
    if choice.language and voice.by_model:
        raise InputError("--language is for cloned (XTTS) voices; a Piper voice speaks its own language")
    return heard_speaker(side.resolve(scope, voice, choice.speaker, choice.language), voice.id, choice.speaker), voice


def heard_speaker(speech: Speech, voice_id: str, speaker: Optional[str]) -> Speech:
    """``speech`` when the speaker asked for is the one it speaks with; :class:`InputError` as ``piper-infer`` gives it
    when the voice has a single speaker. A request side drops a speaker a voice of one has no use for (OpenAI clients
    always send a voice name), and a book read with ``-s 7`` went on in the one voice there is, without a word. Speaker 0
    is that one voice's own, as ``piper-infer -s 0`` and a batch row's ``0`` take it (``book -s 0`` was refused)."""
    if speaker and speaker not in (voice_id, "0") and speech.voice_id == voice_id:
        raise InputError(f"the voice '{voice_id}' has a single speaker: leave the speaker out (it was '{speaker}')")
    return speech


def _offered(choice: VoiceChoice, config: Config, cache: Path, files: tuple[str, ...], voice_id: str) -> Optional[tuple]:
    """(side, voice, scope) of the first request side offering ``voice_id`` (only the one named by ``--backend``)."""
    scope = Scope(config, cache, profiles_dir(cache), voice_paths=files)
    named = choice.backend and choice.backend not in piper_engines()
    for side in [registry.request_side(str(choice.backend))] if named else registry.request_sides():
        voice = side.find(scope, voice_id)
        if voice is not None:
            return side, voice, scope
    return None


def _cloned(choice: VoiceChoice, config: Config, cache: Path, reading: TextOptions, progress: bool, fetch: bool) -> Reader:
    """A voice cloned from reference recordings: each take a row of the backend that claims rows with references."""
    values = {"reference": "|".join(str(Path(r).expanduser().absolute()) for r in choice.references)}
    if choice.language:
        values["language"] = choice.language
    sides = [registry.request_side(choice.backend)] if choice.backend else sorted(registry.request_sides(), key=lambda s: -s.claim_priority)
    side = next((s for s in sides if s.claims_row(values, config)), None)
    if side is None:
        who = f"the {choice.backend} backend never" if choice.backend else "no installed backend"
        raise InputError(f"{who} clones a voice from reference recordings; --reference is for XTTS (pip install 'demod-voice[xtts]')")
    row = RowInput(values, PLACEHOLDER, Path(PLACEHOLDER), Path.cwd(), config, cache, dry_run=not fetch, progress=progress,
                   reading=reading)

    def make(text: str, output: str) -> SynthesisJob:
        return side.row_job(dataclasses.replace(row, text=text, output=Path(output)))

    template = make(PLACEHOLDER, PLACEHOLDER)
    return Reader(side, make, template, "the cloned voice", getattr(template.options, "language", None) or "", picks_language=True)


def language_of(template: SynthesisJob, book_language: str) -> str:
    """The language the takes are spoken in: the job's own (a cloned voice's), else the book's, else English."""
    language = getattr(template.options, "language", None)
    return (language or book_language or "en").split("-")[0].lower()


_SAME_LANGUAGE = {"nb": "no", "nn": "no"}
"""Codes of one language that voices and books write differently (Norwegian Bokmål and Nynorsk, Piper's ``no``)."""
_NO_LANGUAGE = {"und", "mul", "zxx"}
"""Language tags that name no language (undetermined, several, no linguistic content)."""


def _primary(code: str) -> str:
    primary = code.replace("_", "-").split("-")[0].lower()
    return _SAME_LANGUAGE.get(primary, primary)


def language_trouble(reader: Reader, book_language: str) -> str:
    """Why ``reader`` would read a book in ``book_language`` by another language's rules ("" for none known): a French
    book read by an English voice was a night of words no listener could follow, with nothing said about it."""
    book, spoken = _primary(book_language), _primary(reader.language)
    if not book or not spoken or book == spoken or book in _NO_LANGUAGE:
        return ""
    named = book in {_primary(code) for code in reader.languages}
    # the book's metadata is a client's words on a server: a YAML escape put a terminal's escape sequence in its log
    written, book = printable(book_language[:40]), printable(book[:40])
    said = f"the book is in '{written}' (by its metadata), but {reader.name} reads '{reader.language}'"
    if reader.picks_language or named:
        return f"{said}: add --language {book}"
    return (f"{said}, and would say every word by that language's rules: choose a voice that speaks '{book}' "
            "('demod-voice voices list'; a cloned voice: --language), or correct the book's language if it is wrong")
