"""Benchmark: the memory of ``demod-voice batch``'s own process (the parent, not its workers) on a long CSV.

    .venv/bin/python bench/batch_parent_memory.py [--rows 50000] [--seconds 40] [--compare REV]

A CSV of ``--rows`` short lines (a tiny generated voice, so the workers keep the parent busy) is run with the
defaults; the parent's resident set is sampled from ``/proc`` every 0.2 s. Printed: when the first row's file
appeared, the parent's resident set then, and its largest and last over the next ``--seconds`` (then the run is
stopped with Ctrl-C, as a person would). ``--compare REV`` runs the same on the code of commit REV (a temporary
git worktree) first, in the same run, and prints the ratios. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from piper_infer import voice_path  # noqa: E402


def write_rows(path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "output"])
        for i in range(rows):
            writer.writerow([f"Line {i} is short.", f"out/{i // 1000}/r{i}.wav"])


def parent_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
    except (FileNotFoundError, StopIteration):
        return 0.0


def measure(tree: Path, voice: Path, rows_csv: Path, seconds: float, work: Path) -> dict:
    """One run of the checkout ``tree``: first row's time, the parent's memory then, at its largest and at the end."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, str(tree / "bin" / "demod-voice"), "batch", str(rows_csv), "-o", str(out), "--model", str(voice), "-q"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_file, first, at_first, peak, last = out / "out" / "0" / "r0.wav", None, 0.0, 0.0, 0.0
    while process.poll() is None and time.perf_counter() - started < (first or 600) + seconds:
        last = parent_rss_mb(process.pid) or last
        peak = max(peak, last)
        if first is None and first_file.exists():
            first, at_first = time.perf_counter() - started, last
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    manifest = out / ".demod-voice-manifest.jsonl"
    made = len(manifest.read_text(encoding="utf-8").splitlines()) if manifest.exists() else 0
    return {"first": first or float("nan"), "at_first": at_first, "peak": peak, "last": last, "made": made}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to go on after the first row")
    parser.add_argument("--compare", metavar="REV", help="also run the code of this commit, first, for ratios")
    args = parser.parse_args()
    voice = voice_path("tiny")
    with tempfile.TemporaryDirectory(prefix="dv-parent-memory-") as folder:
        work = Path(folder)
        rows_csv = work / "rows.csv"
        write_rows(rows_csv, args.rows)
        trees = [("this checkout", ROOT)]
        if args.compare:
            other = work / "compare"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.compare], check=True)
            trees.insert(0, (args.compare, other))
        results = {}
        try:
            for label, tree in trees:
                print(f"load average {os.getloadavg()[0]:.2f} at the start of {label}", flush=True)
                results[label] = found = measure(tree, voice, rows_csv, args.seconds, work)
                print(f"{label}: {args.rows} rows: first row after {found['first']:.1f} s; parent {found['at_first']:.0f} MB then, "
                      f"largest {found['peak']:.0f} MB, {found['last']:.0f} MB after {args.seconds:g} s more "
                      f"({found['made']} rows made)", flush=True)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "compare")], check=False)
        if args.compare:
            ours, theirs = results["this checkout"], results[args.compare]
            print(f"this checkout / {args.compare}: first row {ours['first'] / theirs['first']:.2f}x, parent at the first row "
                  f"{ours['at_first'] / theirs['at_first']:.2f}x, largest {ours['peak'] / theirs['peak']:.2f}x; load average "
                  f"{os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
