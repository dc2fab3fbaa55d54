"""Benchmark: INT8 copies of a Piper voice (``models quantize``) against the float voice, in one run.

    .venv/bin/python bench/quantize.py [--size medium] [--runs 5] [--threads 0]

For each method (static, dynamic): file size, real-time factor through the same backend the
workers use (warm, alternated with the float voice, medians over --runs), and fidelity at zero
noise: the log-mel distance (dB, time-warped) of each sentence from the float voice's, next to the
distance the float voice's own default noise puts between two renderings of it. The INT8 copies are
made once into the bench model folder (DV_BENCH_MODELS, default /tmp/dv-bench-models) and reused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from piper_infer import TEXT10, voice_path  # noqa: E402


def loaded(model: Path):
    from demod_voice.backends.piper.engine import PiperBackend
    from demod_voice.engine.jobs import LoadSpec

    backend = PiperBackend()
    backend.load(LoadSpec("piper", str(model), model_config=f"{model}.json"))
    return backend


def speak(backend, options) -> tuple[list, float, float]:
    """The sentences' audio, wall seconds and CPU seconds of this process."""
    from demod_voice.engine.jobs import LoadSpec, SynthesisJob

    job = SynthesisJob(LoadSpec("piper", "bench"), TEXT10, "unused.wav", options=options)
    start, cpu = time.perf_counter(), time.process_time()
    audio = [chunk.samples for chunk in backend.synthesize(job)]
    return audio, time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    args = parser.parse_args(argv)

    from demod_voice import devices
    from demod_voice.backends.piper.quantize import quantize_voice
    from demod_voice.backends.piper.request import PiperOptions
    from demod_voice.models.fidelity import log_mel_distance

    devices.THREADS = args.threads
    model = voice_path(args.size)
    copies = {}
    for method in ("static", "dynamic"):
        target = model.with_name(f"{model.stem}-int8-{method}.onnx")
        if not target.exists():
            started = time.perf_counter()
            quantize_voice(model, target, method)
            print(f"quantized ({method}) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        copies[method] = target
    zero = PiperOptions(noise_scale=0.0, noise_w_scale=0.0)
    voices = {"float": loaded(model), **{m: loaded(p) for m, p in copies.items()}}
    rate = voices["float"].voice.config.sample_rate
    reference = speak(voices["float"], zero)[0]
    audio_s = sum(len(a) for a in reference) / rate
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in voices}
    for _ in range(args.runs):  # alternated, so machine noise lands on all
        for name, backend in voices.items():
            seconds[name].append(speak(backend, zero)[1:])
    noisy = speak(voices["float"], PiperOptions(noise_w_scale=0.0))[0]
    own = statistics.median(log_mel_distance(a, b, rate) for a, b in zip(reference, noisy, strict=True))
    rtf = {name: statistics.median(w for w, _ in v) / audio_s for name, v in seconds.items()}
    cpu = {name: statistics.median(c for _, c in v) / audio_s for name, v in seconds.items()}
    size = model.stat().st_size
    print(f"voice {model.name}: {size / 1e6:.1f} MB, {audio_s:.1f} s of audio (10 sentences), {os.cpu_count()} CPUs, "
          f"{args.threads or 'all'} threads, load average {os.getloadavg()[0]:.1f}; medians of {args.runs}")
    print(f"float:   RTF {rtf['float']:.4f} (CPU seconds per audio second {cpu['float']:.4f}); "
          f"its own default noise_scale moves a sentence {own:.2f} dB (log-mel)")
    for method, path in copies.items():
        got = speak(voices[method], zero)[0]
        distances = [log_mel_distance(a, b, rate) for a, b in zip(reference, got, strict=True)]
        print(f"{method + ':':<8} {path.stat().st_size / 1e6:5.1f} MB = {path.stat().st_size / size:.3f}x the size (goal <= 0.35), "
              f"RTF {rtf[method]:.4f} = {rtf[method] / rtf['float']:.3f}x float (goal <= 0.8; CPU {cpu[method] / cpu['float']:.3f}x), "
              f"log-mel distance median {statistics.median(distances):.2f} dB, max {max(distances):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
