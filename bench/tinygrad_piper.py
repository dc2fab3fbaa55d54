"""Benchmark: the tinygrad backend against onnxruntime on the same Piper voice, in one run.

Both engines run through demod-voice's backends in this process (piper's own ``PiperVoice``
does the text side of both), so phonemes and ids are the same; the tinygrad backend speaks
sentences side by side on two CPU devices, as ``piper-infer --backend tinygrad`` does. Reported: real-time factor (seconds of
compute per second of audio) of each, warm (medians over --runs) and, for tinygrad, the
first sentence (which compiles its kernels); where tinygrad's time goes (text encoder and
duration predictor vs flow and decoder); and the whole ``piper-infer`` command with each
backend, once, in a fresh process.

    .venv/bin/python bench/tinygrad_piper.py [--size medium] [--runs 5]

The voice is generated (random weights, Piper's real medium shape) on first use and cached.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from piper_infer import TEXT, voice_path  # noqa: E402 - the same text and generated voice as the piper-infer benchmark


def speak(backend) -> tuple[float, float]:
    """(compute seconds, audio seconds) for TEXT through a loaded backend's sentence pipeline."""
    from piper.config import SynthesisConfig

    start = time.perf_counter()
    samples = sum(len(audio) for audio in backend.sentences(TEXT, SynthesisConfig()))
    return time.perf_counter() - start, samples / backend.voice.config.sample_rate


class StageTimer:
    """Wraps the models' encode/decode to time the two halves (summed over devices running side by side)."""

    def __init__(self, models) -> None:
        self.seconds = {"encode": 0.0, "decode": 0.0}
        for model in models:
            for stage in self.seconds:
                setattr(model, stage, self._timed(stage, getattr(model, stage)))

    def _timed(self, stage: str, run):
        def timed(*args):
            start = time.perf_counter()
            try:
                return run(*args)
            finally:
                self.seconds[stage] += time.perf_counter() - start
        return timed


def command_seconds(model: Path, backend: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "piper-infer", str(model), TEXT,
                        "--backend", backend, "-o", str(Path(tmp) / "out.wav")], check=True)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    from demod_voice.backends.piper.engine import PiperBackend
    from demod_voice.backends.tinygrad.engine import TinygradBackend
    from demod_voice.config import cache_root, load_config
    from demod_voice.engine.jobs import LoadSpec

    model = voice_path(args.size)
    # The same tinygrad cache as the piper-infer commands below, so a BEAM=2 search is done once.
    cache = str(cache_root(load_config(None)[0]))
    ort_voice = PiperBackend()
    ort_voice.load(LoadSpec("piper", str(model), model_config=f"{model}.json"))
    started = time.perf_counter()
    tg_voice = TinygradBackend()
    tg_voice.load(LoadSpec("tinygrad", str(model), model_config=f"{model}.json", cache_dir=cache))
    load_s = time.perf_counter() - started
    tiny = tg_voice.models[0]

    first_s, first_audio = speak(tg_voice)
    # TinyJit captures a shape on its second run on a device, and which device gets which sentence
    # varies from call to call: a few more calls, so each device has captured each shape.
    for _ in range(4):
        speak(tg_voice)
    timer = StageTimer(tg_voice.models)
    ort_rtf, tg_rtf = [], []
    for _ in range(args.runs):  # alternated, so machine noise lands on both
        seconds, audio = speak(ort_voice)
        ort_rtf.append(seconds / audio)
        seconds, audio = speak(tg_voice)
        tg_rtf.append(seconds / audio)
    ort_m, tg_m = statistics.median(ort_rtf), statistics.median(tg_rtf)
    share = timer.seconds["decode"] / sum(timer.seconds.values())

    print(f"voice: {args.size} ({model.stat().st_size / 1e6:.0f} MB), text {len(TEXT)} characters, runs {args.runs}")
    print(f"onnxruntime RTF (median)          {ort_m:.3f}")
    print(f"tinygrad    RTF (median, warm)     {tg_m:.3f}   ratio tinygrad/onnxruntime {tg_m / ort_m:.2f}x")
    print(f"tinygrad    first sentence batch   {first_s:.1f} s for {first_audio:.1f} s of audio (RTF {first_s / first_audio:.2f}: compiles kernels)")
    print(f"tinygrad    load, {len(tg_voice.models)} device(s)   {load_s:.2f} s; "
          f"decoder windows {'/'.join(map(str, tiny.windows))} frames, {tiny.context} of context")
    print(f"tinygrad    time split (warm)      encoder+durations {1 - share:.0%}, flow+decoder {share:.0%}")
    ort_cmd = command_seconds(model, "piper")
    tg_cmd = command_seconds(model, "tinygrad")
    print(f"piper-infer command, fresh process: --backend piper {ort_cmd:.1f} s, --backend tinygrad {tg_cmd:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
