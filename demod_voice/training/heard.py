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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from demod_voice.backends.whisper.request import recognise_job, recogniser_name, recogniser_spec
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

    def __call__(self, voice: Path, sentences: list[str]) -> str:
        """``WER 0.12 by Whisper tiny.en (packaged)``, or ``no WER: <why>``."""
        wavs = [voice.parent / f"sample-{i}.wav" for i in range(1, len(sentences) + 1)]
        if not sentences or not all(w.is_file() for w in wavs):
            return "no WER: the samples are missing"
        if importlib.util.find_spec("faster_whisper") is None:
            return "no WER: no speech recogniser installed (pip install 'demod-voice[asr]')"
        language = voice_language(voice)
        try:
            spec = recogniser_spec(language, self.model, str(cache_root(self.config)), "cpu")
            jobs = [recognise_job(spec, wav, language, label=f"hear {wav.name}") for wav in wavs]
            results = EngineRun(self.config.engine, workers=1, log_level=self.log_level).run(jobs)
        except DemodVoiceError as err:
            return f"no WER: {err}"
        failed = next((r.error for r in results if r.error is not None), None)
        if failed is not None:
            return f"no WER: {failed}"
        errors = words = 0
        for text, result in zip(sentences, results, strict=True):
            reference = normalise(text)
            errors += word_edits(reference, normalise(str((result.value or {}).get("text", ""))))
            words += len(reference)
        return f"WER {errors / max(1, words):.2f} by Whisper {recogniser_name(spec)}"
