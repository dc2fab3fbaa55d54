"""Where one Piper request's time to first audio goes, step by step, over HTTP on a warm server.

    .venv/bin/python bench/request_trace.py [--words 3] [--runs 20] [--size medium]

The server and its workers load bench/trace_site/sitecustomize.py, which timestamps each step
(wall clock, shared by the processes); per step, the median milliseconds since the client sent its
``POST`` and the step's cost over the step before. The worker's own step is the synthesis of the
first chunk (the front and the first decoder window). Smoke run: ``--size tiny --runs 3``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]
from live_server import start_server, wait_until  # noqa: E402
from serve_latency import lines, voice_path  # noqa: E402

STEPS = ("resolve", "submit", "submitted", "worker_got", "worker_chunk", "pool_chunk", "encode", "client")
MEANING = {
    "resolve": "HTTP parsed, key checked, handler runs",
    "submit": "voice resolved, reading rules, job made",
    "submitted": "engine queued the job",
    "worker_got": "job reached its worker",
    "worker_chunk": "worker made the first chunk (synthesis)",
    "pool_chunk": "chunk back on the engine's thread",
    "encode": "handler has it (event loop woken)",
    "client": "first audio byte at the client",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", default="medium")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    model = voice_path(args.size)
    name = model.name[: -len(".onnx")]
    folder = Path(tempfile.mkdtemp(prefix="request-trace-"))
    log = folder / "trace.log"
    env = {"PYTHONPATH": str(ROOT / "bench" / "trace_site"), "TRACE_REQUEST_LOG": str(log)}
    server = start_server(folder / "serve", {"serve": {"piper_voices": [str(model)]}}, "--preload", name, env=env)
    offsets: dict[str, list[float]] = {step: [] for step in STEPS}
    try:
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 120, 0.2)
        with httpx.Client(timeout=60) as client:
            for index, text in enumerate(lines(args.runs + 3, args.words)):
                log.unlink(missing_ok=True)
                sent = time.time()
                with client.stream("POST", server.url + "/v1/audio/speech", json={"model": name, "input": text, "response_format": "pcm"}) as r:
                    body = r.iter_raw()
                    next(body)
                    first = time.time()
                    for _ in body:
                        pass
                if index < 3:  # warm
                    continue
                seen: dict[str, float] = {"client": first}
                for line in log.read_text().splitlines():
                    stamp, _, step = line.split()
                    seen.setdefault(step, float(stamp))
                for step in STEPS:
                    if step in seen:
                        offsets[step].append((seen[step] - sent) * 1000)
    finally:
        server.stop(signal.SIGTERM)
    print(f"{args.size} voice, {args.words}-word lines, {args.runs} runs, {os.cpu_count()} cores, load average {load:.2f} at the "
          f"start, {os.getloadavg()[0]:.2f} at the end; medians in ms since the POST was sent")
    before = 0.0
    for step in STEPS:
        if not offsets[step]:
            continue
        at = statistics.median(offsets[step])
        print(f"{step:13} {at:7.1f}   +{at - before:5.1f}   {MEANING[step]}")
        before = at


if __name__ == "__main__":
    main()
