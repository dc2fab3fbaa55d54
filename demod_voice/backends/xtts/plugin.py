"""XTTS-v2's registration: its request side (cloned voices, jobs, batch rows, the released model), built on :mod:`.request`.

Its voices are saved voice profiles (``voices add``, ``POST /v1/voices``); each speaks all 17
XTTS languages, its own (the one it was enrolled with) first.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Optional

from demod_voice.backends.plugin import ModelEntry, RequestSide, RowInput, Scope, Speech, Voice
from demod_voice.backends.xtts.checks import xtts_checks
from demod_voice.backends.xtts.request import (
    SAMPLE_RATE,
    XttsRequest,
    language_ready,
    make_enroll_job,
    make_job,
    normalise_language,
    ready_languages,
)
from demod_voice.checks import Check
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import STDOUT, SynthesisJob
from demod_voice.errors import InputError, ModelMissing
from demod_voice.models.registry import XTTS_NAMES, missing_xtts_files, released_xtts_dir, resolve_xtts
from demod_voice.voices.profiles import NAME, Profile, load_named, read_installed


def spoken_language(code: str) -> str:
    """A language as a client may write it (``de``, ``de_DE``, ``zh-CN``) as XTTS names it; :class:`InputError` if XTTS lacks it."""
    try:
        return normalise_language(code.replace("_", "-"))
    except InputError:
        family = code.replace("_", "-").split("-")[0]
        try:
            return normalise_language(family)
        except InputError as err:
            raise InputError(f"a cloned voice cannot speak '{code}': {err}") from None


class XttsSide(RequestSide):
    """Cloned voices on XTTS-v2 (coqui-tts)."""

    name = "xtts"
    label = "XTTS-v2 (coqui)"
    url = "https://github.com/idiap/coqui-ai-TTS"
    engine = "demod_voice.backends.xtts.engine:XttsBackend"
    generic_models = ("xtts", "xtts_v2")
    clones = True
    take_chars = 240
    """XTTS-v2's English limit is 250 characters (its tokenizer warns past it, and the GPT garbles long inputs)."""

    def __init__(self) -> None:
        self._profiles: dict[Path, tuple[tuple[int, int], Profile]] = {}
        self._lock = threading.Lock()

    # --- voices -----------------------------------------------------------------------------

    def voices(self, scope: Scope) -> list[Voice]:
        if not scope.profiles.is_dir():
            return []
        names = (path.name[: -len(".npz")] for path in sorted(scope.profiles.glob("*.npz")))
        return [self._voice(scope, name) for name in names if NAME.match(name) and self._readable(scope, name)]

    def _readable(self, scope: Scope, name: str) -> bool:
        """Whether profile ``name`` reads (a damaged one is not offered; naming it is answered as damaged)."""
        try:
            return self.profile(scope, name) is not None
        except ModelMissing:
            return False

    def find(self, scope: Scope, voice_id: str) -> Optional[Voice]:
        if not NAME.match(voice_id) or self.profile(scope, voice_id) is None:
            return None
        return self._voice(scope, voice_id)

    def _voice(self, scope: Scope, name: str) -> Voice:
        own = self.voice_language(scope, name)
        languages = (own, *(code for code in ready_languages() if code != own))
        return Voice(name, name, self.name, language=own, sample_rate=SAMPLE_RATE, languages=languages,
                     speaker_picks_language=True, kind_label="cloned voice, XTTS", describe=f"— cloned voice (XTTS, {own})")

    def voice_language(self, scope: Scope, name: str) -> str:
        """The language a profile was enrolled with (the server's side-car, else the one in the file), else
        ``xtts.language``. (The command line and a server's profile without a side-car spoke ``xtts.language``: a French
        voice downloaded from a server and imported spoke English there.)"""
        return self._side_car_language(scope, name) or self._own_language(scope, name) or scope.config.xtts.language

    @staticmethod
    def _side_car_language(scope: Scope, name: str) -> str:
        if scope.data_dir is None:
            return ""
        side = scope.data_dir / "voices" / f"{name}.json"
        try:
            return str(json.loads(side.read_text(encoding="utf-8")).get("language") or "")
        except (OSError, ValueError, AttributeError):
            return ""

    def _own_language(self, scope: Scope, name: str) -> str:
        try:
            profile = self.profile(scope, name) if NAME.match(name) else None
        except ModelMissing:  # a damaged profile: refused when it is used, in its own words
            return ""
        return profile.language if profile is not None else ""

    def profile(self, scope: Scope, name: str) -> Optional[Profile]:
        """Profile ``name``, or ``None`` when there is none (kept until its file changes)."""
        path = scope.profiles / f"{name}.npz"
        try:
            stat = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._profiles.pop(path, None)
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._profiles.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        profile = read_installed(path)
        with self._lock:
            self._profiles[path] = (stamp, profile)
        return profile

    def resolve(self, scope: Scope, voice: Voice, speaker: Optional[str], language: Optional[str]) -> Speech:
        profile = self.profile(scope, voice.id)
        if profile is None:
            raise InputError(f"there is no voice profile '{voice.id}' (GET /v1/voices lists them)")
        config = scope.config
        spoken = spoken_language(language) if language else self.voice_language(scope, voice.id)
        settings = dataclasses.replace(config.xtts, language=spoken)
        request = XttsRequest(references=(), text="", output=STDOUT, settings=settings, cache_dir=str(scope.cache),
                              device=config.device, profile=profile, stream=config.serve.xtts_token_streaming)
        spec = make_job(dataclasses.replace(request, text="a")).spec  # a word: punctuation alone is refused as nothing to say
        request = dataclasses.replace(request, version=spec.version)  # the answer's every job on the checkpoint resolved now
        return Speech(self, voice.id, spec, SAMPLE_RATE, request)

    def job(self, speech: Speech, text: str, speed: float, output: str) -> SynthesisJob:
        request: XttsRequest = speech.request
        settings = request.settings
        if speed != 1.0:
            settings = dataclasses.replace(settings, speed=settings.speed * speed)
        return make_job(dataclasses.replace(request, text=text, output=output, settings=settings, reading=speech.reading))

    def adjust(self, speech: Speech, variation: Optional[float], temperature: Optional[float]) -> Speech:
        if temperature is None:
            return speech
        request: XttsRequest = speech.request
        settings = dataclasses.replace(request.settings, temperature=float(temperature))
        return dataclasses.replace(speech, request=dataclasses.replace(request, settings=settings))

    # --- making voices ----------------------------------------------------------------------------

    def enroll_language(self, scope: Scope, language: str) -> str:
        return language_ready(normalise_language(language or scope.config.xtts.language))

    def enroll_job(self, scope: Scope, references: list[str], label: str) -> SynthesisJob:
        config = scope.config
        return make_enroll_job(references, config.xtts, str(scope.cache), config.device, label=label)

    # --- batch rows ---------------------------------------------------------------------------

    def claims_row(self, values: dict[str, str], config: Config) -> bool:
        return bool(values.get("reference") or values.get("voice"))

    def row_job(self, row: RowInput) -> SynthesisJob:
        v = row.values
        references = row.listed or tuple(r.strip() for r in v.get("reference", "").split("|") if r.strip())
        if not references and not v.get("voice"):
            raise InputError("give at least one reference recording ('reference' column, REFERENCE arguments), "
                             "or a saved voice profile ('voice' column, --voice NAME)")
        if references and v.get("voice"):
            raise InputError("give either reference recordings or a saved voice, not both")
        profile = load_named(row.cache, v["voice"]) if v.get("voice") else None
        if v.get("speaker", "") not in ("", "0"):  # 0 is the original tool's default for every row
            raise InputError("the speaker column is for Piper voices; XTTS takes the voice from the reference (leave it empty or 0)")
        settings = row.config.xtts
        # the row's (or -l's) language, else the one the voice was enrolled with, else xtts.language
        language = v.get("language") or (profile.language if profile is not None else "")
        if language:
            settings = dataclasses.replace(settings, language=language)
        if v.get("model"):
            settings = dataclasses.replace(settings, model_dir=str(row.path(v["model"])))
        resolved = tuple(str(row.path(r)) for r in references)
        return make_job(XttsRequest(resolved, row.text, str(row.output), settings, str(row.cache), row.config.device, profile,
                                    reading=row.reading))

    # --- models ---------------------------------------------------------------------------------

    def models(self, scope: Scope) -> list[ModelEntry]:
        folder = released_xtts_dir(scope.cache)
        return [] if missing_xtts_files(folder) else [ModelEntry(self.name, "xtts_v2", folder)]

    def download(self, scope: Scope, name: str, progress: bool) -> Optional[Path]:
        if name not in XTTS_NAMES:
            return None
        # The one download done in the parent (``models download xtts_v2``): coqui's model manager is
        # imported only inside ``download_released``.
        from demod_voice.backends.xtts.engine import download_released

        folder, fetch = resolve_xtts(None, scope.cache, scope.config.xtts.accept_license)
        if fetch:
            download_released(fetch, scope.cache)
        return folder

    def model_path(self, scope: Scope, name: str) -> Optional[Path]:
        return released_xtts_dir(scope.cache) if name in XTTS_NAMES else None

    def checks(self, config: Config) -> list[Check]:
        return xtts_checks(config.device, config.xtts.model_dir, cache_root(config), config.xtts.accept_license)
