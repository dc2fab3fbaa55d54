"""``voices check VOICE``: speak sample sentences with a voice, hear them with a speech recogniser, and
report how well they were understood (word error rate) with the speaking rate, clipping and loudness.

Both halves are engine jobs: the sentences are spoken by the voice's own backend (a Piper voice by
name or path, or a cloned XTTS voice profile) and heard by the recogniser backend
(:mod:`demod_voice.backends.whisper`), each in its workers; this module only builds the jobs and
measures the files they leave. Nothing here loads an engine.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput, Scope
from demod_voice.backends.whisper.request import base_language, recognise_job, recogniser_name, recogniser_spec
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import SynthesisJob
from demod_voice.engine.service import EngineRun
from demod_voice.errors import InputError
from demod_voice.models.registry import looks_like_name, resolve_piper_model
from demod_voice.voices.profiles import profiles_dir

log = logging.getLogger(__name__)

ENGLISH_SAMPLES = (
    "The sun was warm and the children played in the park.",
    "Please bring me a glass of water from the kitchen.",
    "We walked home slowly after a long day at work.",
    "My brother bought a new car last summer.",
    "The old man sat by the window and read a book.",
    "Take your coat because it will rain tomorrow.",
)
"""Sentences of common words: a recogniser mishears names and rare words whoever speaks them."""
CLIPPED = 0.999
"""A sample at or above this (full scale 1.0) is at full scale."""
CLIPPED_RUN = 2
"""Consecutive equal full-scale samples (after the first of a flat top) that count as clipping."""


@dataclass
class Heard:
    """One sample sentence: what was said, what the recogniser heard, and the audio's measures."""

    text: str
    heard: str
    errors: int
    """Word edits (substitutions, deletions, insertions) from ``text`` to ``heard``."""
    words: int
    seconds: float
    clipped: float
    """Fraction of samples on flat tops at full scale (a lone peak at 1.0 is normalisation, not clipping)."""
    rms_dbfs: float
    peak_dbfs: float

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)


@dataclass
class Report:
    """The whole check."""

    voice: str
    language: str
    recogniser: str
    sentences: list[Heard] = field(default_factory=list)

    @property
    def wer(self) -> float:
        """Word error rate over all sentences (edits over reference words)."""
        return sum(s.errors for s in self.sentences) / max(1, sum(s.words for s in self.sentences))

    @property
    def words_per_minute(self) -> float:
        seconds = sum(s.seconds for s in self.sentences)
        return 60.0 * sum(s.words for s in self.sentences) / seconds if seconds else 0.0


# --- scoring ---------------------------------------------------------------------------------------


def normalise(text: str) -> list[str]:
    """Words for scoring: lower case, punctuation and hyphens dropped, apostrophes kept inside words."""
    text = text.replace("\u2019", "'").lower()
    text = re.sub(r"[^\w' ]+|_", " ", text)
    return [word.strip("'") for word in text.split() if word.strip("'")]


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        current = [i]
        for j, other in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


def measure(path: Path, text: str, heard: str) -> Heard:
    """Score ``heard`` against ``text`` and measure the audio file ``path``."""
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1) if len(samples) else np.zeros(1, dtype=np.float32)
    peak = float(np.max(np.abs(mono))) if len(mono) else 0.0
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if len(mono) else 0.0
    reference = normalise(text)
    return Heard(text=text, heard=heard, errors=word_edits(reference, normalise(heard)), words=len(reference),
                 seconds=len(mono) / rate, clipped=clipped_fraction(mono),
                 rms_dbfs=_dbfs(rms), peak_dbfs=_dbfs(peak))


def clipped_fraction(samples: Any) -> float:
    """Fraction of ``samples`` on flat full-scale tops: runs of :data:`CLIPPED_RUN` or more equal samples at full scale."""
    import numpy as np  # not at the top: the CLI imports this module for --help, which loads no numpy

    full = np.abs(samples) >= CLIPPED
    full[1:] &= samples[1:] == samples[:-1]  # flat: the same value as the sample before (a clipped top)
    if not full.any():
        return 0.0
    edges = np.diff(np.concatenate(([0], full.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    return float(lengths[lengths >= CLIPPED_RUN].sum() / len(samples))


def _dbfs(value: float) -> float:
    return round(20.0 * math.log10(value), 1) if value > 1e-9 else -120.0


# --- the jobs ----------------------------------------------------------------------------------------


def voice_request(voice: str, config: Config, cache: Path, progress: bool = False) -> tuple[str, dict[str, str], str]:
    """(backend, request values, language) for a Piper voice (name or path) or a cloned voice profile."""
    if looks_like_name(voice) and (profiles_dir(cache) / f"{voice}.npz").is_file():
        cloner = registry.cloner()
        found = cloner.find(Scope(config, cache, profiles_dir(cache)), voice)  # its own language: a French voice was heard as English
        return cloner.name, {"voice": voice}, found.language if found is not None and found.language else config.xtts.language
    model = Path(resolve_piper_model(voice, config.models.catalog_url, cache, config.models.auto_download, progress))
    if not model.is_file():
        raise InputError(f"voice {voice} not found: give an installed voice's name, an .onnx file or a voice profile's name")
    return config.piper.backend, {"model": str(model)}, _piper_language(model)


def _piper_language(model: Path) -> str:
    """The voice's language from its ``.onnx.json`` (``language.code``, else the espeak voice)."""
    try:
        data = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str((data.get("language") or {}).get("code") or (data.get("espeak") or {}).get("voice") or "")


def sample_texts(language: str, given: Optional[list[str]]) -> list[str]:
    """``given`` (one sentence a line of --text FILE), else the built-in English sentences."""
    if given:
        return given
    if base_language(language) in ("", "en"):
        return list(ENGLISH_SAMPLES)
    raise InputError(f"there are no built-in sample sentences in '{language}': give some with --text FILE (one a line)")


def read_sentences(path: Path) -> list[str]:
    """Sample sentences from a text file, one a line (blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"--text {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read --text {path} ({type(err).__name__}); give a UTF-8 text file") from None
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise InputError(f"--text {path} holds no sentences; write one a line")
    return sentences


def check_voice(voice: str, config: Config, texts: Optional[list[str]] = None, asr_model: Optional[str] = None,
                language: Optional[str] = None, log_level: int = logging.WARNING, progress: bool = False) -> Report:
    """Speak the sample sentences with ``voice``, hear them with the recogniser for its language, measure."""
    cache = cache_root(config)
    backend, values, voice_language = voice_request(voice, config, cache, progress)
    language = language or voice_language
    spec = recogniser_spec(language, asr_model, str(cache), config.device)  # before anything is spoken: no recogniser, no run
    sentences = sample_texts(language, texts)
    with tempfile.TemporaryDirectory(prefix="dv-check-") as work:
        wavs = [Path(work) / f"sentence-{i}.wav" for i in range(1, len(sentences) + 1)]
        side = registry.request_side(backend)
        spoken = [side.row_job(RowInput(values, text, wav, Path.cwd(), config, cache, progress=progress))
                  for text, wav in zip(sentences, wavs, strict=True)]
        _run(spoken, config, log_level)
        heard = _run([recognise_job(spec, wav, language, label=f"hear sentence {i}") for i, wav in enumerate(wavs, 1)],
                     config, log_level)
        report = Report(voice=voice, language=language or "?", recogniser=recogniser_name(spec))
        for text, wav, value in zip(sentences, wavs, heard, strict=True):
            report.sentences.append(measure(wav, text, str(value.get("text", ""))))
    return report


def _run(jobs: list[SynthesisJob], config: Config, log_level: int) -> list[dict[str, Any]]:
    """Run ``jobs`` on the configured executor; raise the first failure; the jobs' values (``{}`` for audio jobs)."""
    results = EngineRun(config.engine, workers=1, log_level=log_level).run(jobs)
    for result in results:
        if result.error is not None:
            raise result.error
    return [result.value if isinstance(result.value, dict) else {} for result in results]


def render(report: Report) -> str:
    """The report as text: one line per sentence, then the totals."""
    lines = [f"voice {report.voice} ({report.language}), heard by Whisper {report.recogniser}"]
    for i, s in enumerate(report.sentences, 1):
        lines.append(f"{i:>2}. WER {s.wer:.2f}  {s.seconds:5.2f} s  peak {s.peak_dbfs:6.1f} dBFS  \"{s.text}\"")
        if s.errors:
            lines.append(f"    heard: \"{s.heard}\"")
    clipped = sum(s.clipped * s.seconds for s in report.sentences) / max(1e-9, sum(s.seconds for s in report.sentences))
    rms = max((s.rms_dbfs for s in report.sentences), default=-120.0)
    lines += [
        f"word error rate   {report.wer:.3f} ({sum(s.errors for s in report.sentences)} of {sum(s.words for s in report.sentences)} words)",
        f"speaking rate     {report.words_per_minute:.0f} words/min",
        f"clipping          {100 * clipped:.3f}% of samples at full scale",
        f"loudness          {rms:.1f} dBFS RMS (loudest sentence), peak {max(s.peak_dbfs for s in report.sentences):.1f} dBFS",
    ]
    return "\n".join(lines)
