"""Benchmark: ``demod-voice batch`` on N Piper rows against piper-tts's own command, in one run.

    .venv/bin/python bench/batch_piper.py [--rows 200] [--rounds 2] [--per-row 20] [--variant-rows 24] [--size medium]

Peers, same medium-size voice, same lines:
  (a) ``piper`` started once per row (how the original tool worked), timed on --per-row rows and
      scaled to --rows (it costs the same per row; said in the output);
  (b) one ``piper`` process given every line on stdin (``-d DIR``: one file per line; the peer's best case);
  floor: onnxruntime ``session.run`` one sentence at a time, in one warm process (piper's own
      session options: all cores).
demod-voice runs with 1 and with 2 workers, then in each round with its defaults (no --workers: engine.workers 0,
a worker per core for a Piper voice) on a cold optimised-graph cache (the voice is prepared and optimised in the run,
as on its first use on a machine) and again on that cache (the voice prepared before: every later run), sentences in
batches of ``piper.batch_size``.
Memory: the resident set of demod-voice and its workers (and of peer (b), sampled the same way, so both pay the
sampling), every 0.1 s from ``/proc`` without starting a process; flat means the mean of the last quarter within 5%
of the first's.
Rounds (``--rounds``, default 2): peer (b), ours on its first use (a cold cache) and ours prepared run in turn once per
round, so a machine whose speed drifts moves each of them alike; the goal's ratios are the medians' and each
round's own ratio is printed beside them.
Variants (in one process, on --variant-rows rows): intra-op threads, spinning and batch size through
the same prepared graph the workers use, wall and CPU seconds, so the settings can be chosen by
measurement. CPU seconds are the steadier figure when the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from piper_infer import voice_path  # noqa: E402

WORDS = ("quiet river morning signal garden yellow number machine window story travel market "
         "silver winter letter window planet engine island pocket").split()


def lines(n: int) -> list[str]:
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(8 + i % 9)]
        out.append(f"Line {i}: the " + " ".join(words) + ".")
    return out


def children_cpu() -> float:
    """CPU seconds of finished child processes (and the workers they waited for)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children(pid: int) -> list[int]:
    """``pid``'s child processes, from ``/proc`` (starting ``pgrep`` ten times a second cost ~4 ms of CPU each time,
    ~2% of a 2-core machine taken from the process measured)."""
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):  # a kernel without CONFIG_PROC_CHILDREN
        return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def rss_tree(pid: int) -> int:
    """Resident bytes of ``pid`` and its children."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run_ours(csv_file: Path, out: Path, workers: int, cache: Path, extra_env: dict | None = None) -> tuple[float, float, list[int]]:
    """Wall seconds, CPU seconds (demod-voice and its workers) and memory samples of one batch run."""
    env = {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache), **(extra_env or {})}
    cpu = children_cpu()
    start = time.perf_counter()
    chosen = ["--workers", str(workers)] if workers else []  # 0: the defaults, no flag
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "batch", str(csv_file), "--output-dir", str(out),
                             *chosen], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, err = sampled(proc)
    if proc.returncode != 0:
        raise SystemExit(f"demod-voice batch failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - start, children_cpu() - cpu, samples


def sampled(proc: subprocess.Popen, stdin: bytes | None = None) -> tuple[list[int], bytes]:
    """The resident set of ``proc`` and its children every 0.1 s until it ends, and its stderr."""
    samples: list[int] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append(rss_tree(proc.pid))
            time.sleep(0.1)

    thread = threading.Thread(target=sample)
    thread.start()
    _, err = proc.communicate(stdin)
    thread.join()
    return samples, err or b""


def run_piper_per_row(model: Path, texts: list[str], out: Path) -> tuple[float, float]:
    start, cpu = time.perf_counter(), children_cpu()
    for i, text in enumerate(texts):
        subprocess.run([sys.executable, "-m", "piper", "-m", str(model), "-f", str(out / f"a{i}.wav")], input=text, text=True,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu() - cpu


def run_piper_once(model: Path, texts: list[str], out: Path) -> tuple[float, float, list[int]]:
    """Wall seconds, CPU seconds and memory samples of one ``piper`` process given every line."""
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen([sys.executable, "-m", "piper", "-m", str(model), "-d", str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, err = sampled(proc, ("\n".join(texts) + "\n").encode())
    if proc.returncode != 0:
        raise SystemExit(f"piper failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - start, children_cpu() - cpu, samples


def sentence_ids(model: Path, texts: list[str]) -> tuple[object, list[list[int]]]:
    from piper.voice import PiperVoice

    voice = PiperVoice.load(model)
    return voice, [voice.phonemes_to_ids(p) for t in texts for p in voice.phonemize(t)]


def floor(model: Path, texts: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``session.run`` alone, one sentence at a time, piper's own session."""
    from piper.config import SynthesisConfig

    voice, ids = sentence_ids(model, texts)
    syn = SynthesisConfig()
    start, cpu = time.perf_counter(), time.process_time()
    for sentence in ids:
        voice.phoneme_ids_to_audio(sentence, syn)
    return time.perf_counter() - start, time.process_time() - cpu


def variants(model: Path, texts: list[str], cache: Path) -> list[tuple[str, float, float]]:
    """(label, wall s, cpu s) for thread, spinning and batch-size settings, alternated, medians of 2."""
    import numpy as np

    from demod_voice import devices
    from demod_voice.backends.piper import batching

    voice, ids = sentence_ids(model, texts)
    config = voice.config
    scales = np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32)
    prepared = batching.prepare(str(model), str(cache))
    settings = [(1, True, size) for size in (1, 4, 8, 16)] + [(2, True, 1), (2, True, 8), (2, False, 8)]
    sessions = {}
    for threads, spin, _ in settings:
        if (threads, spin) not in sessions:
            devices.THREADS, devices.TUNING = threads, devices.OnnxTuning(spinning=spin)
            sessions[threads, spin] = batching.BatchSession(
                prepared, lambda m, bounded=False, wide=False: devices.onnx_session(m, "cpu", str(cache), bounded, wide)[0])
    times: dict[tuple, list[tuple[float, float]]] = {s: [] for s in settings}
    for round_ in range(3):
        for threads, spin, size in settings:
            session = sessions[threads, spin]
            wall, cpu = time.perf_counter(), time.process_time()
            for group in batching.groups([len(s) for s in ids], size):
                session.batch([ids[i] for i in group], scales, None)
            if round_:  # the first round warms every session and shape
                times[threads, spin, size].append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(f"threads {t}{', no spinning' if not spin else ''}, batch {b}", statistics.median(w for w, _ in v),
             statistics.median(c for _, c in v)) for (t, spin, b), v in times.items()]


def quarters(samples: list[int]) -> str:
    if not samples:
        return "n/a"
    picks = [samples[min(len(samples) - 1, int(len(samples) * q))] for q in (0.25, 0.5, 0.75, 0.99)]
    return " / ".join(f"{b / 2**20:.0f}" for b in picks) + f" MiB (peak {max(samples) / 2**20:.0f})"


def flat_ratio(samples: list[int]) -> float | None:
    """Mean of the last quarter against the first's, over the run without its first 10% (loading)
    and last 5% (workers stopping); ``None`` when too short to tell."""
    loaded = samples[int(len(samples) * 0.10): int(len(samples) * 0.95)]  # start: loading; end: workers stopping
    if len(loaded) < 8:
        return None
    q = len(loaded) // 4
    return statistics.mean(loaded[-q:]) / statistics.mean(loaded[:q])


def flatness(samples: list[int]) -> str:
    ratio = flat_ratio(samples)
    return "too short to tell" if ratio is None else f"last quarter {ratio:.3f}x the first (goal <= 1.05)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of peer (b), ours on first use and ours prepared, in turn")
    parser.add_argument("--per-row", type=int, default=20, help="rows timed for peer (a), scaled to --rows")
    parser.add_argument("--variant-rows", type=int, default=24, help="rows for the in-process variants (0: skip)")
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    args = parser.parse_args(argv)
    model = voice_path(args.size)
    texts = lines(args.rows)
    work = Path(tempfile.mkdtemp())
    csv_file = work / "rows.csv"
    csv_file.write_text("text,output,model\n" + "".join(f'"{t}",o{i:04d}.wav,{model}\n' for i, t in enumerate(texts)))
    load = os.getloadavg()[0]
    # The floor before and after the rest, averaged: a shared machine's load moves during a run.
    floor_runs = [floor(model, texts)]
    results = {}
    for workers in (1, 2):
        out = work / f"ours{workers}"
        out.mkdir()
        results[workers] = run_ours(csv_file, out, workers, work / f"cache{workers}")
    rounds: list[dict[str, tuple[float, float, list[int]]]] = []
    for number in range(max(1, args.rounds)):
        made = {}
        for name in ("b", "first", "prepared"):
            out = work / f"{name}{number}"
            out.mkdir()
            # first use: a cache of its own, cold; prepared: the same cache again, now warm
            made[name] = (run_piper_once(model, texts, out) if name == "b"
                          else run_ours(csv_file, out, 0, work / f"cache-defaults{number}"))
        rounds.append(made)
    (work / "a").mkdir()
    per_row = min(args.per_row, args.rows)
    t_a, c_a = (x * args.rows / per_row for x in run_piper_per_row(model, texts[:per_row], work / "a"))
    floor_runs.append(floor(model, texts))
    t_floor, c_floor = (statistics.mean(x[i] for x in floor_runs) for i in (0, 1))

    def median(name: str, field: int) -> float:
        return statistics.median(r[name][field] for r in rounds)

    t_b, c_b = median("b", 0), median("b", 1)
    print(f"{args.rows} rows, {model.name} ({model.stat().st_size / 1e6:.0f} MB voice), {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; wall s (CPU s)")
    print(f"(a) piper per row:          {t_a:7.1f} s ({c_a:6.1f})   (timed on {per_row} rows, scaled to {args.rows})")
    print(f"(b) one piper process:      {t_b:7.1f} s ({c_b:6.1f})   (median of {len(rounds)} rounds: "
          + ", ".join(f"{r['b'][0]:.1f}" for r in rounds) + " s)")
    print(f"  memory at 25/50/75/99%: {quarters(rounds[-1]['b'][2])} (last round)")
    print(f"floor, session.run only:    {t_floor:7.1f} s ({c_floor:6.1f})   (one sentence at a time, warm; "
          f"mean of {floor_runs[0][0]:.1f} s before and {floor_runs[1][0]:.1f} s after the rest)")
    medians = {-2: (median("first", 0), median("first", 1), rounds[-1]["first"][2]),
               -1: (median("prepared", 0), median("prepared", 1), rounds[-1]["prepared"][2])}
    for workers, (t, c, mem) in [*sorted(results.items()), *medians.items()]:
        label = {-2: "defaults", -1: "defaults, prepared"}.get(workers, f"{workers} worker{'s' if workers > 1 else ''}")
        print(f"demod-voice, {label:<18}: {t:7.1f} s ({c:6.1f})   "
              f"{t_a / t:.1f}x (a)  {t_b / t:.2f}x (b)  {t / t_floor:.2f}x floor;  CPU: {c_a / c:.1f}x (a)  "
              f"{c_b / c:.2f}x (b)  {c / c_floor:.2f}x floor" + ("" if workers > 0 else f"   (median of {len(rounds)} rounds)"))
        print(f"  memory at 25/50/75/99%: {quarters(mem)}; {flatness(mem)}" + ("" if workers > 0 else " (last round)"))
    for number, r in enumerate(rounds):
        print(f"round {number + 1}: (b) {r['b'][0]:.1f} s; defaults, first use {r['first'][0]:.1f} s: "
              f"{r['b'][0] / r['first'][0]:.2f}x (b); prepared {r['prepared'][0]:.1f} s: {r['b'][0] / r['prepared'][0]:.2f}x (b); "
              f"memory last quarter / first {flat_ratio(r['first'][2]) or 0:.3f}x first use, {flat_ratio(r['prepared'][2]) or 0:.3f}x prepared")
    print(f"scaling 1 -> 2 workers: {results[1][0] / results[2][0]:.2f}x")
    print(f"goal, default settings >= 1.3x (b), medians of {len(rounds)} rounds: {t_b / medians[-2][0]:.2f}x with the voice's "
          f"first use in the run, {t_b / medians[-1][0]:.2f}x prepared before; memory (last round) {flatness(medians[-2][2])} "
          f"first use, {flatness(medians[-1][2])} prepared; older goals: best of ours <= 0.8x floor, >= 6x (a)")
    if args.variant_rows:
        print(f"variants, in one process, {args.variant_rows} rows (wall s / CPU s, ratio to the first line's):")
        found = variants(model, texts[: args.variant_rows], work / "variant-cache")
        for label, wall, cpu in found:
            print(f"  {label:<34} {wall:6.2f} / {cpu:6.2f}   {wall / found[0][1]:.2f}x / {cpu / found[0][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
