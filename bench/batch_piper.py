"""Benchmark: ``demod-voice batch`` on N Piper rows against piper-tts's own command, in one run.

    .venv/bin/python bench/batch_piper.py [--rows 200] [--size medium]

Peers, same medium-size voice, same lines:
  (a) ``piper`` started once per row (how the original tool worked);
  (b) one ``piper`` process given every line on stdin (``-d DIR``: one file per line; the peer's best case);
  floor: onnxruntime ``session.run`` alone for every line, in one warm process.
demod-voice runs with 1 and with 2 workers (cold optimised-graph cache each time). Memory: the
resident set of demod-voice and its workers, sampled every 0.1 s, reported at each quarter of the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from piper_infer import voice_path  # noqa: E402

WORDS = ("quiet river morning signal garden yellow number machine window story travel market "
         "silver winter letter window planet engine island pocket").split()


def lines(n: int) -> list[str]:
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(8 + i % 9)]
        out.append(f"Line {i}: the " + " ".join(words) + ".")
    return out


def rss_tree(pid: int) -> int:
    """Resident bytes of ``pid`` and its children."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run_ours(csv_file: Path, out: Path, workers: int, cache: Path) -> tuple[float, list[int]]:
    env = {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "batch", str(csv_file), "--output-dir", str(out),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[int] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append(rss_tree(proc.pid))
            time.sleep(0.1)

    thread = threading.Thread(target=sample)
    thread.start()
    proc.wait()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"demod-voice batch failed ({proc.returncode})")
    return time.perf_counter() - start, samples


def run_piper_per_row(model: Path, texts: list[str], out: Path) -> float:
    start = time.perf_counter()
    for i, text in enumerate(texts):
        subprocess.run([sys.executable, "-m", "piper", "-m", str(model), "-f", str(out / f"a{i}.wav")], input=text, text=True,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_piper_once(model: Path, texts: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "piper", "-m", str(model), "-d", str(out)], input="\n".join(texts) + "\n", text=True,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def floor(model: Path, texts: list[str]) -> float:
    from piper.config import SynthesisConfig
    from piper.voice import PiperVoice

    voice = PiperVoice.load(model)
    syn = SynthesisConfig()
    ids = [voice.phonemes_to_ids(p) for t in texts for p in voice.phonemize(t)]
    start = time.perf_counter()
    for sentence in ids:
        voice.phoneme_ids_to_audio(sentence, syn)
    return time.perf_counter() - start


def quarters(samples: list[int]) -> str:
    if not samples:
        return "n/a"
    picks = [samples[min(len(samples) - 1, int(len(samples) * q))] for q in (0.25, 0.5, 0.75, 0.99)]
    return " / ".join(f"{b / 2**20:.0f}" for b in picks) + f" MiB (peak {max(samples) / 2**20:.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    args = parser.parse_args(argv)
    model = voice_path(args.size)
    texts = lines(args.rows)
    work = Path(tempfile.mkdtemp())
    csv_file = work / "rows.csv"
    csv_file.write_text("text,output,model\n" + "".join(f'"{t}",o{i:04d}.wav,{model}\n' for i, t in enumerate(texts)))
    results = {}
    for workers in (1, 2):
        out = work / f"ours{workers}"
        out.mkdir()
        results[workers] = run_ours(csv_file, out, workers, work / f"cache{workers}")
    (work / "a").mkdir()
    (work / "b").mkdir()
    t_a = run_piper_per_row(model, texts, work / "a")
    t_b = run_piper_once(model, texts, work / "b")
    t_floor = floor(model, texts)
    t1, mem1 = results[1]
    t2, mem2 = results[2]
    print(f"{args.rows} rows, {model.name} ({model.stat().st_size / 1e6:.0f} MB voice), {os.cpu_count()} CPUs")
    print(f"(a) piper per row:          {t_a:7.1f} s")
    print(f"(b) one piper process:      {t_b:7.1f} s")
    print(f"floor, session.run only:    {t_floor:7.1f} s")
    print(f"demod-voice, 1 worker:      {t1:7.1f} s   {t_a / t1:.1f}x (a)  {t_b / t1:.2f}x (b)  {t1 / t_floor:.2f}x floor")
    print(f"demod-voice, 2 workers:     {t2:7.1f} s   {t_a / t2:.1f}x (a)  {t_b / t2:.2f}x (b)  scaling 1->2: {t1 / t2:.2f}x")
    print(f"memory at 25/50/75/99% of the run, 1 worker: {quarters(mem1)}")
    print(f"memory at 25/50/75/99% of the run, 2 workers: {quarters(mem2)}")
    print("goals: >= 8x (a), >= 1.0x (b), within 15% of the floor, memory flat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
