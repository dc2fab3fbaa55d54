"""Piper's registration: its request side (voices, jobs, batch rows, models), built on :mod:`.request`.

Piper voices are ``.onnx`` files with their ``.onnx.json``: installed by name (``models
download``) or offered by a server (``serve.piper_voices``). ``piper.backend`` chooses the engine
that runs them (``piper``: onnxruntime; ``tinygrad``: the experimental engine, whose request side
is this one under another name).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

from demod_voice.backends.piper.checks import piper_checks
from demod_voice.backends.piper.quantize import CALIBRATION_TEXT, quantize_voice
from demod_voice.backends.piper.request import PiperRequest, make_job, read_voice_config
from demod_voice.backends.plugin import ModelEntry, Quantized, RequestSide, RowInput, Scope, Speech, UnknownVoice, Voice, WouldFetch
from demod_voice.checks import Check
from demod_voice.config import Config
from demod_voice.engine.jobs import STDOUT, SynthesisJob
from demod_voice.errors import InputError, ModelMissing
from demod_voice.models.registry import (
    download_piper_voice,
    installed_piper_voices,
    is_embedded,
    is_installed,
    looks_like_name,
    piper_dir,
    resolve_piper_model,
)
from demod_voice.paths import name_problem

log = logging.getLogger(__name__)


PREPARE_SECONDS = 600
"""The most a voice's preparation at install may take (a medium voice: ~1 s here)."""


def prepare_installed(model: Path, scope: Scope) -> None:
    """Prepare an installed voice's graphs into the cache as its first use would (:func:`.batching.make_ready`), in a
    child process: onnx and onnxruntime stay out of this one, and whatever happens there (a voice onnxruntime cannot
    read, a crash) leaves the installed voice as it is, to be prepared on its first use. Skipped where the voice would
    not run on onnxruntime (``piper.backend`` tinygrad) or onnxruntime is missing."""
    import importlib.util
    import subprocess

    from demod_voice.sandbox import python_child

    if scope.config.piper.backend != "piper" or importlib.util.find_spec("onnxruntime") is None:
        return
    command = [*python_child(module="demod_voice.backends.piper.batching"), str(model), str(scope.cache), scope.config.device]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=PREPARE_SECONDS, text=True)
        failed = done.returncode != 0
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1] if failed else ""
    except (OSError, subprocess.TimeoutExpired) as err:
        failed, why = True, type(err).__name__
    if failed:
        log.warning("%s is installed, but its graphs could not be prepared now (%s); its first use prepares them",
                    model.name, why[:200])


def _check_language(language: str, model: Path) -> None:
    """A row's language, where the voice speaks it (a sheet's ``en`` on every row, as its XTTS rows need, was refused on
    each Piper row: "the language column is for XTTS rows"); :class:`InputError` where it does not, or cannot say."""
    try:
        voice = read_voice_config(Path(f"{model}.json"))
    except InputError:
        voice = {}
    speaks = str((voice.get("language") or {}).get("code") or (voice.get("espeak") or {}).get("voice") or "")
    if not speaks:
        raise InputError("the language column is for XTTS rows; a Piper voice speaks its own language: leave it empty")
    if language.replace("_", "-").split("-")[0].lower() != speaks.replace("_", "-").split("-")[0].lower():
        raise InputError(f"the row's language is '{language[:20]}', but its Piper voice speaks {speaks}: choose a voice that "
                         "speaks it, or leave the language empty")


def _cache_files(scope: Scope, name: str) -> list[Path]:
    """The cache's entries for installed voice ``name`` as it is now (:func:`.batching.cache_files`)."""
    model = piper_dir(scope.cache) / f"{name}.onnx"
    if name_problem(name) or not model.is_file():
        return []
    from demod_voice.backends.piper.batching import cache_files

    return cache_files(str(model), str(scope.cache))


def _forget(entries: list[Path]) -> None:
    """Cache entries removed, as far as they can be (a cache entry left behind costs disk space, nothing else)."""
    for entry in entries:
        try:
            entry.unlink(missing_ok=True)
        except OSError as err:
            log.debug("could not remove %s from the cache (%s)", entry, err)


def voice_files(scope: Scope) -> dict[str, Path]:
    """Piper voices by name: those a server offers (``serve.piper_voices``) first, then installed ones."""
    found: dict[str, Path] = {}
    for entry in scope.voice_paths:
        path = Path(str(entry)).expanduser().absolute()
        candidates = sorted(path.glob("*.onnx")) if path.is_dir() else [path]
        for model in candidates:
            if model.is_file() and Path(f"{model}.json").is_file():
                found.setdefault(model.name[: -len(".onnx")], model)
    for model in installed_piper_voices(scope.cache):
        found.setdefault(model.name[: -len(".onnx")], model)
    return found


def installed_config(name: str, model: Path) -> dict:
    """The ``.onnx.json`` of a voice a server offers; a damaged one a :class:`~demod_voice.errors.ModelMissing` whose
    server message names the voice, not the server's file."""
    try:
        return read_voice_config(Path(f"{model}.json"))
    except InputError as err:
        raise ModelMissing(str(err), f"the voice '{name}' is damaged on this server: download it again", "damaged_voice") from None


def _readable(model: Path) -> bool:
    try:
        read_voice_config(Path(f"{model}.json"))
    except InputError:
        return False
    return True


def voice_length_scale(model: str) -> float:
    """The voice's own ``inference.length_scale`` (what speed 1 means for it)."""
    voice = read_voice_config(Path(f"{model}.json"))
    return float((voice.get("inference") or {}).get("length_scale", 1.0))


class PiperSide(RequestSide):
    """Piper voices run on onnxruntime."""

    name = "piper"
    label = "Piper"
    url = "https://github.com/OHF-Voice/piper1-gpl"
    engine = "demod_voice.backends.piper.engine:PiperBackend"
    catch_all = True  # any name may be a catalog voice
    row_models = True
    take_chars = 400
    """Piper speaks any length (one sentence at a time); takes stay sentence-sized so each can be checked and remade alone."""

    def voices(self, scope: Scope) -> list[Voice]:
        # A damaged voice is not offered (listed first by name, it became Wyoming's default voice, which then failed
        # every request); naming it is answered as damaged.
        return [self._voice(name, model) for name, model in sorted(voice_files(scope).items()) if _readable(model)]

    def find(self, scope: Scope, voice_id: str) -> Optional[Voice]:
        model = voice_files(scope).get(voice_id)
        return None if model is None else self._voice(voice_id, model)

    def _voice(self, name: str, model: Path) -> Voice:
        try:
            voice = read_voice_config(Path(f"{model}.json"))
        except InputError:  # still found by name (its name is taken; resolving it says it is damaged)
            return Voice(name, name, self.name, by_model=True, kind_label=self.label, describe=f"({self.label})", model_path=str(model))
        names = voice.get("speaker_id_map") or {}
        # a voice of several speakers without names (an empty map) is spoken by number: listed as none, Wyoming refused
        # every speaker of it as 'a single speaker' and Home Assistant could offer none
        count = int(voice["num_speakers"])
        speakers = tuple(sorted(names, key=names.get)) or (tuple(str(n) for n in range(count)) if count > 1 else ())
        language = str((voice.get("language") or {}).get("code") or (voice.get("espeak") or {}).get("voice") or "")
        describe = f"({self.label}, {language})" if language else f"({self.label})"
        return Voice(name, name, self.name, speakers, language, int(voice["audio"]["sample_rate"]), by_model=True,
                     kind_label=self.label, describe=describe, model_path=str(model))

    def resolve(self, scope: Scope, voice: Voice, speaker: Optional[str], language: Optional[str]) -> Speech:
        model = voice_files(scope).get(voice.id)
        if model is None:
            raise UnknownVoice(f"Piper voice '{voice.id}' is not installed")
        data = installed_config(voice.id, model)
        if speaker == voice.id:
            speaker = None  # the voice named twice (model and voice): its default speaker
        if speaker is not None and int(data.get("num_speakers", 1)) <= 1 and speaker not in (data.get("speaker_id_map") or {}):
            speaker = None  # a single-speaker voice: OpenAI clients always send some voice name; there is only one
        config = scope.config
        request = PiperRequest(model=str(model), text="", output=STDOUT, settings=config.piper, device=config.device,
                               cache_dir=str(scope.cache), speaker=speaker, backend=config.piper.backend)
        try:
            spec = make_job(dataclasses.replace(request, text=".")).spec  # checks the speaker now
        except InputError as err:
            raise UnknownVoice(str(err)) from None
        request = dataclasses.replace(request, version=spec.version)  # the answer's every job on the files resolved now
        return Speech(self, voice.id if speaker is None else f"{voice.id}:{speaker}", spec, int(data["audio"]["sample_rate"]), request)

    def job(self, speech: Speech, text: str, speed: float, output: str) -> SynthesisJob:
        request: PiperRequest = speech.request
        settings = request.settings
        if speed != 1.0:
            base = settings.length_scale or voice_length_scale(request.model)
            settings = dataclasses.replace(settings, length_scale=base / speed)
        return make_job(dataclasses.replace(request, text=text, output=output, settings=settings, reading=speech.reading))

    def adjust(self, speech: Speech, variation: Optional[float], temperature: Optional[float]) -> Speech:
        if variation is None:
            return speech
        request: PiperRequest = speech.request
        settings = dataclasses.replace(request.settings, noise_scale=float(variation))
        return dataclasses.replace(speech, request=dataclasses.replace(request, settings=settings))

    def row_job(self, row: RowInput) -> SynthesisJob:
        v = row.values
        model = v.get("model") or row.model
        if not model:
            raise InputError(f"a {self.name} row needs a voice: fill the 'model' column or pass --model")
        config = row.config
        path = row.path(model)
        # a folder is no voice: one named as an installed voice (piper-train's run, say) means the voice
        if looks_like_name(model) and (not path.exists() or path.is_dir() and is_installed(model, row.cache)):
            if row.dry_run and config.models.auto_download and not is_installed(model, row.cache):
                raise WouldFetch(model)
            path = Path(resolve_piper_model(model, config.models.catalog_url, row.cache, config.models.auto_download, row.progress))
        if v.get("language"):
            _check_language(v["language"], path)
        return make_job(PiperRequest(str(path), row.text, str(row.output), config.piper, config.device, str(row.cache),
                                     config_json=v.get("config_json") or None, speaker=v.get("speaker") or None, backend=self.name,
                                     reading=row.reading))

    def models(self, scope: Scope) -> list[ModelEntry]:
        return [ModelEntry(self.name, path.stem, path, path.stat().st_size) for path in installed_piper_voices(scope.cache)]

    def download(self, scope: Scope, name: str, progress: bool) -> Optional[Path]:
        """The voice, then its graphs prepared for this machine into the cache (:func:`prepare_installed`), so its
        first use loads them from there; what the cache held for the copy it replaces goes."""
        before = _cache_files(scope, name)
        path = download_piper_voice(name, scope.config.models.catalog_url, scope.cache, progress=progress)
        prepare_installed(path, scope)
        now = set(_cache_files(scope, path.stem))
        _forget([entry for entry in before if entry not in now])
        return path

    def model_path(self, scope: Scope, name: str) -> Optional[Path]:
        return Path(resolve_piper_model(name, scope.config.models.catalog_url, scope.cache, auto_download=False))

    def forget_cache(self, scope: Scope, name: str) -> list[Path]:
        entries = _cache_files(scope, name)
        _forget(entries)
        return entries

    def quantize(self, scope: Scope, name: str, output: Optional[Path], method: str, text: Optional[str]) -> Optional[Quantized]:
        """Piper's catch-all, as for downloads: a name that is no voice here is an error naming what to give."""
        model = Path(resolve_piper_model(name, scope.config.models.catalog_url, scope.cache, auto_download=False))
        if output is None and is_embedded(model):  # package data is read-only: the copy goes where downloaded voices go
            piper_dir(scope.cache).mkdir(parents=True, exist_ok=True)
            output = piper_dir(scope.cache) / f"{model.stem}-int8.onnx"
        return quantize_voice(model, output, method, text or CALIBRATION_TEXT)

    def checks(self, config: Config) -> list[Check]:
        return piper_checks(config.device)
