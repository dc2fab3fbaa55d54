"""Benchmark: ``piper-preprocess`` clips per second, 1 worker vs 2, against a plain loop, in one run.

    .venv/bin/python bench/preprocess.py [--clips 200]

The dataset is generated once with espeak-ng (tests/fixtures/make_dataset.py). The plain loop
calls the same per-clip steps (soundfile, soxr, numpy, piper's espeak phonemizer) in one process,
with no command, no pool and no resume bookkeeping: the floor of the work itself.
Scaling is printed twice: for the whole command (interpreter, imports, dataset scan and final
writes included; that part is the same for any number of workers), and for the processing phase
alone, as timed by the command itself in report.json's "processed" entry.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dataset(clips: int) -> Path:
    folder = Path(tempfile.gettempdir()) / "demod-voice-bench" / f"dataset-{clips}x3"
    if not (folder / "metadata.csv").exists():
        print(f"generating {clips} clips with espeak-ng in {folder} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_dataset.py"), str(folder), "--clips", str(clips),
                        "--sentences", "3"],
                       check=True, stdout=subprocess.DEVNULL)
    return folder


def run_command(src: Path, workers: int) -> tuple[float, float]:
    """Wall time of the whole command, and the processing phase's time from its report.json."""
    out = Path(tempfile.mkdtemp()) / "prepared"
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "piper-preprocess", "--input-dir", str(src),
                    "--output-dir", str(out), "--workers", str(workers), "--min-total-seconds", "0"], check=True)
    seconds = time.perf_counter() - start
    processing = json.loads((out / "report.json").read_text())["processed"]["seconds"]
    shutil.rmtree(out.parent)
    return seconds, processing


def run_loop(src: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from demod_voice.training.dataset import find_audio, read_metadata
    from demod_voice.training.preprocess import Settings, process_clip

    out = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    entries, _ = read_metadata(src)
    settings = Settings()
    for entry in entries:
        source = find_audio(src, entry.clip_id)
        process_clip(entry, str(source), str(out / f"{entry.clip_id}.wav"), settings, "")
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5, help="medians over this many alternating runs")
    args = parser.parse_args(argv)
    src = dataset(args.clips)
    run_command(src, 1)  # warm the page cache
    runs: dict[str, list[tuple[float, float]]] = {"one": [], "two": []}
    loops: list[float] = []
    for _ in range(args.runs):
        runs["one"].append(run_command(src, 1))
        runs["two"].append(run_command(src, 2))
        loops.append(run_loop(src))
    (one, one_p), (two, two_p) = ((statistics.median(w for w, _ in runs[k]), statistics.median(p for _, p in runs[k]))
                                  for k in ("one", "two"))
    loop = statistics.median(loops)
    n = args.clips
    print(f"medians of {args.runs} runs")
    print(f"{n} clips of three sentences (espeak-ng speech, wav/flac/ogg/mp3 at 16-44.1 kHz) -> 22050 Hz")
    print(f"plain loop, one process:        {loop:6.2f} s  {n / loop:6.1f} clips/s")
    print(f"piper-preprocess --workers 1:   {one:6.2f} s  {n / one:6.1f} clips/s  ({loop / one:.2f}x the loop)"
          f"  processing {one_p:5.2f} s")
    print(f"piper-preprocess --workers 2:   {two:6.2f} s  {n / two:6.1f} clips/s  ({loop / two:.2f}x the loop)"
          f"  processing {two_p:5.2f} s")
    print(f"scaling 1 -> 2 workers, whole command:     {one / two:.2f}x (goal >= 1.8x on 2 cores)")
    print(f"scaling 1 -> 2 workers, processing phase:  {one_p / two_p:.2f}x "
          f"(start-up and final writes, the same for any worker count: {one - one_p:.2f} s and {two - two_p:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
