"""Benchmark: ``demod-voice serve`` latency and throughput against in-process Piper and piper-tts's own HTTP server.

One run, one generated Piper voice (Piper's real medium shape, random weights), the same lines:

1. time to the first audio byte over HTTP (warm, one client, 10-word lines), p50, against the
   in-process synthesis time of the same first sentence with a loaded ``PiperVoice`` (the floor
   any server adds to); and the same for a 3-word phrase;
2. 8 concurrent clients, a fixed number of requests: requests per second and p95 latency of
   ``serve`` against ``python -m piper.http_server`` (Flask, threaded, one loaded voice);
3. resident memory of an idle server with no model loaded (and of the loaded one, workers included).

    .venv/bin/python bench/serve_latency.py [--requests 160] [--clients 8] [--workers N]

Without ``--workers`` the server runs with its defaults (``serve.workers`` 0: a worker per core for
a Piper voice), which is what the goals are about. Every goal is printed beside its peer's figure,
with the load average at the start and the end (figures from a busy machine mean little).
Smoke run: ``--size tiny --requests 8 --clients 2 --lines 4``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from live_server import children, free_port, start_server, wait_until  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing softly near green hills and "
         "rivers under bright morning light").split()


def lines(count: int, words: int) -> list[str]:
    """Distinct lines of ``words`` words, one sentence each."""
    out = []
    for i in range(count):
        picked = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words)]
        out.append(" ".join(picked).capitalize() + ".")
    return out


PEER_SPIN_SECONDS = 0.1
"""Pause after each in-process ``PiperVoice`` run before the request is sent: piper's session (onnxruntime's
defaults) keeps its intra-op threads spinning for a while after a run, which took CPU from the server's worker."""


def voice_path(size: str) -> Path:
    cache = Path(tempfile.gettempdir()) / "demod-voice-bench"
    model = cache / f"{size}.onnx"
    if not model.exists():
        print(f"generating a {size} voice in {cache} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_piper_voice.py"), str(model), "--size", size],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return model


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def first_audio(url: str, model: Path, name: str, texts: list[str]) -> tuple[list[float], list[float]]:
    """Per line, alternated so both share the machine's noise: seconds to the first chunk of piper's own
    ``synthesize`` on a voice loaded here (one sentence per line), and seconds to the first audio byte
    of the same line from the server (one client, warm)."""
    from piper.voice import PiperVoice

    voice = PiperVoice.load(model)
    local, remote = [], []
    with httpx.Client(timeout=60) as client:
        for index, text in enumerate(texts[:3] + texts):
            start = time.perf_counter()
            next(iter(voice.synthesize(text)))
            floor = time.perf_counter() - start
            time.sleep(PEER_SPIN_SECONDS)  # the peer's onnxruntime threads spin on after a run: let them go idle
            start = time.perf_counter()
            with client.stream("POST", url + "/v1/audio/speech", json={"model": name, "input": text, "response_format": "pcm"}) as r:
                r.raise_for_status()
                body = r.iter_raw()
                next(body)
                first = time.perf_counter() - start
                for _ in body:
                    pass
            if index >= 3:  # the first three warm both sides
                local.append(floor)
                remote.append(first)
    return local, remote


def load(send, texts: list[str], requests: int, clients: int) -> tuple[float, list[float], int]:
    """``clients`` threads share ``requests`` requests; (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=120) as session:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                start = time.perf_counter()
                ok = send(session, texts[index % len(texts)])
                with lock:
                    latencies.append(time.perf_counter() - start)
                    failures[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, failures[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_piper_http(model: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "piper.http_server", "-m", str(model), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = wait_until(lambda: _answers(f"http://127.0.0.1:{port}/voices"), 120, 0.2)
    if not ok:
        process.kill()
        raise SystemExit("piper.http_server did not start (is flask installed? pip install flask)")
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="serve's workers for the voice (0: serve's default; "
                                                                 "the peer is one threaded process)")
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="engine.threads_per_worker (0: the default)")
    args = parser.parse_args()

    load_start = os.getloadavg()
    model = voice_path(args.size)
    name = model.name[: -len(".onnx")]
    ten, three = lines(args.lines, 10), lines(args.lines, 3)
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))

    idle = start_server(folder / "idle", {})
    time.sleep(1.0)
    idle_rss = rss_mb(idle.pid)
    idle.stop()

    config = {"serve": {"piper_voices": [str(model)], **({"workers": args.workers} if args.workers else {})},
              **({"engine": {"threads_per_worker": args.threads}} if args.threads else {})}
    server = start_server(folder / "serve", config, "--preload", name)
    try:
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 120, 0.2)
        floor10, ttfb10 = first_audio(server.url, model, name, ten)
        floor3, ttfb3 = first_audio(server.url, model, name, three)

        def send_serve(session: httpx.Client, text: str) -> bool:
            r = session.post(server.url + "/v1/audio/speech", json={"model": name, "input": text, "response_format": "wav"})
            return r.status_code == 200 and r.content[:4] == b"RIFF" and len(r.content) > 1000

        serve_s, serve_lat, serve_fail = load(send_serve, ten, args.requests, args.clients)
        loaded_rss = rss_mb(server.pid) + sum(rss_mb(pid) for pid in children(server.pid))
    finally:
        server.stop(signal.SIGTERM)

    port = free_port()
    peer = start_piper_http(model, port)
    try:
        def send_peer(session: httpx.Client, text: str) -> bool:
            r = session.post(f"http://127.0.0.1:{port}/synthesize", json={"text": text})
            return r.status_code == 200 and r.content[:4] == b"RIFF" and len(r.content) > 1000

        send_peer(httpx.Client(), ten[0])
        peer_s, peer_lat, peer_fail = load(send_peer, ten, args.requests, args.clients)
        peer_rss = rss_mb(peer.pid)
    finally:
        peer.send_signal(signal.SIGTERM)
        peer.wait(30)

    p50 = statistics.median
    load_end = os.getloadavg()
    workers = f"{args.workers or 'default'} workers x {args.threads or 'default'} threads"
    print(f"voice: generated Piper {args.size} ({model.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} CPU cores, "
          f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end (1-minute)")
    print(f"first audio, 10-word lines: serve TTFB p50 {p50(ttfb10) * 1000:.1f} ms vs in-process PiperVoice whole first "
          f"sentence p50 {p50(floor10) * 1000:.1f} ms: ratio {p50(ttfb10) / p50(floor10):.2f} (goal <= 0.6)")
    print(f"first audio, 3-word phrase: serve TTFB p50 {p50(ttfb3) * 1000:.1f} ms (goal < 50 ms), "
          f"p95 {pct(ttfb3, 0.95) * 1000:.1f} ms; in-process PiperVoice p50 {p50(floor3) * 1000:.1f} ms "
          f"(ratio {p50(ttfb3) / p50(floor3):.2f})")
    print(f"{args.clients} clients x {args.requests} requests: serve ({workers}) {args.requests / serve_s:.2f} req/s, "
          f"p95 {pct(serve_lat, 0.95) * 1000:.0f} ms, {serve_fail} failed | piper.http_server {args.requests / peer_s:.2f} req/s, "
          f"p95 {pct(peer_lat, 0.95) * 1000:.0f} ms, {peer_fail} failed")
    print(f"  throughput ratio {peer_s / serve_s:.2f}x (goal >= 1.3), p95 ratio {pct(serve_lat, 0.95) / pct(peer_lat, 0.95):.2f} "
          "(goal <= 1)")
    print(f"memory: idle serve (no model) {idle_rss:.0f} MB resident (goal < 150); serve with the voice loaded "
          f"{loaded_rss:.0f} MB (server + workers); piper.http_server {peer_rss:.0f} MB")


if __name__ == "__main__":
    main()
