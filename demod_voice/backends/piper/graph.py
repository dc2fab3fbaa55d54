"""Surgery on a Piper voice's ONNX graph so that several sentences can go through it at once.

Piper's exported graph already takes a batch (``input`` [B, T] padded ids, ``input_lengths`` [B])
and computes the whole padded batch. What it lacks:

* **Each item's length.** The durations tensor (VITS's ``w_ceil``, frames per phoneme id, the
  ``Ceil`` node piper's alignment patch exposes) becomes an output; a sentence lasts
  ``max(sum(durations), 1)`` frames. The speaker id input, fixed at [1] by piper's export,
  becomes [B].
* **A decoder that sees each item alone.** The text encoder and flow mask their padding, but the
  HiFi-GAN decoder does not: its later layers read the bias and activations computed past a
  shorter item's end, so the last ~50 ms of every shorter item came out different (measured:
  0.02 on a 0.03 peak, medium voice). The graph is therefore **split** (:func:`split_graph`)
  where the decoder begins: the front (encoder, durations, flow) runs batched, the decoder runs
  each item on its own frames only, which is also where two thirds of the compute is and where
  padding would cost most. The decoder is found by its module scope (``/dec/``) where the
  export kept it, else by its structure (:func:`find_decoder`: the convolution that feeds the
  first upsampling), so voices exported without scope names split too. A graph where neither
  finds a clean cut gets **masks** instead (:func:`add_masks`): each time-mixing convolution
  after the durations has its input multiplied by the item's frame mask, which is what zero
  padding alone gives (measured cost: ~5% of CPU time).

Either way a batched sentence equals its one-at-a-time audio to float rounding
(tests/integration/test_piper_batching.py).

The split decoder also streams: :func:`receptive_field` reads from its convolutions how many
frames on each side can change a frame's audio, so a sentence can be decoded in windows of
frames that overlap by that much, each window's middle equal to the whole sentence's audio
there (:meth:`~demod_voice.backends.piper.batching.BatchSession.stream`). Where its scope names
allow, the flow (about half of the front's work) is cut off the front too (:func:`split_flow`)
and runs in windows with its own reach, so a stream waits for the text encoder and the
durations only before its first window.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

log = logging.getLogger(__name__)

MARK = "demod_voice.batching"
"""Metadata key on a graph prepared here; its value names the durations output."""

WINDOWS = "demod_voice.windows"
"""Metadata key on a split-off decoder: ``"context,hop"`` from :func:`receptive_field`."""

PREFIX = "dv_batch"
"""Prefix of every tensor and node name the masks add."""

DECODER_SCOPE = "/dec/"
"""Node-name prefix of the VITS decoder in torch's ONNX export (module scopes, torch >= 1.13)."""

FLOW_SCOPE = "/flow/"
"""Node-name prefix of the VITS flow in the same exports."""


def expose_durations(model: Any) -> Optional[str]:
    """Make the durations an output and the speaker id per item (in place); return the durations' name.

    ``None`` when the graph is not shaped like Piper's VITS export (opset >= 13, one ``Ceil``):
    such a voice runs one sentence at a time.
    """
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    ceils = [node for node in model.graph.node if node.op_type == "Ceil"]
    if opset < 13 or len(ceils) != 1 or any(a.type in (5, 10) for n in model.graph.node for a in n.attribute):
        log.debug("not batching: opset %d, %d Ceil nodes (Piper's VITS export: opset 15, one Ceil, no subgraphs)",
                  opset, len(ceils))
        return None
    durations = ceils[0].output[0]
    if not any(output.name == durations for output in model.graph.output):
        model.graph.output.append(_value_info(durations))
    for graph_input in model.graph.input:
        if graph_input.name == "sid" and graph_input.type.tensor_type.shape.dim:
            # piper's export leaves the speaker id at a fixed [1]; the graph itself takes one per item.
            graph_input.type.tensor_type.shape.dim[0].dim_param = "batch_size"
    if MARK not in {p.key for p in model.metadata_props}:
        entry = model.metadata_props.add()
        entry.key, entry.value = MARK, durations
    return durations


def split_graph(model: Any, durations: str) -> Optional[tuple[Any, Any]]:
    """(front, decoder) models: the front ends in the decoder's inputs and the durations, the
    decoder turns one item's inputs into its audio. ``None`` when the decoder cannot be located."""
    from onnx import TensorProto, helper

    decoder_nodes = find_decoder(model, durations)
    if not decoder_nodes:
        return None
    variable = _input_dependent(model)
    inside = {out for n in decoder_nodes for out in n.output}
    boundary = list(dict.fromkeys(name for n in decoder_nodes for name in n.input
                                  if name in variable and name not in inside))
    boundary = _before_quantization(model, boundary, variable)
    audio = model.graph.output[0].name
    back = _needed(model, [audio], stop=set(boundary))
    if not boundary or any(name in variable for n in back for name in n.input if name not in boundary and
                           name not in {o for m in back for o in m.output}):
        log.debug("not splitting: the decoder's inputs are not a clean cut (%s)", boundary)
        return None
    floats = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in boundary]
    front_outputs = floats + [_value_info(durations, TensorProto.FLOAT)]
    front = _submodel(model, _needed(model, boundary + [durations], stop=set()), list(model.graph.input), front_outputs)
    decoder = _submodel(model, back, floats, [model.graph.output[0]])
    context, hop = receptive_field(decoder)
    entry = decoder.metadata_props.add()
    entry.key, entry.value = WINDOWS, f"{context},{hop}"
    entry = front.metadata_props.add()
    entry.key, entry.value = MARK, durations
    return front, decoder


def value_shapes(model: Any) -> dict[str, tuple[int, int, int]]:
    """Each tensor's (element type, rank, channels: the size of its axis 1) as onnx's shape inference finds them,
    graph inputs and outputs included (-1: not known). Read once on a whole voice, it serves the parts split off
    it, whose cut inputs carry no types or shapes of their own."""
    from onnx import helper, shape_inference

    # inferred on a copy whose large weights are graph inputs of their type and shape: the same shapes without
    # serialising the voice's ~60 MB of weights for the inference (0.34 s of a medium voice's 0.48 s preparation)
    light = type(model)()
    light.ir_version, light.producer_name = model.ir_version, model.producer_name
    light.opset_import.extend(model.opset_import)
    light.graph.node.extend(model.graph.node)
    light.graph.input.extend(model.graph.input)
    light.graph.output.extend(model.graph.output)
    light.graph.value_info.extend(model.graph.value_info)
    moved = set()
    for weight in model.graph.initializer:
        if weight.ByteSize() > 4096:
            light.graph.input.append(helper.make_tensor_value_info(weight.name, weight.data_type, list(weight.dims)))
            moved.add(weight.name)
        else:  # small ones may be shapes that Reshape reads
            light.graph.initializer.append(weight)
    inferred = shape_inference.infer_shapes(light).graph
    found = {}
    for value in [*inferred.value_info, *inferred.input, *inferred.output]:
        if value.name in moved:  # a weight, as the whole voice's inference does not list them
            continue
        tensor = value.type.tensor_type
        dims = tensor.shape.dim if tensor.HasField("shape") else None
        channels = dims[1].dim_value if dims is not None and len(dims) > 1 and dims[1].HasField("dim_value") else -1
        found[value.name] = (tensor.elem_type, -1 if dims is None else len(dims), channels)
    return found


def split_flow(front: Any, durations: str, shapes: Optional[dict[str, tuple[int, int, int]]] = None) -> Optional[tuple[Any, Any]]:
    """(front, flow) from a split-off front: the flow (VITS's normalizing flow, which turns the
    prior sample into the decoder's input, about half the front's work) becomes a part of its
    own that can run in windows of frames like the decoder. The new front ends in the flow's
    inputs (prior sample, frame mask, speaker), the decoder's other inputs and the durations.
    ``None`` when the flow cannot be cut off cleanly (no ``/flow/`` scope names, a layer whose
    reach is not known): the flow then stays in the front. ``shapes``: :func:`value_shapes` of the whole voice
    (read from ``front`` when not given)."""
    scoped = [n for n in front.graph.node if n.name.startswith(FLOW_SCOPE)]
    if not scoped:
        return None
    variable = _input_dependent(front)
    made = _downstream(front, *(out for n in scoped for out in n.output))  # one pass (a pass per tensor took 3.5 s)
    cut = list(dict.fromkeys(name for n in scoped for name in n.input if name in variable and name not in made))
    cut = _before_quantization(front, cut, variable)
    decoder_inputs = [o.name for o in front.graph.output if o.name != durations]
    targets = [name for name in decoder_inputs if name in made]
    flow_nodes = _needed(front, targets, stop=set(cut))
    inside = {o for n in flow_nodes for o in n.output}
    if not cut or not targets or any(name in variable and name not in cut and name not in inside
                                     for n in flow_nodes for name in n.input):
        log.debug("not cutting the flow off: its inputs are not a clean cut (%s)", cut)
        return None
    shapes = value_shapes(front) if shapes is None else shapes
    cut_infos = [_value_info(name, shapes[name][0] if name in shapes else 1) for name in cut]
    passed = [o for o in front.graph.output if o.name not in targets and o.name not in cut]
    new_front = _submodel(front, _needed(front, cut + [o.name for o in passed], stop=set()), list(front.graph.input),
                          cut_infos + passed)
    flow = _submodel(front, flow_nodes, cut_infos, [o for o in front.graph.output if o.name in targets])
    context, scale = receptive_field(flow)
    if not context or scale != 1:
        log.debug("not cutting the flow off: its reach is not known")
        return None
    for model, key, value in ((flow, WINDOWS, f"{context},1"), (new_front, MARK, durations)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return new_front, flow


QUANTIZE_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


def find_decoder(model: Any, durations: str) -> list[Any]:
    """The decoder's nodes: by their module scope when the export kept it, else by structure."""
    scoped = [n for n in model.graph.node if n.name.startswith(DECODER_SCOPE)]
    return scoped or _decoder_by_structure(model, durations)


def _decoder_by_structure(model: Any, durations: str) -> list[Any]:
    """HiFi-GAN's shape, whatever the names: the first upsampling (``ConvTranspose``) on the audio's
    path is fed, through element-wise steps (leaky ReLU, the speaker's conditioning added,
    quantization), by ``conv_pre``, the first ``Conv`` whose input follows from the durations.
    The decoder is that convolution and everything after it on the way to the audio."""
    audio = model.graph.output[0].name
    needed = _needed(model, [audio], stop=set())
    upsampling = next((n for n in needed if n.op_type == "ConvTranspose"), None)
    if upsampling is None:
        return []
    after = _downstream(model, durations)
    producer = {out: node for node in model.graph.node for out in node.output}
    node = producer.get(upsampling.input[0])
    for _ in range(12):
        if node is None or node.op_type == "Conv":
            break
        timed = [producer.get(name) for name in node.input if name in after]
        node = timed[0] if len(timed) == 1 else None
    if node is None or node.op_type != "Conv":
        return []
    on_path = {id(n) for n in needed}
    reached = _downstream(model, node.output[0])
    return [node] + [n for n in model.graph.node if id(n) in on_path and any(name in reached for name in n.input)]


def _downstream(model: Any, *starts: str) -> set[str]:
    """Tensors computed from any of the tensors ``starts`` (themselves included)."""
    reached = set(starts)
    for node in model.graph.node:  # topological order
        if any(name in reached for name in node.input):
            reached.update(node.output)
    return reached


def receptive_field(decoder: Any) -> tuple[int, int]:
    """(context, hop) of a split-off decoder: frames on each side of a frame that can change its
    audio, and audio samples per frame.

    Walked over the decoder's convolutions in graph order, each tensor's reach in input frames
    being the most of its inputs' plus what its own kernel spans (at the tensor's resolution),
    as :func:`demod_voice.backends.tinygrad.onnx_weights.receptive_field` sums the layers of a
    VITS; plus one frame of margin. A window of frames with this much context on each side
    decodes its middle as the whole sentence would. ``(0, 0)`` when a layer is not understood
    (a strided convolution, a separate padding step, an unknown kernel)."""
    kernels = {init.name: list(init.dims) for init in decoder.graph.initializer}
    reach: dict[str, tuple[float, int]] = {i.name: (0.0, 1) for i in decoder.graph.input}
    for node in decoder.graph.node:
        known = [reach[name] for name in node.input if name in reach]
        if not known:
            continue
        frames, scale = max(k[0] for k in known), max(k[1] for k in known)
        if node.op_type in ("Conv", "ConvTranspose"):
            step = _conv_reach(node, kernels)
            if step is None:
                return 0, 0
            span, stride = step
            if node.op_type == "Conv":
                frames += span / scale
            else:
                frames += (span / stride + 1) / scale
                scale *= stride
        elif node.op_type == "Pad":
            return 0, 0
        for out in node.output:
            reach[out] = (frames, scale)
    frames, scale = reach.get(decoder.graph.output[0].name, (0.0, 0))
    return (int(math.ceil(frames)) + 1, scale) if scale else (0, 0)


def _conv_reach(node: Any, kernels: dict[str, list[int]]) -> Optional[tuple[int, int]]:
    """(samples reached on the farther side, stride) of a 1-D Conv/ConvTranspose; ``None`` if unknown."""
    ints = {a.name: list(a.ints) for a in node.attribute}
    strings = {a.name: a.s for a in node.attribute}
    kernel = (ints.get("kernel_shape") or [_kernel(node, kernels)])[-1]
    dilation = (ints.get("dilations") or [1])[-1]
    stride = (ints.get("strides") or [1])[-1]
    if not kernel or strings.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"") or (node.op_type == "Conv" and stride != 1):
        return None
    pads = ints.get("pads") or [0, 0]
    span = dilation * (kernel - 1)
    return max(pads[0], span - pads[0]), stride


def _before_quantization(model: Any, boundary: list[str], variable: set[str]) -> list[str]:
    """An INT8 copy quantizes the decoder's inputs outside its scope: cut before those nodes, so
    the cut carries float tensors and the decoder does its own quantizing."""
    producer = {out: node for node in model.graph.node for out in node.output}
    cut: list[str] = []
    pending = list(boundary)
    while pending:
        name = pending.pop(0)
        node = producer.get(name)
        if node is not None and node.op_type in QUANTIZE_OPS:
            pending.extend(i for i in node.input if i in variable)
        elif name not in cut:
            cut.append(name)
    return cut


def _input_dependent(model: Any) -> set[str]:
    """Tensors that depend on a graph input (not weights or constants alone)."""
    variable = {i.name for i in model.graph.input}
    for node in model.graph.node:  # nodes are in topological order
        if any(name in variable for name in node.input):
            variable.update(node.output)
    return variable


def _needed(model: Any, outputs: list[str], stop: set[str]) -> list[Any]:
    """The nodes that compute ``outputs``, walking back no further than ``stop``, in graph order."""
    producer = {out: node for node in model.graph.node for out in node.output}
    keep: set[int] = set()
    pending = list(outputs)
    while pending:
        name = pending.pop()
        node = producer.get(name)
        if node is None or name in stop or id(node) in keep:
            continue
        keep.add(id(node))
        pending.extend(node.input)
    return [node for node in model.graph.node if id(node) in keep]


def _submodel(model: Any, nodes: list[Any], inputs: list[Any], outputs: list[Any]) -> Any:
    import onnx

    used = {name for node in nodes for name in node.input}
    inputs = [i for i in inputs if i.name in used or i.name in {o.name for o in outputs}]
    # filled in place: onnx.helper's make_graph and make_model copy the weights once each (~0.2 s a medium voice)
    sub = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    sub.opset_import.extend(model.opset_import)
    graph = sub.graph
    graph.name = model.graph.name
    graph.node.extend(nodes)
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    graph.initializer.extend(i for i in model.graph.initializer if i.name in used)
    return sub


def add_masks(model: Any) -> None:
    """Mask the input of every time-mixing convolution after the durations (in place, once)."""
    if any(node.name.startswith(PREFIX) or node.output[0].startswith(PREFIX) for node in model.graph.node):
        return
    ceil = next(node for node in model.graph.node if node.op_type == "Ceil")
    targets = _time_mixing_convs(model, ceil.output[0])
    _insert_masks(model, ceil, targets)
    log.debug("batching masks: %d convolution inputs masked", len(targets))


def _value_info(name: str, elem_type: int = 0) -> Any:
    import onnx

    info = onnx.ValueInfoProto()
    info.name = name
    if elem_type:
        info.type.tensor_type.elem_type = elem_type
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
