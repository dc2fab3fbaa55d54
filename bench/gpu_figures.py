"""GPU figures in one run: XTTS first audio and aggregate real-time factor at 1, 4 and 16 concurrent
streams, and Piper sentences batched on CUDA. Run it through ``bench/gpu_figures.sh`` on a GPU machine.

    python bench/gpu_figures.py [--streams 1,4,16] [--tokens 60] [--size full] [--device gpu] [--piper-sentences 64]

XTTS: a checkpoint of XTTS-v2's real shapes with random weights that never sample the stop token
(every sentence runs to ``--tokens`` audio tokens: the same work on every side), on one resident
worker (``EngineService``, as ``serve`` runs it). Each stream is a streamed request (``-o -`` /
HTTP) of two sentences in its own voice (a random voice profile: no reference decoding, which
random weights make meaningless anyway); N streams are submitted at once, as N clients would, so
the engine hands them to the worker together and they share the GPT's steps. Printed per N: wall
time until all are complete, audio made, aggregate RTF (wall / audio) and x real time, each
stream's first audio (median, max) and its ratio to one stream alone.

Piper: a generated voice of Piper's medium shape on onnxruntime's CUDA provider (``onnxruntime-gpu``),
the same sentences made one at a time and in batches of 8 and 32: wall time, sentences per second,
x real time. Skipped, with the reason, where CUDA's provider is missing.

Each part reports its own failure and the run goes on; the load average is printed at the start
and the end. CPU smoke run: ``--device cpu --size tiny --streams 1,2 --tokens 8 --piper-sentences 4``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from batch_piper import lines  # noqa: E402

from demod_voice.backends.piper.engine import PiperBackend  # noqa: E402
from demod_voice.backends.piper.request import PiperOptions  # noqa: E402
from demod_voice.backends.xtts.request import XttsRequest, make_job  # noqa: E402
from demod_voice.config import EngineSettings, XttsSettings  # noqa: E402
from demod_voice.engine.jobs import LoadSpec  # noqa: E402
from demod_voice.engine.service import EngineService  # noqa: E402
from demod_voice.models.registry import model_identity  # noqa: E402
from demod_voice.voices.profiles import Profile  # noqa: E402

TEXT = "Stream number {n} reads the first of its two sentences. Then it reads the second one, a little longer."
WORK = Path(tempfile.gettempdir()) / "demod-voice-gpu-figures"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="1,4,16", help="concurrent streams to measure, comma-separated")
    parser.add_argument("--tokens", type=int, default=60, help="audio tokens per sentence (fixed: the weights never stop)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--piper-sentences", type=int, default=64, help="0: skip Piper")
    parser.add_argument("--skip-xtts", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the start, {os.cpu_count()} cores; {gpu_name()}", flush=True)
    if not args.skip_xtts:
        part("XTTS", lambda: xtts(args))
    if args.piper_sentences:
        part("Piper", lambda: piper(args))
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    return 0


def part(name: str, run) -> None:
    started = time.perf_counter()
    try:
        run()
    except Exception as err:  # noqa: BLE001 - one part failing must not lose the other's figures
        print(f"{name}: FAILED after {time.perf_counter() - started:.0f} s: {type(err).__name__}: {err}", flush=True)
        traceback.print_exc(file=sys.stderr)


def gpu_name() -> str:
    try:
        import torch

        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}" if torch.cuda.is_available() else "no CUDA device"
    except ImportError:
        return "torch missing"


# --- XTTS ---------------------------------------------------------------------------------------------


def xtts_checkpoint(size: str, tokens: int) -> Path:
    folder = WORK / f"xtts-{size}-{tokens}-nostop"
    if not (folder / "model.pth").exists():
        print(f"generating a {size} XTTS checkpoint ({tokens} audio tokens per sentence) ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_xtts_model.py"), str(folder), "--size", size,
                        "--max-audio-tokens", str(tokens), "--never-stop"], check=True)
    return folder


def profiles(folder: Path, count: int) -> list[Profile]:
    """``count`` random voices of the checkpoint's shapes (what a saved profile holds)."""
    import json

    import numpy as np

    config = json.loads((folder / "config.json").read_text())
    channels = config["model_args"]["gpt_n_model_channels"]
    latents = 32 if config["model_args"].get("gpt_use_perceiver_resampler", True) else 1
    identity = model_identity(folder)
    rng = np.random.default_rng(0)
    return [Profile(name=f"bench{i}", model=identity, references=(), created="",
                    gpt_cond_latent=rng.standard_normal((1, latents, channels), dtype=np.float32),
                    speaker_embedding=(0.1 * rng.standard_normal((1, 512, 1))).astype(np.float32)) for i in range(count)]


def xtts(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.streams.split(",")]
    folder = xtts_checkpoint(args.size, args.tokens)
    voices = profiles(folder, max(counts))
    settings = XttsSettings(model_dir=str(folder), sentence_silence=0.0, batch_sentences=max(16, max(counts)))

    def request(index: int):
        return make_job(XttsRequest(references=(), text=TEXT.format(n=index + 1), output="-", settings=settings,
                                    cache_dir=str(WORK), device=args.device, profile=voices[index], stream=True))

    service = EngineService(EngineSettings(), workers=1, log_level=logging.WARNING)
    try:
        started = time.perf_counter()
        warm = service.submit(request(0)).result()
        if warm.error is not None:
            raise RuntimeError(f"warm-up failed: {warm.error}")
        print(f"XTTS ({args.size}, {args.device}): load and warm-up {time.perf_counter() - started:.1f} s", flush=True)
        alone = None
        for count in counts:
            wall, audio, firsts = concurrent(service, request, count)
            alone = alone or statistics.median(firsts)
            print(f"  {count:3d} stream(s): {wall:6.2f} s for {audio:6.1f} s of audio: aggregate RTF {wall / audio:.3f} "
                  f"({audio / wall:.1f}x real time); first audio median {statistics.median(firsts):.3f} s, max {max(firsts):.3f} s "
                  f"= {max(firsts) / alone:.2f}x one stream alone", flush=True)
    finally:
        service.shutdown()


def concurrent(service: EngineService, request, count: int) -> tuple[float, float, list[float]]:
    """``count`` streamed requests at once: (wall seconds until all are complete, audio seconds, each one's first audio)."""
    jobs = [request(index) for index in range(count)]
    firsts: list[float] = []
    audio = [0.0]
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def client(job) -> None:
        barrier.wait()
        handle = service.submit(job)
        seconds = sum(len(chunk.samples) for chunk in handle.chunks()) / 24000
        result = handle.result()
        if result.error is not None:
            raise RuntimeError(str(result.error))
        with lock:
            audio[0] += seconds
            firsts.append(result.first_chunk_seconds or 0.0)

    threads = [threading.Thread(target=client, args=(job,)) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(firsts) != count:
        raise RuntimeError(f"{count - len(firsts)} of {count} streams failed")
    return time.perf_counter() - started, audio[0], firsts


# --- Piper --------------------------------------------------------------------------------------------


def piper(args: argparse.Namespace) -> None:
    import onnxruntime

    if args.device == "gpu" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        print(f"Piper on CUDA: skipped: onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
              f"(providers: {', '.join(onnxruntime.get_available_providers())}); install onnxruntime-gpu", flush=True)
        return
    size = "medium" if args.size == "full" else "tiny"
    voice = WORK / f"piper-{size}.onnx"
    if not voice.exists():
        print(f"generating a {size} Piper voice ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_piper_voice.py"), str(voice), "--size", size], check=True)
    backend = PiperBackend()
    info = backend.load(LoadSpec("piper", str(voice), device=args.device, model_config=f"{voice}.json", cache_dir=str(WORK / "cache")))
    if backend.batcher is None:
        raise RuntimeError("the voice could not be prepared for batches")
    texts = lines(args.piper_sentences)
    ids = [backend.phoneme_ids(text)[0] for text in texts]
    syn = backend.synthesis_config(PiperOptions(noise_scale=0.0, noise_w_scale=0.0))
    print(f"Piper ({size} voice, {info.device}: {info.detail.split(';')[0]}), {len(ids)} sentences:", flush=True)
    list(backend.batched(ids[:4], syn, 4))  # warm: kernels and memory
    base = None
    for batch in (1, 8, 32):
        started = time.perf_counter()
        audio = sum(len(a) for a in backend.batched(ids, syn, batch)) / backend.voice.config.sample_rate
        wall = time.perf_counter() - started
        base = base or wall
        print(f"  batches of {batch:2d}: {wall:6.2f} s, {len(ids) / wall:7.1f} sentences/s, {audio / wall:7.1f}x real time, "
              f"{base / wall:.2f}x one at a time", flush=True)


if __name__ == "__main__":
    sys.exit(main())
