"""Benchmark: ``piper-preprocess`` clips per second, 1 worker vs 2, against a plain loop, in one run.

    .venv/bin/python bench/preprocess.py [--clips 200]

The dataset is generated once with espeak-ng (tests/fixtures/make_dataset.py). The plain loop
calls the same per-clip steps (soundfile, soxr, numpy, piper's espeak phonemizer) in one process,
with no command, no pool and no resume bookkeeping: the floor of the work itself.
"""

from __future__ import annotations

import argparse
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


def run_command(src: Path, workers: int) -> float:
    out = Path(tempfile.mkdtemp()) / "prepared"
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "piper-preprocess", "--input-dir", str(src),
                    "--output-dir", str(out), "--workers", str(workers), "--min-total-seconds", "0"], check=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(out.parent)
    return seconds


def run_loop(src: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from demod_voice.dataset import find_audio, read_metadata
    from demod_voice.preprocess import Settings, process_clip

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
    times: dict[str, list[float]] = {"one": [], "two": [], "loop": []}
    for _ in range(args.runs):
        times["one"].append(run_command(src, 1))
        times["two"].append(run_command(src, 2))
        times["loop"].append(run_loop(src))
    one, two, loop = (statistics.median(times[k]) for k in ("one", "two", "loop"))
    n = args.clips
    print(f"medians of {args.runs} runs")
    print(f"{n} clips of three sentences (espeak-ng speech, wav/flac/ogg/mp3 at 16-44.1 kHz) -> 22050 Hz")
    print(f"plain loop, one process:        {loop:6.2f} s  {n / loop:6.1f} clips/s")
    print(f"piper-preprocess --workers 1:   {one:6.2f} s  {n / one:6.1f} clips/s  ({loop / one:.2f}x the loop)")
    print(f"piper-preprocess --workers 2:   {two:6.2f} s  {n / two:6.1f} clips/s  ({loop / two:.2f}x the loop)")
    print(f"scaling 1 -> 2 workers: {one / two:.2f}x (goal >= 1.8x on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
