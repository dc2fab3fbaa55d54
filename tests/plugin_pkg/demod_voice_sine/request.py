"""The request side (parent process): which voices there are, and how a text becomes a job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.backends.plugin import ModelEntry, RequestSide, RowInput, Scope, Speech, UnknownVoice, Voice
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import InputError

SAMPLE_RATE = 16000
TONES = {"sine-a440": 440.0, "sine-c523": 523.25}


@dataclass(frozen=True)
class SineOptions:
    """What the worker needs besides the text."""

    frequency: float
    seconds_per_character: float = 0.01


class SineSide(RequestSide):
    name = "sine"
    label = "Sine tones"
    url = "https://example.invalid/demod-voice-sine"
    engine = "demod_voice_sine.engine:SineBackend"

    def voices(self, scope: Scope) -> list[Voice]:
        return [Voice(voice_id, voice_id, self.name, language="en", sample_rate=SAMPLE_RATE, by_model=True,
                      kind_label="sine tone", describe=f"(sine tone, {hz:g} Hz)", model_path=f"/sine/{voice_id}")
                for voice_id, hz in TONES.items()]

    def resolve(self, scope: Scope, voice: Voice, speaker: Optional[str], language: Optional[str]) -> Speech:
        if voice.id not in TONES:
            raise UnknownVoice(f"there is no sine voice '{voice.id}'")
        spec = LoadSpec(self.name, f"/sine/{voice.id}")
        return Speech(self, voice.id, spec, SAMPLE_RATE, SineOptions(TONES[voice.id]))

    def job(self, speech: Speech, text: str, speed: float, output: str) -> SynthesisJob:
        options = dataclasses.replace(speech.request, seconds_per_character=0.01 / speed)
        return SynthesisJob(spec=speech.spec, text=text, output=output, options=options)

    def row_job(self, row: RowInput) -> SynthesisJob:
        name = row.values.get("model") or row.model or ""
        if name not in TONES:
            raise InputError(f"a sine row needs a model: one of {', '.join(TONES)}")
        return SynthesisJob(spec=LoadSpec(self.name, f"/sine/{name}"), text=row.text, output=str(row.output),
                            options=SineOptions(TONES[name]))

    def models(self, scope: Scope) -> list[ModelEntry]:
        return [ModelEntry(self.name, voice_id, Path(f"/sine/{voice_id}")) for voice_id in TONES]
