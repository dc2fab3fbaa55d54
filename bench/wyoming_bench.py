"""Benchmark: demod-voice's Wyoming server against wyoming-piper, in one run, as Home Assistant talks to them.

Both serve the same generated medium Piper voice (random weights, Piper's real shape) on loopback;
the same lines go to each, alternated line by line so that machine noise falls on both alike.

    .venv/bin/python bench/wyoming_bench.py [--rounds 2] [--groups 4] [--workers 2] [--int8]

Measured with the wyoming package's own client: time to the first ``audio-chunk`` and to ``audio-stop``
for one client at a time (a ``synthesize``, and Home Assistant's streaming flow fed word by word),
then 4 clients at once (total time until all four streams are complete). Needs wyoming-piper
(``pip install --no-deps wyoming-piper==2.5.2 sentence-stream``, as ``.ci/run`` does). ``--int8``: demod-voice serves
the voice's INT8 copy (``models quantize``, static; made once beside the bench voice), wyoming-piper the float voice:
what an administrator who chose the INT8 copy gets (its audio is not the float voice's: docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path("/tmp/dv-bench-models")
LINES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well. Four hours of steady work faced us.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls. The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage. Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
]


def voice() -> Path:
    model = MODELS / "medium.onnx"
    if not model.exists():
        print(f"generating a medium voice in {MODELS} ...", file=sys.stderr)
        MODELS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_piper_voice.py"), str(model), "--size", "medium"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return model


def int8_copy(model: Path) -> Path:
    """The INT8 copy of ``model`` (``models quantize``'s static method), made once beside it."""
    copy = model.with_name(f"{model.stem}-int8.onnx")
    if not copy.exists():
        from demod_voice.backends.piper.quantize import quantize_voice

        print(f"quantizing {model.name} ...", file=sys.stderr)
        quantize_voice(model, copy, "static")
    return copy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, what: str) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start listening")


def start_wyoming_piper(model: Path, work: Path) -> tuple[subprocess.Popen, int]:
    data = work / "wyoming-piper"
    data.mkdir()
    shutil.copy(model, data / "medium.onnx")
    shutil.copy(f"{model}.json", data / "medium.onnx.json")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "wyoming_piper", "--voice", "medium", "--data-dir", str(data),
                                "--uri", f"tcp://127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    wait_port(port, process, "wyoming-piper")
    return process, port


# Until ``demod-voice serve --wyoming`` is there, the bench serves through the library the same way.
RUNNER = """
import asyncio, sys
from demod_voice.config import load_config
from demod_voice.engine.service import EngineService
from demod_voice.serve.core import build_context
from demod_voice.serve.wyoming.server import run_wyoming
config, _ = load_config(None)
engine = EngineService(config.engine, workers=config.serve.workers)
try:
    asyncio.run(run_wyoming(sys.argv[1], build_context(config, engine)))
finally:
    engine.shutdown()
"""


def serve_command(uri: str) -> list[str]:
    """``demod-voice serve --wyoming URI`` (Wyoming alone), or the library runner when the CLI lacks it."""
    cli = [sys.executable, str(ROOT / "bin" / "demod-voice")]
    usage = subprocess.run([*cli, "serve", "--help"], capture_output=True, text=True)
    if "--wyoming" in usage.stdout:
        alone = ["--no-http"] if "--no-http" in usage.stdout else []
        return [*cli, "serve", "--wyoming", uri, *alone]
    return [sys.executable, "-c", RUNNER, uri]


def start_demod_voice(model: Path, work: Path, workers: int) -> tuple[subprocess.Popen, int]:
    cache = work / "cache"
    (cache / "piper").mkdir(parents=True)
    shutil.copy(model, cache / "piper" / "medium.onnx")
    shutil.copy(f"{model}.json", cache / "piper" / "medium.onnx.json")
    port = free_port()
    env = {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache), "XDG_CONFIG_HOME": str(work / "xdg")}
    if workers:
        env["DEMOD_VOICE_SERVE_WORKERS"] = str(workers)
    process = subprocess.Popen(serve_command(f"tcp://127.0.0.1:{port}"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    wait_port(port, process, "demod-voice serve --wyoming")
    return process, port


async def request(port: int, text: str, streaming: bool) -> tuple[float, float, float]:
    """(seconds to the first audio chunk, seconds to the end, seconds of audio) for one request on a new connection."""
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

    voice = SynthesizeVoice(name="medium")
    end = "synthesize-stopped" if streaming else AudioStop().event().type
    started = time.perf_counter()
    first, audio = None, 0.0
    async with AsyncTcpClient("127.0.0.1", port) as client:
        if streaming:  # Home Assistant's flow, the text arriving word by word as from an LLM
            await client.write_event(SynthesizeStart(voice=voice).event())
            for word in text.split(" "):
                await client.write_event(SynthesizeChunk(text=word + " ").event())
            await client.write_event(Synthesize(text=text, voice=voice).event())
            await client.write_event(SynthesizeStop().event())
        else:
            await client.write_event(Synthesize(text=text, voice=voice).event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            if event is None:
                raise RuntimeError("the server closed the connection")
            if AudioChunk.is_type(event.type):
                first = first or time.perf_counter() - started
                chunk = AudioChunk.from_event(event)
                audio += chunk.seconds
            elif event.type == "error":
                raise RuntimeError(f"error event: {event.data}")
            elif event.type == end:
                return first or 0.0, time.perf_counter() - started, audio


async def concurrent(port: int, texts: list[str]) -> tuple[float, list[tuple[float, float, float]]]:
    started = time.perf_counter()
    results = await asyncio.gather(*(request(port, text, False) for text in texts))
    return time.perf_counter() - started, list(results)


def stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"min {values[0] * 1000:7.1f}  median {statistics.median(values) * 1000:7.1f}  p95 {p95 * 1000:7.1f} ms"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="times each line is sent to each server, one client at a time")
    parser.add_argument("--groups", type=int, default=4, help="groups of 4 concurrent clients per server")
    parser.add_argument("--workers", type=int, default=0, help="demod-voice workers for the voice (serve.workers; 0: its default)")
    parser.add_argument("--int8", action="store_true", help="demod-voice serves the voice's INT8 copy (wyoming-piper the float voice)")
    args = parser.parse_args()
    model = voice()
    ours_model = int8_copy(model) if args.int8 else model
    with tempfile.TemporaryDirectory(prefix="wyoming-bench.") as work:
        work = Path(work)
        peer, peer_port = start_wyoming_piper(model, work)
        ours, our_port = start_demod_voice(ours_model, work, args.workers)
        try:
            load = os.getloadavg()[0]
            asyncio.run(run(args, {"wyoming-piper": peer_port, "demod-voice": our_port}))
            print(f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores "
                  f"(demod-voice: {args.workers or 'the default number of'} worker(s) for the voice"
                  f"{', its INT8 copy' if args.int8 else ''})")
        finally:
            stop(ours)
            stop(peer)
    return 0


async def run(args: argparse.Namespace, ports: dict[str, int]) -> None:
    for port in ports.values():  # warm: model loaded, first-run costs paid
        for line in LINES[:2]:
            await request(port, line, False)
            await request(port, line, True)
    single = {name: {"synthesize": [], "streaming": []} for name in ports}
    for _ in range(args.rounds):
        for line in LINES:
            for streaming in (False, True):
                for name, port in ports.items():
                    single[name]["streaming" if streaming else "synthesize"].append(await request(port, line, streaming))
    together = {name: [] for name in ports}
    for group in range(args.groups):
        texts = [LINES[(group * 4 + i) % len(LINES)] for i in range(4)]
        for name, port in ports.items():
            together[name].append(await concurrent(port, texts))
    report(single, together)


def report(single: dict, together: dict) -> None:
    print("One client at a time (medium voice, warm; times in ms):")
    for mode in ("synthesize", "streaming"):
        for name, results in single.items():
            rows = results[mode]
            rtf = sum(total for _, total, _ in rows) / sum(audio for _, _, audio in rows)
            print(f"  {mode:10s} {name:13s} first audio {stats([r[0] for r in rows])}")
            print(f"  {'':10s} {'':13s} total       {stats([r[1] for r in rows])}   RTF {rtf:.3f}")
    print("4 clients at once (time until all four streams are complete; first audio per client):")
    for name, groups in together.items():
        rows = [r for _, results in groups for r in results]
        audio = sum(a for _, _, a in rows)
        print(f"  {name:13s} total {stats([t for t, _ in groups])}   first audio {stats([r[0] for r in rows])}   "
              f"aggregate RTF {sum(t for t, _ in groups) / audio:.3f}")
    ours, peer = single["demod-voice"], single["wyoming-piper"]
    for mode in ("synthesize", "streaming"):
        ratio = statistics.median(r[0] for r in ours[mode]) / statistics.median(r[0] for r in peer[mode])
        print(f"time to first audio, {mode}: demod-voice / wyoming-piper = {ratio:.2f}x (goal <= 0.5x)")
    ratio = statistics.median(t for t, _ in together["demod-voice"]) / statistics.median(t for t, _ in together["wyoming-piper"])
    print(f"4 concurrent clients, total time: demod-voice / wyoming-piper = {ratio:.2f}x (goal <= 0.6x)")


if __name__ == "__main__":
    sys.exit(main())
