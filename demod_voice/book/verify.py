"""Takes heard back: each take's audio transcribed by a recogniser job and scored against its text.

A take fails when its word error rate is over the threshold, or when its speech is far too long
or too short for its text (XTTS's known failures: babble and loops run long, dropped words run
short, silence has no speech at all). Scores are kept per take file (by its size, so a retake is
heard again) in ``verified.jsonl`` beside the takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends.whisper import request as whisper
from demod_voice.book.ledger import JsonLines
from demod_voice.book.master import speech_bounds
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import RuntimeFailure

MIN_CHARS_PER_SECOND = 4.0
"""Slower than this (speech seconds per character of text): too long for its text."""
MAX_CHARS_PER_SECOND = 40.0
"""Faster than this: too short (words dropped, or nothing said)."""
SLACK_SECONDS = 1.0
"""Short takes get this much leeway on both bounds."""


@dataclass(frozen=True)
class Verdict:
    """What the recogniser made of one take."""

    wer: float
    """Word error rate against the take's text (1.0: nothing right)."""
    heard: str
    """The transcript."""
    seconds: float
    """Speech duration of the take (its silence trimmed)."""
    problem: str = ""
    """Why it fails (empty: it passes)."""
    words: tuple[tuple[float, float, str], ...] = ()
    """What the recogniser heard word by word: (start, end, word), seconds into the take's file."""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def score(self) -> float:
        """Lower is better: the WER, with a failed length counted as one more error in full."""
        return self.wer + (1.0 if "long" in self.problem or "short" in self.problem else 0.0)


def words(text: str) -> list[str]:
    """Lower-case words, accents and punctuation folded, apostrophes kept inside words. Accents were not folded: an
    English recogniser writes "Zoe" and "cafe", and a take saying "Zoë's café" right failed and was remade."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'").lower())
    kept: list[str] = []  # the marks over Latin letters only: other scripts' marks (Devanagari's vowel signs) are not accents
    for ch in text:
        if not (unicodedata.combining(ch) and kept and kept[-1].isascii() and kept[-1].isalpha()):
            kept.append(ch)
    text = unicodedata.normalize("NFKC", "".join(kept))
    text = re.sub(r"[^\w' ]+", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return text.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Edit distance over words divided by the reference's words (at most 1.0 is not promised: insertions count)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
        previous = current
    return previous[-1] / len(ref)


def judge(text: str, heard: str, seconds: float, threshold: float, spoken: str = "", language: str = "") -> Verdict:
    """The verdict on one take: WER over ``threshold``, or a length far from what the text needs, fails it.

    ``spoken`` is the text as the voice was given it (numbers spelled out): a recogniser may write what it
    hears either way ("$3.50" or "three dollars fifty"), or in a third way of its own ("12/05/2026 at 9:05 pm" heard as
    "December 5th, 2026 at 9.05pm"), which is compared in ``language``'s spoken form too; the best score counts."""
    scores = [word_error_rate(text, heard)]
    if spoken:
        scores.append(word_error_rate(spoken, heard))
        if language:
            from demod_voice.speech_text.normalize import normalize

            scores.append(word_error_rate(spoken, normalize(heard, language)))
    wer = min(scores)
    chars = len(text)
    problem = ""
    if seconds <= 0.05:
        problem = "no speech in it"
    elif seconds > chars / MIN_CHARS_PER_SECOND + SLACK_SECONDS:
        problem = f"too long for its text ({seconds:.1f} s)"
    elif seconds < max(0.0, chars / MAX_CHARS_PER_SECOND - SLACK_SECONDS):
        problem = f"too short for its text ({seconds:.1f} s)"
    elif wer > threshold:
        problem = f"word error rate {wer:.2f} over {threshold:.2f}"
    return Verdict(round(wer, 4), heard, round(seconds, 3), problem)


def best(verdicts: list[tuple[str, Verdict]]) -> Optional[tuple[str, Verdict]]:
    """The best-scoring (name, verdict), earliest first on ties."""
    return min(verdicts, key=lambda item: item[1].score) if verdicts else None


# --- the record of what was heard, and the recogniser's jobs ---------------------------------

LEDGER = "verified.jsonl"


class Ledger:
    """Verdicts by take (:class:`~demod_voice.book.ledger.JsonLines`). A verdict holds for the take file of the
    size it was heard at; a remade take is heard again."""

    def __init__(self, folder: Path) -> None:
        self.lines = JsonLines(folder, LEDGER)
        self.path = self.lines.path
        self.entries: dict[str, dict] = {}
        for entry in self.lines.read:
            if isinstance(entry.get("key"), str):
                self.entries[entry["key"]] = entry

    def verdict(self, key: str, path: Path) -> Optional[Verdict]:
        """The verdict on the take file at ``path`` as it is now; ``None`` if it was never heard."""
        entry = self.entries.get(key)
        try:
            size = path.stat().st_size
        except OSError:
            return None
        if not entry or entry.get("size") != size:
            return None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            words = tuple((float(w[0]), float(w[1]), str(w[2])) for w in entry.get("words") or () if len(w) == 3)
            return Verdict(entry["wer"], entry["heard"], entry["seconds"], entry.get("problem", ""), words)
        return None

    def record(self, key: str, path: Path, verdict: Verdict) -> None:
        entry = {"key": key, "size": path.stat().st_size, "wer": verdict.wer, "heard": verdict.heard,
                 "seconds": verdict.seconds, "problem": verdict.problem, "words": [list(w) for w in verdict.words]}
        self.lines.append(entry, "a verdict")
        self.entries[key] = entry

    def close(self) -> None:
        self.lines.close()


HEAR_TOGETHER = 16
"""Recogniser jobs handed to one worker at once."""


def recogniser_spec(language: str, model: str, device: str, cache: Path) -> LoadSpec:
    """The recogniser for ``language``: ``book.asr_model`` when set, else the project's choice for the language
    (Whisper tiny.en from the installed package for English; :mod:`demod_voice.backends.whisper.request`)."""
    return whisper.recogniser_spec(language, model or None, str(cache), device)


def ready(spec: LoadSpec) -> None:
    """The recogniser of ``spec`` can run: its package is installed and its model on disk (downloaded now when named)."""
    whisper.ready(spec)


def hear_job(spec: LoadSpec, path: Path, language: str, label: str) -> SynthesisJob:
    """The job that hears one take file (with word timings, for captions); its value's ``text`` is the transcript."""
    job = whisper.recognise_job(spec, path, language, label=f"hearing {label}", word_timestamps=True)
    return dataclasses.replace(job, together="hear", together_limit=HEAR_TOGETHER)


def heard_words(value: dict) -> tuple[tuple[float, float, str], ...]:
    """A recogniser job's words as (start, end, word), seconds into the file it heard."""
    out = []
    for item in value.get("words") or ():
        with contextlib.suppress(TypeError, ValueError, IndexError):
            out.append((float(item[0]), float(item[1]), str(item[2])))
    return tuple(out)


def heard_audio(job: SynthesisJob) -> str:
    """The file a recogniser job heard (absolute, resolved): how its result finds its take."""
    return str(job.options.audio)


class _NoAudio:
    """The sink of a recogniser job: it gives back a value, never audio."""

    retryable = True

    def write(self, chunk: Any) -> None:
        raise RuntimeFailure("the recogniser sent audio")

    def commit(self) -> float:
        return 0.0

    def abort(self) -> None:
        """Nothing was written."""


def transcribe(engine: Any, jobs: list[SynthesisJob], on_heard: Callable[[SynthesisJob, dict], None]) -> None:
    """Run recogniser jobs on ``engine``; ``on_heard(job, value)`` as each ends (``value``: ``text``, ``words``; a failed
    one raises)."""

    def finished(result: Any) -> None:
        if not result.ok:
            raise RuntimeFailure(f"{result.job.describe()}: {result.error}")
        on_heard(result.job, dict(result.value or {}))

    engine.run(jobs, on_result=finished, sink_factory=lambda job: _NoAudio())


def speech_seconds(path: Path) -> float:
    """Seconds from a take's first to last speech (its own silence left out)."""
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    start, end = speech_bounds(samples, rate)
    return (end - start) / rate
