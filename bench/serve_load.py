"""Load test: 8 concurrent clients send a fixed number of speech requests to ``demod-voice serve``;
every response is decoded and checked (format, rate, length, not silent), none may be lost.

Formats rotate through mp3, opus, aac, flac, wav and pcm, so every encoder runs under load.
Prints requests per second, latency percentiles, time to first byte and failures.

    .venv/bin/python bench/serve_load.py [--requests 240] [--clients 8] [--size tiny|medium] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from live_server import start_server, wait_until  # noqa: E402
from serve_latency import lines, pct, voice_path  # noqa: E402

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


def check(fmt: str, data: bytes, rate: int) -> str:
    """Empty when the response is valid audio; else what is wrong."""
    import av

    if fmt == "pcm":
        samples, got = np.frombuffer(data, "<i2").astype(np.float32) / 32768, 24000
    else:
        try:
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.audio[0]
                got = stream.rate
                samples = np.concatenate([f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)])
        except Exception as err:  # noqa: BLE001 - any decoder failure makes the response invalid
            return f"{fmt}: not decodable ({err})"
    expected = {"opus": 48000, "pcm": 24000}.get(fmt, rate)
    if got != expected:
        return f"{fmt}: rate {got}, expected {expected}"
    if len(samples) < 0.2 * got:
        return f"{fmt}: only {len(samples) / got:.2f} s of audio"
    if np.abs(samples).max() < 1e-3 * (32768 if np.abs(samples).max() > 2 else 1):
        return f"{fmt}: silent"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", default="tiny", help="generated Piper voice size (tiny: encoders and server dominate)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    model = voice_path(args.size)
    name = model.name[: -len(".onnx")]
    import json

    rate = json.loads(Path(f"{model}.json").read_text())["audio"]["sample_rate"]
    texts = lines(40, 10)
    server = start_server(Path(tempfile.mkdtemp(prefix="serve-load-")), {"serve": {"piper_voices": [str(model)],
                                                                                     "workers": args.workers}}, "--preload", name)
    results: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))

    def client() -> None:
        with httpx.Client(timeout=120) as session:
            while (index := _next(counter, lock)) is not None:
                fmt = FORMATS[index % len(FORMATS)]
                start = time.perf_counter()
                first = None
                parts = []
                try:
                    with session.stream("POST", server.url + "/v1/audio/speech",
                                        json={"model": name, "input": texts[index % len(texts)], "response_format": fmt}) as r:
                        for part in r.iter_raw():
                            first = first or time.perf_counter() - start
                            parts.append(part)
                        problem = "" if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                problem = problem or check(fmt, b"".join(parts), rate)
                with lock:
                    results.append((time.perf_counter() - start, first or 0.0, problem))

    try:
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 120, 0.2)
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        server.stop(signal.SIGTERM)

    latencies = [r[0] for r in results]
    firsts = [r[1] for r in results if r[1]]
    failures = [r[2] for r in results if r[2]]
    print(f"{args.clients} clients, {args.requests} requests ({', '.join(FORMATS)} in turn), Piper {args.size}, "
          f"{args.workers} workers: {len(results)} answered, {len(failures)} invalid, {args.requests - len(results)} lost")
    print(f"  {len(results) / seconds:.2f} req/s; latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {pct(latencies, 0.95) * 1000:.0f} ms; first byte p50 {statistics.median(firsts) * 1000:.0f} ms")
    for problem in sorted(set(failures))[:10]:
        print(f"  invalid: {problem}")
    sys.exit(1 if failures or len(results) != args.requests else 0)


def _next(counter, lock: threading.Lock):
    with lock:
        return next(counter, None)


if __name__ == "__main__":
    main()
