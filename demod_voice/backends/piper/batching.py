"""Several Piper sentences through one ``session.run``: padded phoneme ids in, each item's audio out.

Piper's exported graph already takes a batch (``input`` [B, T] padded ids, ``input_lengths`` [B]),
and computes the whole padded batch. Two things make the batch give each sentence the audio it
gets alone:

* **Per-item length from the graph's own durations.** The durations tensor (VITS's ``w_ceil``,
  frames per phoneme id, the ``Ceil`` node piper's alignment patch exposes) becomes a second
  output; a sentence lasts ``max(sum(durations), 1)`` frames and is trimmed to that many hops.
* **The decoder sees zeros past each item's end.** The text encoder and flow mask padding
  themselves, but the HiFi-GAN decoder does not: its first layer reads zeros past an item's end,
  its later layers read the bias and activations computed there, so the last ~50 ms of every
  shorter item came out different (measured: 0.02 on a 0.03 peak, medium voice). Each
  time-mixing convolution after the durations gets its input multiplied by that item's frame mask
  (at the convolution's own time resolution), which is what zero padding alone gives: the same
  audio as one at a time, to float rounding (tests/integration/test_piper_batching.py).

The patched graph is marked in its metadata (:data:`MARK`), so a patched file (an INT8 copy made
by ``models quantize``) is used as is. Imports of onnx and numpy happen inside the functions.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

MARK = "demod_voice.batching"
"""Metadata key set on a graph this module has patched; its value names the durations output."""

PREFIX = "dv_batch"
"""Prefix of every tensor and node name this module adds."""

MAX_PADDED_IDS = 2048
"""At most this many padded phoneme ids per batch (B x longest): bounds a batch's activations
(a medium voice's decoder holds a few MB per phoneme id of the batch)."""


# --- the graph -------------------------------------------------------------------------------------


def patch_graph(model: Any) -> Optional[str]:
    """Patch ``model`` (an ``onnx.ModelProto``) in place for batching; return the durations output name.

    ``None`` when the graph is not shaped like Piper's VITS export (no single ``Ceil`` node): such a
    voice then runs one sentence at a time. A graph already patched is left alone.
    """
    marked = {p.key: p.value for p in model.metadata_props}
    if MARK in marked:
        return marked[MARK]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    ceils = [node for node in model.graph.node if node.op_type == "Ceil"]
    if opset < 13 or len(ceils) != 1:
        log.debug("not batching: opset %d, %d Ceil nodes (Piper's VITS export: opset 15, one Ceil)", opset, len(ceils))
        return None
    durations = ceils[0].output[0]
    if not any(output.name == durations for output in model.graph.output):
        model.graph.output.append(_value_info(durations))
    for graph_input in model.graph.input:
        if graph_input.name == "sid" and graph_input.type.tensor_type.shape.dim:
            # piper's export leaves the speaker id at a fixed [1]; the graph itself takes one per item.
            graph_input.type.tensor_type.shape.dim[0].dim_param = "batch_size"
    targets = _time_mixing_convs(model, durations)
    _insert_masks(model, ceils[0], targets)
    entry = model.metadata_props.add()
    entry.key, entry.value = MARK, durations
    log.debug("batching patch: durations output %s, %d convolution inputs masked", durations, len(targets))
    return durations


def _value_info(name: str) -> Any:
    import onnx

    info = onnx.ValueInfoProto()
    info.name = name
    return info


def _time_mixing_convs(model: Any, start: str) -> list[Any]:
    """Conv/ConvTranspose nodes downstream of tensor ``start`` whose kernel spans more than one time step."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen: set[int] = set()
    reached: list[Any] = []
    frontier = [start]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if id(node) not in seen:
                seen.add(id(node))
                reached.append(node)
                frontier.extend(node.output)
    kernels = {init.name: list(init.dims) for init in model.graph.initializer}
    return [node for node in reached if node.op_type == "ConvTranspose"
            or (node.op_type == "Conv" and _kernel(node, kernels) != 1)]


def _kernel(node: Any, kernels: dict[str, list[int]]) -> int:
    """The time extent of a Conv's kernel (0 when unknown, which is treated as time-mixing)."""
    for attribute in node.attribute:
        if attribute.name == "kernel_shape" and attribute.ints:
            return int(attribute.ints[-1])
    dims = kernels.get(node.input[1]) if len(node.input) > 1 else None
    return int(dims[-1]) if dims else 0


def _insert_masks(model: Any, ceil: Any, targets: list[Any]) -> None:
    """Rebuild the node list with the frame counts after ``ceil`` and a mask before each target."""
    from onnx import helper

    frames, longest = f"{PREFIX}_frames", f"{PREFIX}_longest"
    consts = {
        f"{PREFIX}_axes12": helper.make_tensor(f"{PREFIX}_axes12", 7, [2], [1, 2]),
        f"{PREFIX}_one": helper.make_tensor(f"{PREFIX}_one", 1, [], [1.0]),
    }
    model.graph.initializer.extend(consts.values())
    # VITS: y_lengths = clamp_min(sum(w_ceil, [1, 2]), 1); the batch's frame axis is max(y_lengths).
    frame_nodes = [
        helper.make_node("ReduceSum", [ceil.output[0], f"{PREFIX}_axes12"], [f"{PREFIX}_sum"], keepdims=0),
        helper.make_node("Max", [f"{PREFIX}_sum", f"{PREFIX}_one"], [f"{PREFIX}_clamped"]),
        helper.make_node("Cast", [f"{PREFIX}_clamped"], [frames], to=7),
        helper.make_node("ReduceMax", [frames], [longest], keepdims=1),
        helper.make_node("Unsqueeze", [frames, f"{PREFIX}_axis1"], [f"{PREFIX}_frames_col"]),
    ]
    model.graph.initializer.append(helper.make_tensor(f"{PREFIX}_axis1", 7, [1], [1]))
    model.graph.initializer.extend([helper.make_tensor(f"{PREFIX}_{n}", 7, v, d) for n, v, d in
                                    (("zero", [], [0]), ("step", [], [1]), ("two", [1], [2]), ("three", [1], [3]))])
    masked: dict[str, str] = {}
    wanted = {id(node) for node in targets}
    nodes = []
    for node in model.graph.node:
        if id(node) in wanted:
            source = node.input[0]
            if source not in masked:
                masked[source] = f"{PREFIX}_m{len(masked)}"
                nodes.extend(_mask_nodes(source, masked[source], frames, longest))
            node.input[0] = masked[source]
        nodes.append(node)
        if node is ceil:
            nodes.extend(frame_nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _mask_nodes(source: str, out: str, frames: str, longest: str) -> list[Any]:
    """``out = source * (arange(T) * longest < frames * T)`` per item, T the time axis of ``source``:
    each item's own frames at this tensor's resolution (T is a whole multiple of ``longest``)."""
    from onnx import helper

    p = f"{out}_"
    return [
        helper.make_node("Shape", [source], [p + "shape"]),
        helper.make_node("Slice", [p + "shape", f"{PREFIX}_two", f"{PREFIX}_three"], [p + "t1"]),
        helper.make_node("Squeeze", [p + "t1"], [p + "t"]),
        helper.make_node("Range", [f"{PREFIX}_zero", p + "t", f"{PREFIX}_step"], [p + "steps"]),
        helper.make_node("Mul", [p + "steps", longest], [p + "scaled"]),
        helper.make_node("Mul", [f"{PREFIX}_frames_col", p + "t1"], [p + "ends"]),
        helper.make_node("Less", [p + "scaled", p + "ends"], [p + "inside"]),
        helper.make_node("Cast", [p + "inside"], [p + "mask2"], to=1),
        helper.make_node("Unsqueeze", [p + "mask2", f"{PREFIX}_axis1"], [p + "mask"]),
        helper.make_node("Mul", [source, p + "mask"], [out]),
    ]


def batched_model(model_path: str, cache_dir: Optional[str]) -> Any:
    """The voice's graph patched for batching, as a path or serialized bytes for onnxruntime.

    With ``cache_dir`` the patched graph is written there once (keyed by the file's identity) and
    its path returned, so onnxruntime's optimised-graph cache applies to it too. ``model_path``
    itself when the graph cannot be batched. A session says which it got: its metadata has
    :data:`MARK`, naming the durations output, only when patched.
    """
    cached = _patched_path(model_path, cache_dir)
    if cached is not None and cached.is_file():
        return str(cached)
    try:
        import onnx
    except ImportError:
        log.warning("the onnx package is missing, so sentences run one at a time; install it with: pip install onnx")
        return model_path
    model = onnx.load(model_path)
    marked = {p.key for p in model.metadata_props}
    if MARK in marked or patch_graph(model) is None:
        return model_path
    data = model.SerializeToString()
    if cached is None:
        return data
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, cached)
    except OSError as err:
        log.debug("could not cache the batching graph in %s (%s)", cached, err)
        return data
    return str(cached)


def _patched_path(model_path: str, cache_dir: Optional[str]) -> Optional[Path]:
    if not cache_dir:
        return None
    stat = os.stat(model_path)
    key = f"{os.path.realpath(model_path)}|{stat.st_size}|{stat.st_mtime_ns}|{PREFIX}-1"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(cache_dir) / "onnx" / f"{Path(model_path).stem}-batch-{digest}.onnx"


# --- batches ---------------------------------------------------------------------------------------


def groups(lengths: Sequence[int], most: int, max_padded: int = MAX_PADDED_IDS) -> list[list[int]]:
    """Indices of the sentences in batches: similar lengths together (sorted by phoneme count),
    at most ``most`` per batch and at most ``max_padded`` padded ids, sizes as even as the limits allow."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    while order:
        # Longest first, so the per-batch id budget is met by the batch it binds on.
        count = min(len(order), max(1, most))
        while count > 1 and count * lengths[order[-1]] > max_padded:
            count -= 1
        batches = -(-len(order) // count)
        size = -(-len(order) // batches)  # even sizes: 10 in fours is 4+3+3, not 4+4+2
        out.append(order[-size:])
        order = order[:-size]
    out.reverse()
    return out


def run_batch(session: Any, ids: Sequence[Sequence[int]], scales: Any, speaker: Optional[int], durations: str) -> list[Any]:
    """One ``session.run`` for ``ids`` (one list per sentence); each sentence's raw audio, trimmed to
    its own length (``durations``: the name of the graph's durations output)."""
    import numpy as np

    count = len(ids)
    longest = max(len(item) for item in ids)
    padded = np.zeros((count, longest), dtype=np.int64)
    for row, item in enumerate(ids):
        padded[row, : len(item)] = item
    feeds = {"input": padded, "input_lengths": np.array([len(item) for item in ids], dtype=np.int64), "scales": scales}
    if speaker is not None:
        feeds["sid"] = np.full(count, speaker, dtype=np.int64)
    audio, widths = session.run([session.get_outputs()[0].name, durations], feeds)
    audio = audio.reshape(count, -1)
    frames = np.maximum(widths.reshape(count, -1).sum(axis=1), 1).astype(np.int64)
    hop, rest = divmod(audio.shape[1], int(frames.max()))
    if rest:
        raise RuntimeError(f"the voice's audio ({audio.shape[1]} samples) is not a whole number of frames ({int(frames.max())})")
    return [audio[row, : frames[row] * hop].copy() for row in range(count)]
