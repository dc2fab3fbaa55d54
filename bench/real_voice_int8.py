"""Benchmark: the INT8 copy of a released voice (en_US-joe-medium) against the float voice, in one run: size,
speed, and how well Whisper tiny.en understands each (word error rate).

    .venv/bin/python bench/real_voice_int8.py [--runs 5] [--threads 0] [--method static]

Needs the ``voice`` and ``asr`` extras. Speed: real-time factor through the backend the workers use
(warm, the two voices alternated, medians over --runs) on the ten sentences of bench/piper_infer.py
at zero noise. WER: the six common-word sentences of tests/intelligibility.py at the default noise,
spoken --runs times by each voice (mean and range). The INT8 copy is made once into the bench model
folder (DV_BENCH_MODELS, default /tmp/dv-bench-models) and reused.
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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from intelligibility import TEXT, Recogniser, joe_paths  # noqa: E402
from quantize import loaded, speak  # noqa: E402


def heard(recogniser: Recogniser, backend, options, rate: int) -> float:
    """WER of one rendering of TEXT by ``backend``."""
    import numpy as np

    from demod_voice.engine.jobs import LoadSpec, SynthesisJob

    job = SynthesisJob(LoadSpec("piper", "bench"), TEXT, "unused.wav", options=options)
    audio = np.concatenate([chunk.samples for chunk in backend.synthesize(job)])
    return recogniser.wer_of_samples(audio, rate, TEXT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--method", default="static", choices=("static", "dynamic"))
    args = parser.parse_args(argv)

    from demod_voice import devices
    from demod_voice.backends.piper.quantize import quantize_voice
    from demod_voice.backends.piper.request import PiperOptions

    devices.THREADS = args.threads
    model, _ = joe_paths()
    folder = Path(os.environ.get("DV_BENCH_MODELS", "/tmp/dv-bench-models"))
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{model.stem}-int8-{args.method}.onnx"
    if not copy.exists():
        started = time.perf_counter()
        quantize_voice(model, copy, args.method)
        print(f"quantized ({args.method}) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    voices = {"float": loaded(model), "int8": loaded(copy)}
    rate = voices["float"].voice.config.sample_rate
    zero = PiperOptions(noise_scale=0.0, noise_w_scale=0.0)
    audio_s = sum(len(a) for a in speak(voices["float"], zero)[0]) / rate
    seconds: dict[str, list[float]] = {name: [] for name in voices}
    for _ in range(args.runs):  # alternated, so machine noise lands on both
        for name, backend in voices.items():
            seconds[name].append(speak(backend, zero)[1])
    recogniser = Recogniser.load()
    wers = {name: [heard(recogniser, backend, PiperOptions(), rate) for _ in range(args.runs)] for name, backend in voices.items()}
    rtf = {name: statistics.median(v) / audio_s for name, v in seconds.items()}
    size = {"float": model.stat().st_size, "int8": copy.stat().st_size}
    print(f"voice {model.name}: {audio_s:.1f} s of audio (10 sentences), {os.cpu_count()} CPUs, {args.threads or 'all'} threads, "
          f"load average {os.getloadavg()[0]:.1f}; medians of {args.runs}; WER: Whisper tiny.en, {args.runs} renderings at default noise")
    for name in voices:
        print(f"{name + ':':<6} {size[name] / 1e6:5.1f} MB ({size[name] / size['float']:.3f}x)  RTF {rtf[name]:.4f} "
              f"({rtf[name] / rtf['float']:.3f}x float)  WER mean {statistics.mean(wers[name]):.3f} "
              f"(range {min(wers[name]):.3f}-{max(wers[name]):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
