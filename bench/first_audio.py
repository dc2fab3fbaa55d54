"""Where a request's time to first audio goes: one Piper request, stage by stage, in one run.

    .venv/bin/python bench/first_audio.py [--size medium] [--runs 20] [--voice PATH.onnx]

Each line is timed at every stage in turn (alternated, so the machine's noise falls on all alike),
warm, one request at a time; medians in ms:

  peer      piper-tts's ``PiperVoice.synthesize``: the whole first sentence, in this process;
  front     our split voice's front (encoder, durations, flow) for the first sentence, in this process;
  window    front + the first decoder window: the first chunk of a streamed job, in this process;
  job       ``make_job`` (the request side: voice files, options) per request;
  engine    ``EngineService.submit`` -> the first chunk on the engine's thread (worker protocol, dispatch);
  http      ``POST /v1/audio/speech`` (pcm) -> the first audio byte (routing, voice resolution,
            the engine, encoding, the event loop).

Each stage's cost is its difference from the one before (engine - window: the protocol;
http - engine: the server). Smoke run: ``--size tiny --runs 2``.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from live_server import start_server, wait_until  # noqa: E402
from serve_latency import lines, voice_path  # noqa: E402

from demod_voice.backends.piper.engine import FIRST_WINDOW, PiperBackend  # noqa: E402
from demod_voice.backends.piper.request import PiperRequest, make_job  # noqa: E402
from demod_voice.config import EngineSettings, PiperSettings  # noqa: E402
from demod_voice.engine.service import EngineService  # noqa: E402


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    parser.add_argument("--voice", help="a Piper voice (.onnx with its .onnx.json) instead of a generated one")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--words", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0, help="engine and server workers (0: the defaults)")
    parser.add_argument("--threads", type=int, default=0, help="engine.threads_per_worker (0: the default)")
    args = parser.parse_args()
    from piper.voice import PiperVoice

    load_start = os.getloadavg()[0]
    model = Path(args.voice) if args.voice else voice_path(args.size)
    name = model.name[: -len(".onnx")]
    texts = lines(max(args.runs, 3), args.words)
    folder = Path(tempfile.mkdtemp(prefix="first-audio-"))
    cache = str(folder / "cache")

    def job(text: str):
        return make_job(PiperRequest(model=str(model), text=text, output="-", settings=PiperSettings(), cache_dir=cache))

    peer = PiperVoice.load(str(model))
    ours = PiperBackend()
    ours.load(job("x").spec)
    engine = EngineService(EngineSettings(threads_per_worker=args.threads), workers=args.workers)
    config = {"serve": {"piper_voices": [str(model)], **({"workers": args.workers} if args.workers else {})},
              **({"engine": {"threads_per_worker": args.threads}} if args.threads else {})}
    server = start_server(folder / "serve", config, "--preload", name)
    stages: dict[str, list[float]] = {k: [] for k in ("peer", "front", "window", "job", "engine", "http")}
    try:
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 120, 0.2)
        with httpx.Client(timeout=60) as client:
            for index, text in enumerate(texts[:3] + texts[: args.runs]):
                got = measure(text, peer, ours, engine, client, server.url, name, job)
                if index >= 3:  # the first three warm every stage
                    for key, value in got.items():
                        stages[key].append(value)
    finally:
        engine.shutdown()
        server.stop(signal.SIGTERM)
    report(stages, args, model, load_start, ours)
    return 0


def measure(text, peer, ours, engine, client, url, name, job) -> dict[str, float]:
    """One line through every stage."""
    got = {"peer": timed(lambda: next(iter(peer.synthesize(text))))}
    syn = ours.synthesis_config(job(text).options)
    scales, speaker = ours._feeds(syn)
    ids = ours.phoneme_ids(text)[0]
    got["front"] = timed(lambda: ours.batcher._front([ids], scales, speaker))
    chunks = ours.synthesize(job(text))
    got["window"] = timed(lambda: next(chunks))
    chunks.close()
    got["job"] = timed(lambda: job(text))
    first: list[float] = []
    start = time.perf_counter()
    handle = engine.submit(job(text), on_chunk=lambda chunk: first.append(time.perf_counter()) if not first else None)
    handle.result()
    got["engine"] = first[0] - start
    start = time.perf_counter()
    with client.stream("POST", url + "/v1/audio/speech", json={"model": name, "input": text, "response_format": "pcm"}) as reply:
        reply.raise_for_status()
        body = reply.iter_raw()
        next(body)
        got["http"] = time.perf_counter() - start
        for _ in body:
            pass
    return got


def report(stages: dict[str, list[float]], args: argparse.Namespace, model: Path, load_start: float, ours: PiperBackend) -> None:
    p50 = {key: statistics.median(values) * 1000 for key, values in stages.items()}
    print(f"voice {model.name} ({model.stat().st_size / 1e6:.0f} MB), {args.words}-word lines, {args.runs} runs, "
          f"{os.cpu_count()} cores, load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"first window {FIRST_WINDOW} s of audio, {ours.batcher.context} frames of context; workers "
          f"{args.workers or 'default'}, threads per worker {args.threads or 'default'} (in-process rows: all cores)")
    rows = [
        ("peer: PiperVoice, whole first sentence", "peer", None),
        ("ours in-process: front of the first sentence", "front", None),
        ("ours in-process: front + first window (first chunk)", "window", "front"),
        ("request side: make_job", "job", None),
        ("engine: submit -> first chunk", "engine", "window"),
        ("HTTP: POST -> first audio byte", "http", "engine"),
    ]
    print(f"{'stage':<54} {'p50 ms':>8} {'cost over the stage before':>28}")
    for label, key, before in rows:
        extra = f"{p50[key] - p50[before]:+.1f} ms" if before else ""
        print(f"{label:<54} {p50[key]:8.1f} {extra:>28}")
    print(f"first audio over HTTP / peer's whole first sentence: {p50['http'] / p50['peer']:.2f}x (goal <= 0.6x)")


if __name__ == "__main__":
    sys.exit(main())
