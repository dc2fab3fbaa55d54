"""Benchmark: ``demod-voice batch`` on Ray against the local executor, in one run, on this machine.

    .venv/bin/python bench/ray_batch.py [--rows 200] [--size medium] [--repeat 2]

Runs as root inside a network namespace it makes itself (loopback only: Ray binds every interface
otherwise). The same CSV of Piper rows (generated voice, real size) is made by:
  (1) one machine: the local executor with 1 worker, and Ray with one node of 2 CPUs and 1 actor
      (``engine.ray_num_cpus: 2``, so both run 2 threads); goal: Ray within 1.15x;
  (2) "two nodes": a head and a second node on this machine, one CPU each, 2 actors of 1 CPU,
      against the local executor with 2 workers (1 thread each); goal: Ray within 1.1x.
Wall times are the whole command as a user runs it (Ray's include joining the cluster and placing
actors). Then, on the two-node cluster, through the worker handles themselves: the time from asking
for a worker to its model being loaded, and the time per one-sentence row, local against Ray.

Both nodes share this machine's two cores, so (2) measures Ray's own overhead, not scaling: real
scaling needs real machines, which this bench does not have.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from batch_piper import lines  # noqa: E402
from piper_infer import voice_path  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6392
INSIDE = "DEMOD_VOICE_BENCH_IN_NAMESPACE"


def reexec_in_namespace() -> None:
    """Run this script again inside a fresh network namespace with only loopback up."""
    if os.environ.get(INSIDE):
        return
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise SystemExit("this bench runs Ray inside a network namespace: it needs root and unshare")
    env = {**os.environ, INSIDE: "1"}
    command = " ".join(["ip link set lo up && exec", sys.executable, *map(_quote, sys.argv)])
    raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", command], env=env))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class LocalCluster:
    """``ray start`` nodes on 127.0.0.1, one CPU count per node."""

    def __init__(self, tmp: Path, cpus: list[int]) -> None:
        self.address = f"127.0.0.1:{PORT}"
        common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(300 * 2**20), "--disable-usage-stats"]
        self._ray("start", "--head", "--port", str(PORT), "--include-dashboard", "false", "--num-cpus", str(cpus[0]), *common)
        for count in cpus[1:]:
            self._ray("start", "--address", self.address, "--num-cpus", str(count), *common)

    def _ray(self, *args: str) -> None:
        subprocess.run([RAY, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    def stop(self) -> None:
        """End the processes of this namespace but this one (`ray stop` would end every Ray on the machine)."""
        ours = os.readlink("/proc/self/ns/net")
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int(entry.name) != os.getpid() and os.readlink(entry / "ns" / "net") == ours:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue
        time.sleep(1)


def batch(csv_file: Path, out: Path, workers: int, ray: str | None = None, cpus: float = 1.0) -> float:
    """Wall seconds of one ``demod-voice batch`` run into a fresh folder."""
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--ray", ray] if ray else []
    env = {**os.environ, "DEMOD_VOICE_ENGINE_RAY_NUM_CPUS": str(cpus)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "batch", str(csv_file), "--output-dir", str(out),
                           "--workers", str(workers), *extra], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"batch failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def alternate(repeat: int, local, ray) -> tuple[float, float]:
    """Fastest of ``repeat`` runs of each, run in turns."""
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for _ in range(repeat):
        times["local"].append(local())
        times["ray"].append(ray())
    print(f"    runs: local {', '.join(f'{t:.1f}' for t in times['local'])}; Ray {', '.join(f'{t:.1f}' for t in times['ray'])}")
    return min(times["local"]), min(times["ray"])


def handle_costs(executor, job, rows: int) -> tuple[float, float]:
    """(seconds from start_worker to ready, median seconds per one-job hand-over) for one worker."""
    started = time.perf_counter()
    worker = executor.start_worker(job.spec, logging.WARNING, 1)
    assert worker.recv()[0] == "ready"
    ready = time.perf_counter() - started
    times = []
    for _ in range(rows):
        t = time.perf_counter()
        worker.send([job])
        while worker.recv()[0] == "chunk":
            pass
        times.append(time.perf_counter() - t)
    worker.stop()
    return ready, statistics.median(times)


def handles(voice: Path, address: str, rows: int) -> dict[str, tuple[float, float]]:
    from demod_voice.backends.piper.request import PiperRequest, make_job
    from demod_voice.config import EngineSettings, load_config
    from demod_voice.engine.executors.local import LocalExecutor
    from demod_voice.engine.executors.ray import RayExecutor

    config, _ = load_config(None)
    job = make_job(PiperRequest(str(voice), "A short row.", "/dev/null", config.piper, "cpu", None))
    ray = RayExecutor(EngineSettings(ray_num_cpus=1), address)
    try:
        return {"local": handle_costs(LocalExecutor(), job, rows), "ray": handle_costs(ray, job, rows)}
    finally:
        ray.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--size", default="medium", help="generated voice size (tiny, medium)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration, alternating (the fastest counts)")
    args = parser.parse_args()
    reexec_in_namespace()
    voice = voice_path(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    os.environ.update(RAY_TMPDIR=str(tmp / "ray"), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                      XDG_CACHE_HOME=str(tmp / "cache"))
    csv_file = tmp / "rows.csv"
    csv_file.write_text("text,output,model\n" + "".join(f'"{t}",r{i:04d}.wav,{voice}\n' for i, t in enumerate(lines(args.rows))))
    out = tmp / "out"
    print(f"{args.rows} Piper rows, {args.size} generated voice, {os.cpu_count()} cores; wall seconds of the whole command, "
          f"fastest of {args.repeat} (local and Ray runs alternate, so that a busy machine weighs on both)")

    cluster = LocalCluster(tmp, [2])
    try:
        local1, ray1 = alternate(args.repeat, lambda: batch(csv_file, out, 1), lambda: batch(csv_file, out, 1, cluster.address, cpus=2))
    finally:
        cluster.stop()
    print(f"  one machine   local 1 worker {local1:6.1f} s   Ray 1 node x 2 CPUs, 1 actor {ray1:6.1f} s   "
          f"ratio {ray1 / local1:.3f} (goal <= 1.15)")

    cluster = LocalCluster(tmp, [1, 1])
    try:
        local2, ray2 = alternate(args.repeat, lambda: batch(csv_file, out, 2), lambda: batch(csv_file, out, 2, cluster.address, cpus=1))
        costs = handles(voice, cluster.address, 50)
    finally:
        cluster.stop()
    print(f"  two nodes     local 2 workers {local2:6.1f} s   Ray 2 nodes x 1 CPU, 2 actors {ray2:6.1f} s   "
          f"ratio {ray2 / local2:.3f} (goal <= 1.1)")
    (local_ready, local_row), (ray_ready, ray_row) = costs["local"], costs["ray"]
    print(f"  worker start (asked -> model loaded): local {local_ready:.2f} s, Ray actor {ray_ready:.2f} s")
    print(f"  one-sentence row through a loaded worker (median of 50): local {local_row * 1e3:.1f} ms, "
          f"Ray {ray_row * 1e3:.1f} ms, overhead {(ray_row - local_row) * 1e3:+.1f} ms per row")
    print("  both 'nodes' share this machine's cores: this is Ray's overhead, not scaling; real scaling needs real machines")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
