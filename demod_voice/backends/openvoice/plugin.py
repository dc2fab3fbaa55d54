"""Voice conversion's registration: a request side with no voices to speak with, whose batch rows
name a ``source`` recording to convert (into a ``reference`` recording's voice, or a saved ``voice``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from demod_voice.backends.openvoice.request import MODEL_FILES, ConvertRequest, make_jobs, released_dir, resolve_converter
from demod_voice.backends.plugin import ModelEntry, RequestSide, RowInput, Scope, WouldFetch
from demod_voice.checks import OK, WARN, Check
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.errors import InputError
from demod_voice.voices.profiles import load_named

NAMES = ("openvoice_v2", "openvoice")
"""What ``models download`` / ``models path`` call the released converter."""


class ConvertSide(RequestSide):
    """OpenVoice v2's converter (coqui-tts): a recording re-spoken in another voice."""

    name = "openvoice"
    label = "OpenVoice v2 voice conversion (coqui)"
    url = "https://github.com/myshell-ai/OpenVoice"
    engine = "demod_voice.backends.openvoice.engine:OpenVoiceBackend"
    takes_text = False
    converts = True
    claim_priority = 10  # rows with a 'source' (and a 'voice') are conversions, before XTTS claims the 'voice'

    def claims_row(self, values: dict[str, str], config: Config) -> bool:
        return bool(values.get("source"))

    def row_job(self, row: RowInput) -> SynthesisJob:
        v = row.values
        if not v.get("source"):
            raise InputError("a conversion row needs a 'source' recording to convert")
        if v.get("text"):
            raise InputError("a conversion row keeps its source's words: leave 'text' empty (or drop 'source' to speak the text)")
        references = tuple(str(row.path(r.strip())) for r in v.get("reference", "").split("|") if r.strip())
        profile = load_named(row.cache, v["voice"]) if v.get("voice") else None
        settings = row.config.convert
        if row.dry_run and not settings.model_dir and not all((released_dir(row.cache) / f).is_file() for f in MODEL_FILES):
            raise WouldFetch("openvoice_v2")
        request = ConvertRequest((str(row.path(v["source"])),), (str(row.output),), settings, str(row.cache), references, profile,
                                 row.config.device, row.progress)
        return make_jobs(request)[0]

    def conversion_jobs(self, scope: Scope, sources: list[str], outputs: list[str], references: list[str],
                        voice: Optional[str], progress: bool = False) -> list[SynthesisJob]:
        profile = load_named(scope.cache, voice) if voice else None
        request = ConvertRequest(tuple(sources), tuple(outputs), scope.config.convert, str(scope.cache), tuple(references), profile,
                                 scope.config.device, progress)
        return make_jobs(request)

    def download(self, scope: Scope, name: str, progress: bool) -> Optional[Path]:
        if name not in NAMES:
            return None
        return resolve_converter(dataclasses.replace(scope.config.convert, model_dir=None), scope.cache, progress)

    def model_path(self, scope: Scope, name: str) -> Optional[Path]:
        if name not in NAMES:
            return None
        folder = released_dir(scope.cache)
        if not all((folder / file).is_file() for file in MODEL_FILES):
            raise InputError(f"{name} is not downloaded: run 'demod-voice models download {name}'")
        return folder

    def checks(self, config: Config) -> list[Check]:
        """Whether a converter is there (the engine libraries are XTTS's, checked by its side)."""
        settings = config.convert
        folder = Path(settings.model_dir).expanduser() if settings.model_dir else released_dir(cache_root(config))
        if all((folder / name).is_file() for name in MODEL_FILES):
            return [Check("voice conversion", OK, f"OpenVoice converter in {folder}", needed_by=(self.name,))]
        fix = ("put config.json and checkpoint.pth in it" if settings.model_dir else
               "demod-voice models download openvoice_v2 (131 MB, MIT licence); the first 'convert' downloads it too")
        return [Check("voice conversion", WARN, f"no OpenVoice converter in {folder}", fix, (self.name,))]

    def models(self, scope: Scope) -> list[ModelEntry]:
        folder = released_dir(scope.cache)
        weights = folder / "checkpoint.pth"
        if not all((folder / f).is_file() for f in MODEL_FILES):
            return []
        return [ModelEntry(self.name, "openvoice_v2", Path(folder), weights.stat().st_size)]
