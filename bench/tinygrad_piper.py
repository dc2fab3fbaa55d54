"""Benchmark: the tinygrad backend against onnxruntime on the same Piper voice, in one run.

Both engines sit behind piper's own ``PiperVoice`` in this process, so phonemes, ids and
text are the same; only ``session.run`` differs. Reported: real-time factor (seconds of
compute per second of audio) of each, warm (medians over --runs) and, for tinygrad, the
first sentence (which compiles its kernels); where tinygrad's time goes (text encoder and
duration predictor vs flow and decoder); and the whole ``piper-infer`` command with each
backend, once, in a fresh process.

    .venv/bin/python bench/tinygrad_piper.py [--size medium] [--runs 5]

The voice is generated (random weights, Piper's real medium shape) on first use and cached.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from piper_infer import TEXT, voice_path  # noqa: E402 - the same text and generated voice as the piper-infer benchmark


def speak(voice) -> tuple[float, float]:
    """(compute seconds, audio seconds) for TEXT."""
    start = time.perf_counter()
    samples = sum(len(chunk.audio_float_array) for chunk in voice.synthesize(TEXT))
    return time.perf_counter() - start, samples / voice.config.sample_rate


class StageTimer:
    """Wraps the model's encode/decode to time the two halves."""

    def __init__(self, model) -> None:
        self.seconds = {"encode": 0.0, "decode": 0.0}
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

    import onnxruntime
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    from demod_voice.backends.tinygrad import TinygradSession, cpu_device, prepare_environment
    from demod_voice.backends.vits_onnx import read_vits_weights
    from demod_voice.backends.vits_tinygrad import TinyVits
    from demod_voice.config import cache_root, load_config

    model = voice_path(args.size)
    # The same tinygrad cache as the piper-infer commands below, so a BEAM=2 search is done once.
    prepare_environment(str(cache_root(load_config(None)[0])), 0)
    config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text()))
    ort_voice = PiperVoice(session=onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"]), config=config)
    started = time.perf_counter()
    tiny = TinyVits(read_vits_weights(model), cpu_device())
    load_s = time.perf_counter() - started
    tg_voice = PiperVoice(session=TinygradSession(tiny), config=config)

    first_s, first_audio = speak(tg_voice)
    speak(tg_voice)  # the second call is where TinyJit captures the kernels
    timer = StageTimer(tiny)
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
    print(f"tinygrad    weights to device      {load_s:.2f} s; decoder windows {'/'.join(map(str, tiny.windows))} frames, {tiny.context} of context")
    print(f"tinygrad    time split (warm)      encoder+durations {1 - share:.0%}, flow+decoder {share:.0%}")
    ort_cmd = command_seconds(model, "piper")
    tg_cmd = command_seconds(model, "tinygrad")
    print(f"piper-infer command, fresh process: --backend piper {ort_cmd:.1f} s, --backend tinygrad {tg_cmd:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
