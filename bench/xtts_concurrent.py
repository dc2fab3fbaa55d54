"""Benchmark: 4 clients, 4 different voices, at once against one after another, on one warm XTTS worker.

    .venv/bin/python bench/xtts_concurrent.py [--clients 4] [--tokens 30] [--size full] [--mode stream|batched]

Both sides go through the same resident engine a server uses (``EngineService``, one worker, the
voices' latents already cached): (a) each request submitted when the previous one has finished;
(b) all requests submitted at once from their own threads, as concurrent HTTP clients would. In
(b) the engine hands requests that arrive together to the worker together and their sentences
share GPT batches, each sentence conditioned on its own voice. ``--mode stream`` (the default, as
``serve`` makes requests): token-streamed requests, whose chunks come interleaved from the shared
batch; the goals: (b) <= 0.6x (a), and each request's first audio in (b) <= 1.3x its first audio in
(a), where it ran alone. In stream mode, (c): a one-sentence request arriving while a six-sentence one streams (submitted at
the long one's first audio), its first audio against its first audio alone: it joins the running batch at the next
sentence round (before 2026-12-07 it waited for every sentence of the long one). ``--mode batched``: whole sentences
in batches (``xtts_token_streaming: false``). The checkpoint is XTTS-v2-shaped
with random weights that never sample the stop token, so every sentence runs to ``--tokens``
audio tokens on both sides and makes the same amount of audio. Prints wall times, the ratio, RTF.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

TEXTS = [
    "The first client asks for a short greeting. Then it asks for one more sentence.",
    "A second voice reads the weather for today. It will be sunny and warm.",
    "The third one is a reminder about a meeting. It starts at ten in the morning.",
    "And the fourth voice says goodbye to everyone. See you again tomorrow.",
]


def voices(folder: Path, count: int) -> list[Path]:
    """One reference recording per client, each with its own pitch."""
    import numpy as np
    import soundfile

    paths = []
    for index in range(count):
        rate = 22050
        t = np.arange(8 * rate) / rate
        pitch = 100 + 35 * index
        source = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 10))
        envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
        path = folder / f"voice{index}.wav"
        soundfile.write(str(path), (0.3 * source * envelope / np.abs(source * envelope).max()).astype("float32"), rate)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=30, help="audio tokens per sentence (both sides)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--mode", choices=("stream", "batched"), default="stream")
    args = parser.parse_args()
    import os

    load_start = os.getloadavg()[0]

    from demod_voice.backends.xtts.request import XttsRequest, make_job
    from demod_voice.config import EngineSettings, XttsSettings
    from demod_voice.engine.handles import Priority
    from demod_voice.engine.service import EngineService

    model = model_dir(args.size, args.tokens)
    work = Path(tempfile.mkdtemp(prefix="xtts-concurrent-"))
    refs = voices(work, args.clients)
    # The checkpoint's own audio-token limit ends every sentence (max_new_tokens would overrun its positions).
    settings = XttsSettings(model_dir=str(model), sentence_silence=0.0)

    def request(index: int, text: str = ""):
        return make_job(XttsRequest(references=(str(refs[index]),), text=text or TEXTS[index % len(TEXTS)], output="-",
                                    settings=settings, cache_dir=str(work), stream=args.mode == "stream"))

    service = EngineService(EngineSettings(), workers=1, log_level=logging.WARNING)
    try:
        started = time.perf_counter()
        for index in range(args.clients):  # warm: model loaded, every voice's latents computed and cached
            warm = service.submit(request(index), priority=Priority.INTERACTIVE).result()
            if warm.error is not None:
                raise SystemExit(f"warm-up failed: {warm.error}")
        print(f"warm-up (load + {args.clients} voices' latents): {time.perf_counter() - started:.1f} s")

        one_by_one, audio, alone = timed_sequential(service, request, args.clients)
        together, firsts = timed_concurrent(service, request, args.clients)
        late = None
        if args.mode == "stream":
            long_text = " ".join(f"This is sentence number {n} of a long answer that is still being read." for n in range(1, 7))
            late_alone = service.submit(request(1, "A short question comes in.")).result().first_chunk_seconds or 0.0
            late = (timed_late(service, request(0, long_text), request(1, "A short question comes in.")), late_alone)
    finally:
        service.shutdown()
    print(f"{args.size} XTTS, {args.mode} mode, {os.cpu_count()} cores, load average {load_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    print(f"(a) one after another: {one_by_one:.2f} s for {audio:.1f} s of audio (RTF {one_by_one / audio:.2f}); "
          f"first audio alone median {statistics.median(alone.values()):.2f} s")
    print(f"(b) {args.clients} at once:          {together:.2f} s (RTF {together / audio:.2f}); "
          f"first audio per client median {statistics.median(firsts.values()):.2f} s, max {max(firsts.values()):.2f} s")
    worst = max(firsts[i] / alone[i] for i in firsts)
    print(f"ratio (b)/(a): {together / one_by_one:.2f}  (goal <= 0.6); each client's first audio (b)/(a): worst {worst:.2f}x "
          f"(goal <= 1.3)")
    if late is not None:
        (first, long_left), alone_first = late
        print(f"(c) one sentence arriving while a six-sentence request streams: first audio {first:.2f} s against "
              f"{alone_first:.2f} s alone ({first / alone_first:.2f}x); the long request had {long_left:.2f} s left to run")


def timed_sequential(service, request, clients: int) -> tuple[float, float, dict[int, float]]:
    """(wall seconds, audio seconds, each request's first audio) one request after another."""
    started = time.perf_counter()
    audio = 0.0
    firsts = {}
    for index in range(clients):
        handle = service.submit(request(index))
        audio += sum(len(c.samples) for c in handle.chunks()) / 24000
        firsts[index] = handle.result().first_chunk_seconds or 0.0
    return time.perf_counter() - started, audio, firsts


def timed_concurrent(service, request, clients: int) -> tuple[float, dict[int, float]]:
    firsts: dict[int, float] = {}
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        job = request(index)
        barrier.wait()
        handle = service.submit(job)
        for _ in handle.chunks():
            pass
        firsts[index] = handle.result().first_chunk_seconds or 0.0

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, firsts


def timed_late(service, long_job, short_job) -> tuple[float, float]:
    """(the short request's first audio, submitted at the long one's first audio; seconds the long one ran after it)."""
    running = service.submit(long_job)
    chunks = iter(running.chunks())
    next(chunks)
    arrived = time.perf_counter()
    short = service.submit(short_job)
    for _ in chunks:
        pass
    long_left = time.perf_counter() - arrived
    for _ in short.chunks():
        pass
    return short.result().first_chunk_seconds or 0.0, long_left


def model_dir(size: str, tokens: int) -> Path:
    if size == "full":
        from xtts_clone import prepare

        return prepare(tokens)[0]
    import subprocess

    folder = Path(tempfile.gettempdir()) / "demod-voice-bench" / "xtts-tiny-nostop"
    if not (folder / "model.pth").exists():
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_xtts_model.py"), str(folder), "--size", "tiny",
                        "--max-audio-tokens", str(tokens), "--never-stop"], check=True)
    return folder


if __name__ == "__main__":
    main()
