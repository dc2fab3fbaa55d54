"""XTTS-v2's request side (parent): language, references and model folder are checked, and
the job built, with no engine import."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.config import XTTS_LANGUAGES, XttsSettings
from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob, files_version
from demod_voice.errors import DependencyError, InputError
from demod_voice.models.registry import resolve_xtts
from demod_voice.paths import not_an_input
from demod_voice.speech_text.prepare import TextOptions, for_job
from demod_voice.voices.profiles import Profile
from demod_voice.voices.references import Reference, check_references

SAMPLE_RATE = 24000


@dataclass(frozen=True)
class XttsOptions:
    """Per-job settings for the worker."""

    references: tuple[Reference, ...]
    """Checked reference recordings (empty when a profile is used)."""
    language: str
    """One of the 17 XTTS languages."""
    settings: XttsSettings
    """Sampling parameters, speed, silence, precision."""
    stream: bool = False
    """Use XTTS's streaming inference (for ``--output -``)."""
    profile: Optional[Profile] = None
    """A saved voice used instead of references."""


@dataclass(frozen=True)
class XttsRequest:
    """An ``xtts-zero-shot`` request as typed values, built by the CLI."""

    references: tuple[str, ...]
    """Reference audio paths."""
    text: str
    """Text to speak."""
    output: str
    """Checked output target (absolute path or ``-``)."""
    settings: XttsSettings
    """Effective settings (flags over config)."""
    cache_dir: str
    """Cache folder (voice latents, the released model)."""
    device: str = "cpu"
    """Requested device."""
    profile: Optional[Profile] = None
    """A saved voice profile (then ``references`` may be empty)."""
    stream: Optional[bool] = None
    """Token-level streaming (earliest first audio; streamed jobs handed over together still share
    the GPT's steps), instead of whole sentences made in batches; ``None``: stream when writing to stdout."""
    reading: TextOptions = TextOptions()
    """How the text is read: normalisation, lexicon (respellings), SSML (:mod:`demod_voice.speech_text`)."""
    version: tuple[int, ...] = ()
    """The checkpoint folder's version a server resolved the voice with (``LoadSpec.version``): every job of one answer
    runs on it, even if the checkpoint is replaced meanwhile; ``()``: read now."""


@dataclass(frozen=True)
class EnrollOptions:
    """An enrollment job: the worker computes the voice's conditioning and gives it back as the
    job's value (:func:`make_enroll_job`; its keys: :data:`demod_voice.voices.making.ENROLL_VALUE_KEYS`), with what
    conversion needs (the references' audio)."""

    references: tuple[Reference, ...]
    """Checked reference recordings."""
    keep_seconds: float = 30.0
    """Seconds of reference audio (all references together) kept in the result for voice conversion."""


def make_enroll_job(references: tuple[str, ...] | list[str], settings: XttsSettings, cache_dir: str, device: str = "cpu",
                    label: str = "enrollment") -> SynthesisJob:
    """Check the references and the model; return a job whose result value is the voice's
    conditioning (no audio is made). Reference warnings are logged here."""
    checked = check_references(tuple(references), settings.max_reference_seconds)
    if not checked:
        raise InputError("give at least one reference recording to enroll a voice")
    folder, fetch = resolve_xtts(settings.model_dir, Path(cache_dir), settings.accept_license)
    spec = LoadSpec("xtts", str(folder), device, cache_dir=cache_dir, fetch=fetch, version=checkpoint_version(folder, fetch))
    return SynthesisJob(spec=spec, text="(enroll)", output=STDOUT, options=EnrollOptions(checked), label=label)


def checkpoint_version(folder: Path, fetch: Optional[str]) -> tuple[int, ...]:
    """The checkpoint folder's version (:func:`~demod_voice.engine.jobs.files_version`: its files, one ``stat`` each);
    ``()`` for one still to be downloaded (its worker fetches it)."""
    if fetch:
        return ()
    try:
        return files_version(str(folder))
    except OSError:
        raise InputError("the XTTS model's files were removed or replaced while they were read; try again") from None


def normalise_language(language: str) -> str:
    """``EN`` -> ``en``, ``zh`` -> ``zh-cn``, ``en-US``/``pt_BR`` -> ``en``/``pt`` (as the server already took them);
    anything unsupported raises :class:`InputError` listing the 17, with the code meant when it was a language's name
    (``english``) or three-letter code (``deu``)."""
    code = language.strip().lower().replace("_", "-")
    if code not in XTTS_LANGUAGES:
        code = code.split("-")[0]
    code = "zh-cn" if code == "zh" else code
    if code not in XTTS_LANGUAGES:
        meant = LANGUAGE_NAMES.get(code)
        hint = f"did you mean '{meant}'? " if meant else ""
        raise InputError(f"XTTS cannot speak language '{language}'; {hint}use one of: {', '.join(XTTS_LANGUAGES)}")
    return code


LANGUAGE_NAMES = {
    **dict.fromkeys(("english", "eng"), "en"), **dict.fromkeys(("spanish", "español", "espanol", "spa"), "es"),
    **dict.fromkeys(("french", "français", "francais", "fra", "fre"), "fr"), **dict.fromkeys(("german", "deutsch", "deu", "ger"), "de"),
    **dict.fromkeys(("italian", "italiano", "ita"), "it"), **dict.fromkeys(("portuguese", "português", "portugues", "por"), "pt"),
    **dict.fromkeys(("polish", "polski", "pol"), "pl"), **dict.fromkeys(("turkish", "türkçe", "turkce", "tur"), "tr"),
    **dict.fromkeys(("russian", "rus"), "ru"), **dict.fromkeys(("dutch", "nederlands", "nld", "dut"), "nl"),
    **dict.fromkeys(("czech", "čeština", "cestina", "ces", "cze"), "cs"), **dict.fromkeys(("arabic", "ara"), "ar"),
    **dict.fromkeys(("chinese", "mandarin", "zho", "chi", "cmn"), "zh-cn"), **dict.fromkeys(("japanese", "jpn"), "ja"),
    **dict.fromkeys(("hungarian", "magyar", "hun"), "hu"), **dict.fromkeys(("korean", "kor"), "ko"), **dict.fromkeys(("hindi", "hin"), "hi"),
}
"""A language's name (in English, and in its own words where written in Latin letters) or ISO 639-2/3 code -> the code meant."""


LANGUAGE_PACKAGES = {"ja": ("Japanese", ("cutlet", "fugashi", "unidic_lite"), "ja"), "zh-cn": ("Chinese", ("pypinyin",), "zh")}
"""Languages coqui-tts speaks only with packages of its own extras (imported when the first sentence is tokenised):
language code -> (its name, the modules, coqui-tts's extra that brings them)."""


def language_missing(code: str) -> list[str]:
    """The modules XTTS needs to speak ``code`` that are not installed here (none for most languages)."""
    import importlib.util

    return [module for module in LANGUAGE_PACKAGES.get(code, ("", (), ""))[1] if importlib.util.find_spec(module) is None]


@functools.lru_cache(maxsize=1)
def ready_languages() -> tuple[str, ...]:
    """The languages XTTS can speak on this machine (all 17 but those whose packages are missing), as a server offers
    them: Wyoming's ``describe`` offered Japanese and Chinese, which then failed for want of coqui-tts's extras."""
    return tuple(code for code in XTTS_LANGUAGES if not language_missing(code))


def language_install(code: str) -> str:
    """The command that installs what XTTS needs to speak ``code`` (:data:`LANGUAGE_PACKAGES`)."""
    return f"pip install 'coqui-tts[{LANGUAGE_PACKAGES[code][2]}]'"


def language_ready(code: str) -> str:
    """``code`` when XTTS can speak it here; a :class:`DependencyError` (exit 4, 503 on a server) naming what to install
    when it needs a package that is missing (Japanese and Chinese failed at the first sentence with a raw import error)."""
    missing = language_missing(code)
    if missing:
        raise DependencyError(f"XTTS needs {', '.join(missing)} to speak {LANGUAGE_PACKAGES[code][0]}, not installed on this "
                              f"machine: {language_install(code)}")
    return code


def make_job(request: XttsRequest) -> SynthesisJob:
    """Check language, references and model; return the job. Reference warnings are logged here."""
    language = language_ready(normalise_language(request.settings.language))
    references = check_references(request.references, request.settings.max_reference_seconds)
    if not references and request.profile is None:
        raise InputError("give at least one reference recording, or --voice NAME for a saved voice profile")
    not_an_input(request.output, request.references)  # 'xtts-zero-shot bob.wav TEXT -o bob.wav' replaced the reference
    settings = request.settings
    folder, fetch = resolve_xtts(settings.model_dir, Path(request.cache_dir), settings.accept_license)
    spec = LoadSpec("xtts", str(folder), request.device, cache_dir=request.cache_dir, fetch=fetch,
                    version=request.version or checkpoint_version(folder, fetch))
    stream = request.output == STDOUT if request.stream is None else request.stream
    options = XttsOptions(references, language, settings, stream=stream, profile=request.profile)
    # Jobs with the same sampling settings may be generated as one batch, their sentences together,
    # whatever their voices and languages (each sentence is conditioned on its own voice); streamed
    # jobs too, with streamed ones: their chunks come interleaved as the batch makes them (XttsBackend.interleaved).
    shared = dataclasses.replace(settings, language="")
    together = hashlib.sha256(repr((shared, stream)).encode()).hexdigest()
    # XTTS reads text: lexicon words become their respellings; <lang> may switch to any of its languages
    text = for_job(request.text, language, request.reading, reads_phonemes=False, languages=XTTS_LANGUAGES)
    return SynthesisJob(spec=spec, text=text.text, output=request.output, options=options, segments=text.segments,
                        together=together if text.segments is None else None, together_limit=settings.batch_sentences,
                        joins=stream and text.segments is None)


