"""Run a Piper part's 1-D convolutions as 2-D ones of height one, so onnxruntime's blocked kernels apply.

onnxruntime's CPU provider has two convolution paths: im2col and a GEMM, for any rank, and
"NCHWc" kernels that keep channels in blocks of the vector width and convolve directly, which
its layout optimisation (``ORT_ENABLE_ALL``) gives 2-D convolutions only. A VITS decoder and
flow are 1-D: every convolution there took the first path. Run in 2-D, ``[batch, channels, 1,
time]`` with ``[out, in, 1, kernel]`` weights, the same sums are taken in another order (the released
joe voice's decoder: < 1e-6 apart on a 0.2-0.5 peak), and that decoder ran in 0.86-0.90x the time, its
flow in 0.93-0.94x for windows of 120 frames and more (one thread, ``bench/piper_layout.py``).

:func:`lift` rewrites a graph in place: its inputs are given the unit axis at 2 once, every node
that can work on the 4-D form does (convolutions, element-wise operations, slices, splits and
concatenations on another axis, ``Shape`` feeding ``ConstantOfShape``), and a tensor is squeezed
back only where a node that cannot, or the graph's output, reads it. A graph with nothing to lift
is left as it was.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

log = logging.getLogger(__name__)

PREFIX = "dv_nchw"
"""Prefix of every tensor and node name the rewrite adds."""

ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "LeakyRelu", "Relu", "Tanh", "Sigmoid", "Exp", "Neg", "Identity"})
"""Operations that work on each element (with broadcasting): the same on the 4-D form."""

CONVOLUTIONS = frozenset({"Conv", "ConvTranspose"})

ONES = "demod_voice.ones"
"""Metadata key of a prepared part: the frame-mask input :func:`unmasked` took out, which must hold only ones."""


def time_series(shapes: dict[str, tuple[int, int, int]]) -> set[str]:
    """The 3-D tensors (in a VITS: ``[batch, channels, time]``) among :func:`.graph.value_shapes` of the whole
    voice: what :func:`lift` may give the unit axis (the split parts' inputs carry no shapes of their own)."""
    return {name for name, (_, rank, _) in shapes.items() if rank == 3}


def frame_masks(shapes: dict[str, tuple[int, int, int]]) -> set[str]:
    """The ``[batch, 1, time]`` tensors among :func:`.graph.value_shapes`: what :func:`unmasked` may take for a frame mask."""
    return {name for name, (_, rank, channels) in shapes.items() if rank == 3 and channels == 1}


def wide_series(shapes: dict[str, tuple[int, int, int]]) -> set[str]:
    """The ``[batch, channels, time]`` tensors with more than one channel among :func:`.graph.value_shapes`."""
    return {name for name, (_, rank, channels) in shapes.items() if rank == 3 and channels > 1}


def lift(model: Any, series: set[str]) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``, in place) to run its 1-D work in 4-D; return how many nodes now do.

    ``series``: names known to be 3-D (:func:`time_series`); only graph inputs among them are lifted, and the rest
    of the graph only from those. A graph below opset 13 (``Squeeze`` with axes as an attribute) is left alone."""
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        return 0
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers = {name: {node.op_type for node in nodes} for name, nodes in _readers(graph).items()}
    for name in outputs:
        readers.setdefault(name, set()).add("(graph output)")
    rewrite = _Rewrite(weights, _constant_nodes(graph), {i.name for i in graph.input} & series, readers)
    for node in graph.node:
        rewrite.visit(node)
    if not rewrite.convolutions:  # nothing that runs faster in 4-D
        return 0
    for name in outputs:
        rewrite.lower(name)
    _replace(graph, _live(rewrite.nodes, outputs), rewrite.added)
    log.debug("layout: %d nodes run in 4-D", rewrite.lifted)
    return rewrite.lifted


def unmasked(model: Any, masks: set[str], wide: set[str]) -> Optional[str]:
    """Take a frame mask out of a lifted part run one sentence at a time over its own frames (the flow), where
    it holds only ones; return its name (also written as :data:`ONES` in the part's metadata), or ``None``.

    ``masks``: candidate graph inputs (``[batch, 1, time]``, made with a ``Cast``: a 0/1 mask); ``wide``: the graph
    inputs with more than one channel (:func:`frame_masks` and :func:`wide_series` of the whole voice). A mask whose every reader
    is a product drops out with those products (``x * 1`` is ``x``), and so do the other steps that change
    nothing (:func:`_neutral`): sums with zeros that ``ConstantOfShape`` makes (a single-speaker VITS's missing
    speaker term), products with their ``Exp(-0)``, whole-batch slices. Those steps on the plain layout, some
    broadcast, took the flow out of onnxruntime's channel blocks at every layer; the caller
    (:class:`~.batching.BatchSession`) checks each run's mask is all ones."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    twins = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Unsqueeze" and node.input[0] in inputs}
    readers: dict[str, set[str]] = {}
    for name, nodes in _readers(graph).items():
        readers.setdefault(twins.get(name, name), set()).update(node.op_type for node in nodes)
    mask = next((name for name in masks & inputs if readers.get(name, set()) <= {"Mul", "Unsqueeze"}), None)
    if mask is None:
        return None
    ones = {mask} | {twin for twin, source in twins.items() if source == mask}
    starts = {twin for twin, source in twins.items() if source in wide}
    kept = _neutral(graph, ones, starts | (wide & inputs))
    if any(name in ones for node in kept for name in node.input if node.op_type != "Unsqueeze"):
        return None  # read by something else after all: leave the part as it was
    inputs_kept = [i for i in graph.input if i.name != mask]
    del graph.input[:]
    graph.input.extend(inputs_kept)
    _replace(graph, _live(kept, {o.name for o in graph.output}), [])
    entry = model.metadata_props.add()
    entry.key, entry.value = ONES, mask
    log.debug("layout: the frame mask %s taken out", mask)
    return mask


def _neutral(graph: Any, ones: set[str], wide: set[str]) -> list[Any]:
    """``graph``'s nodes less the steps that change nothing, each reader of one reading its input instead: a
    product with ``ones`` (or with ``Exp`` of zeros), a sum with zeros (``ConstantOfShape`` of 0, negated or not),
    a slice of the whole batch axis. Only where the kept operand is a full series: made from ``wide`` (inputs with
    channels and a time axis) or by a convolution, through element-wise steps, splits, slices and concatenations,
    so the step's shape is its own (a ``[batch, 1, 1]`` operand broadcast over a mask's time would not be);
    and not where the step's output is the graph's. ``graph`` is not changed (the list holds copies)."""
    from onnx import helper

    outputs = {o.name for o in graph.output}
    series = set(_channels(graph, {init.name: init for init in graph.initializer})) | wide
    constants = _constants(graph)
    ones, zeros = set(ones), set()
    same: dict[str, str] = {}
    kept: list[Any] = []
    for original in graph.node:
        node = type(original)()
        node.CopyFrom(original)  # renamed on a copy: a caller that gives up keeps the graph as it was
        node = _renamed(node, same)
        op, out = node.op_type, node.output[0] if node.output else ""
        if op == "ConstantOfShape":
            value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "value"), None)
            if value is None or not _array(value).any():
                zeros.add(out)
        elif op == "Neg" and node.input[0] in zeros:
            zeros.add(out)
        elif op == "Exp" and node.input[0] in zeros:
            ones.add(out)
        if out in outputs:
            kept.append(node)
            continue
        kept_input = _passed(node, ones, zeros, constants)
        if kept_input is not None and kept_input in series:
            same[out] = kept_input
            continue
        if op in ELEMENTWISE | {"Split", "Slice", "Concat"} and any(name in series for name in node.input):
            series.update(node.output)
        kept.append(node)
    return kept


def _passed(node: Any, ones: set[str], zeros: set[str], constants: dict[str, Any]) -> Optional[str]:
    """The input a node passes through unchanged (a product with ones, a sum with zeros, a whole-batch slice), or ``None``."""
    if node.op_type in ("Mul", "Add") and len(node.input) == 2:
        neutral = ones if node.op_type == "Mul" else zeros
        other = [name for name in node.input if name not in neutral]
        return other[0] if len(other) == 1 else None
    if node.op_type == "Slice" and len(node.input) >= 4:
        given = [constants.get(name) for name in node.input[1:]]
        if all(v is not None and v.size == 1 for v in given) and int(given[2].reshape(-1)[0]) == 0 \
                and int(given[0].reshape(-1)[0]) == 0 and int(given[1].reshape(-1)[0]) >= 2**31 - 1 \
                and (len(given) < 4 or int(given[3].reshape(-1)[0]) == 1):
            return node.input[0]
    return None


def _renamed(node: Any, same: dict[str, str]) -> Any:
    """``node`` reading, for each input, what ``same`` says it equals (in place)."""
    for index, name in enumerate(node.input):
        while name in same:
            name = same[name]
        node.input[index] = name
    return node


def _constants(graph: Any) -> dict[str, Any]:
    """The values of ``Constant`` nodes' and initializers' tensors by name (as arrays)."""
    found = {init.name: _array(init) for init in graph.initializer if len(init.dims) <= 1}
    found.update(_constant_nodes(graph))
    return found


def _constant_nodes(graph: Any) -> dict[str, Any]:
    """The values of ``Constant`` nodes' tensors by their output's name (as arrays)."""
    return {node.output[0]: _array(node.attribute[0].t) for node in graph.node
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"}


def _readers(graph: Any) -> dict[str, list[Any]]:
    """The nodes that read each tensor, by name (graph outputs not counted)."""
    found: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def blocked(model: Any) -> int:
    """Keep a lifted part (:func:`lift`) in onnxruntime's channel blocks from end to end (``model`` in place);
    return how many nodes were changed.

    Three kinds of node sent its tensors out of the blocks and back around its convolutions (reorders, and
    element-wise steps on the plain layout: ~25% of a HiFi-GAN decoder's time, ~11% of a flow's):

    - a transposed convolution (each upsampling of a decoder) has no blocked kernel. Upsampling by ``s`` with a
      kernel of ``k`` taps is ``s`` convolutions of ``ceil(k / s)`` taps over the input, one per output phase:
      one ``Conv`` with ``s`` times the output channels, interleaved into time (reshape, transpose, reshape,
      trim), after which a depthwise 1x1 convolution of ones (one multiply per value) brings it into the blocks;
    - a ``LeakyRelu`` that does not follow a convolution it can be fused into (a decoder's residual blocks'
      pre-activations, which read a sum) has no blocked kernel either: the same 1x1 convolution in front of it
      takes it as its fused activation. The released joe voice's decoder took 0.915x the time (120 and 400
      frames, one thread) with the same audio (< 6e-8 apart);
    - a channel slice: a convolution whose output only channel slices read (a flow's WaveNet layers: the gate's
      tanh and sigmoid halves, the residual and skip halves) becomes one convolution per slice, each half's
      activation fused into its own (with :func:`unmasked`, a medium voice's flow took 0.94-0.95x the time,
      120 and 500 frames, with the same output bit for bit).
    """
    graph = model.graph
    blocks = _Blocks(graph)
    nodes, added, changed = [], [], 0
    for node in graph.node:
        made = blocks.rewrite(node)
        if made is None:
            nodes.append(node)
            continue
        nodes.extend(made[0])
        added.extend(made[1])
        changed += 1
    if changed:
        _replace(graph, _live(nodes, {o.name for o in graph.output}), added)
        log.debug("layout: %d nodes kept in channel blocks", changed)
    return changed


class _Blocks:
    """What :func:`blocked` reads of a graph, and each node's replacement."""

    def __init__(self, graph: Any) -> None:
        self.weights = {init.name: init for init in graph.initializer}
        outputs = {o.name for o in graph.output}
        self.readers = {name: len(nodes) + (name in outputs) for name, nodes in _readers(graph).items()}
        """How many nodes (or the graph's output) read each tensor."""
        for name in outputs - set(self.readers):
            self.readers[name] = 1
        self.producers = {name: node for node in graph.node for name in node.output}
        self.channels = _channels(graph, self.weights)
        self.shares: dict[str, list[tuple[int, int, str]]] = {}
        """A convolution's output -> the (start, end) channels each slice reading it takes, and that slice's output."""
        for (conv, (start, end)), output in _channel_slices(graph, self.weights).items():
            self.shares.setdefault(conv, []).append((start, end, output))
        self.sliced = {output for shares in self.shares.values() for _, _, output in shares}

    def rewrite(self, node: Any) -> Optional[tuple[list[Any], list[Any]]]:
        """(nodes, initializers) that replace ``node``, or ``None`` to keep it as it is."""
        if node.op_type == "Slice" and node.output[0] in self.sliced:
            return [], []  # made by its share of the convolution
        if node.op_type == "Conv" and node.output[0] in self.shares:
            made = [_share(node, self.weights, start, end, output) for start, end, output in self.shares[node.output[0]]]
            return [m[0] for m in made], [init for m in made for init in m[1]]
        if node.op_type == "ConvTranspose":
            return _polyphase(node, self.weights)
        if node.op_type == "LeakyRelu" and node.input[0] in self.channels:
            source = self.producers.get(node.input[0])
            if source is None or source.op_type != "Conv" or self.readers.get(node.input[0], 0) > 1:
                return self._fusable(node)
        return None

    def _fusable(self, node: Any) -> tuple[list[Any], list[Any]]:
        """An activation with a depthwise 1x1 convolution of ones in front, which onnxruntime fuses it into."""
        from onnx import numpy_helper

        count, source = self.channels[node.input[0]], node.input[0]
        ones, made = f"{PREFIX}_{node.output[0]}_ones", f"{PREFIX}_{node.output[0]}_in"
        node.input[0] = made
        depthwise = _depthwise(source, ones, made, count, f"{node.name or PREFIX + '_' + node.output[0]}/blocks")
        return [depthwise, node], [numpy_helper.from_array(_ones(count), ones)]


def _channel_slices(graph: Any, weights: dict[str, Any]) -> dict[tuple[str, tuple[int, int]], str]:
    """Lifted convolutions whose output only channel slices read: (its output, (start, end)) -> each slice's output.
    Each slice is then its own convolution of those output channels (a WaveNet layer's gate halves, its residual
    and skip halves), which onnxruntime can fuse an activation into and keep in channel blocks."""
    constants = _constants(graph)

    def value(name: str) -> Optional[list[int]]:
        array = constants.get(name)
        return None if array is None else [int(v) for v in array.reshape(-1)]

    readers = _readers(graph)
    outputs = {o.name for o in graph.output}
    found: dict[tuple[str, tuple[int, int]], str] = {}
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 4 or weight.dims[2] != 1 or node.output[0] in outputs:
            continue
        if any(a.name == "group" and a.i != 1 for a in node.attribute):
            continue
        count, shares = weight.dims[0], {}
        for reader in readers.get(node.output[0], []):
            given = [value(name) for name in reader.input[1:]] if reader.op_type == "Slice" and reader.input[0] == node.output[0] else []
            if (len(given) < 3 or any(v is None or len(v) != 1 for v in given) or given[2][0] not in (1, -3)
                    or (len(given) > 3 and given[3] != [1])):
                shares = {}
                break
            start, end = (min(max(v[0] + count if v[0] < 0 else v[0], 0), count) for v in given[:2])
            if end <= start or (node.output[0], (start, end)) in shares:  # two slices alike: one share could not make both
                shares = {}
                break
            shares[(node.output[0], (start, end))] = reader.output[0]
        found.update(shares)
    return found


def _share(node: Any, weights: dict[str, Any], start: int, end: int, output: str) -> tuple[Any, list[Any]]:
    """The convolution ``node`` for its output channels [start, end) only, writing ``output``."""
    from onnx import helper, numpy_helper

    base = f"{PREFIX}_{output}"
    added = [numpy_helper.from_array(_array(weights[node.input[1]])[start:end], f"{base}_weight")]
    inputs = [node.input[0], f"{base}_weight"]
    if len(node.input) > 2 and node.input[2]:
        added.append(numpy_helper.from_array(_array(weights[node.input[2]])[start:end], f"{base}_bias"))
        inputs.append(f"{base}_bias")
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return helper.make_node("Conv", inputs, [output], name=f"{node.name or base}/{start}-{end}", **attributes), added


def _array(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def _channels(graph: Any, weights: dict[str, Any]) -> dict[str, int]:
    """Channels of the 4-D tensors that lifted convolutions make, and of what element-wise nodes make from them."""
    known: dict[str, int] = {}
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type in CONVOLUTIONS and len(node.input) > 1 else None
        if weight is not None and len(weight.dims) == 4 and weight.dims[2] == 1:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            known[node.output[0]] = weight.dims[0] if node.op_type == "Conv" else weight.dims[1] * group
        elif node.op_type in ELEMENTWISE:
            found = [known[name] for name in node.input if name in known]
            if found:
                known[node.output[0]] = found[0]
    return known


def _polyphase(node: Any, weights: dict[str, Any]) -> Optional[tuple[list[Any], list[Any]]]:
    """A lifted transposed convolution as a blocked ``Conv`` per output phase and an interleave; ``None`` when it
    is not one this rewrites (grouped, dilated, strided in height, shaped by ``output_shape``, or trimmed past its end)."""
    import numpy as np
    from onnx import helper, numpy_helper

    weight = weights.get(node.input[1]) if len(node.input) > 1 else None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if (weight is None or len(weight.dims) != 4 or weight.dims[2] != 1 or attributes.get("group", 1) != 1
            or any(d != 1 for d in attributes.get("dilations", [1, 1])) or "output_shape" in attributes
            or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"", "NOTSET", "")):
        return None
    strides = list(attributes.get("strides", [1, 1]))
    pads = list(attributes.get("pads", [0, 0, 0, 0]))
    extra = list(attributes.get("output_padding", [0, 0]))
    if strides[0] != 1 or pads[0] or pads[2] or extra[0]:
        return None
    w = numpy_helper.to_array(weight)  # [in, out, 1, k]
    inputs, outputs, _, k = w.shape
    s, start = strides[1], pads[1]
    taps = -(-k // s)
    tail = taps * s + pads[3] - k - extra[1]  # samples past the kept ones at the end
    if tail < 0:
        return None
    padded = np.zeros((inputs, outputs, taps * s), dtype=w.dtype)
    padded[..., :k] = w[:, :, 0, :]
    # output channel c * s + r, tap j: phase r of channel c reads input frame q - j through kernel tap r + j * s
    phases = padded.reshape(inputs, outputs, taps, s)[:, :, ::-1, :].transpose(1, 3, 0, 2).reshape(outputs * s, inputs, 1, taps)
    base = f"{PREFIX}_{node.output[0]}"
    scope = node.name or base  # the new nodes keep the old one's module scope (which :mod:`.graph` and the tests read)
    added = [numpy_helper.from_array(np.ascontiguousarray(phases), f"{base}_phases"),
             numpy_helper.from_array(_int64([0, outputs, s, -1]), f"{base}_split"),
             numpy_helper.from_array(_int64([0, outputs, 1, -1]), f"{base}_joined"),
             numpy_helper.from_array(_int64([start]), f"{base}_start"),
             numpy_helper.from_array(_int64([-tail if tail else 2**62]), f"{base}_end"),
             numpy_helper.from_array(_int64([3]), f"{base}_time"),
             numpy_helper.from_array(_ones(outputs), f"{base}_ones")]
    conv = [node.input[0], f"{base}_phases"]
    if len(node.input) > 2 and node.input[2]:
        bias = numpy_helper.to_array(weights[node.input[2]]) if node.input[2] in weights else None
        if bias is None:
            return None
        added.append(numpy_helper.from_array(np.repeat(bias, s), f"{base}_bias"))
        conv.append(f"{base}_bias")
    nodes = [
        helper.make_node("Conv", conv, [f"{base}_phased"], name=scope, kernel_shape=[1, taps],
                         pads=[0, taps - 1, 0, taps - 1]),
        helper.make_node("Reshape", [f"{base}_phased", f"{base}_split"], [f"{base}_by_phase"], name=f"{scope}/by_phase"),
        helper.make_node("Transpose", [f"{base}_by_phase"], [f"{base}_interleaved"], name=f"{scope}/interleaved", perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", [f"{base}_interleaved", f"{base}_joined"], [f"{base}_series"], name=f"{scope}/series"),
        helper.make_node("Slice", [f"{base}_series", f"{base}_start", f"{base}_end", f"{base}_time"], [f"{base}_trimmed"],
                         name=f"{scope}/trimmed"),
        _depthwise(f"{base}_trimmed", f"{base}_ones", node.output[0], outputs, f"{scope}/blocks"),
    ]
    return nodes, added


def _depthwise(source: str, ones: str, target: str, channels: int, name: str) -> Any:
    """A depthwise 1x1 convolution of ones: the identity, as a node onnxruntime runs in channel blocks."""
    from onnx import helper

    return helper.make_node("Conv", [source, ones], [target], name=name, group=channels, kernel_shape=[1, 1])


def _ones(channels: int) -> Any:
    import numpy as np

    return np.ones((channels, 1, 1, 1), dtype=np.float32)


def _replace(graph: Any, nodes: list[Any], added: list[Any]) -> None:
    """``graph``'s nodes replaced by ``nodes``; its initializers and ``added`` kept where a node reads them (onnxruntime
    warns on stderr of each one nothing reads)."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for index in reversed(range(len(graph.initializer))):  # in place: copying the weights cost ~0.1 s a voice
        if graph.initializer[index].name not in used:
            del graph.initializer[index]
    graph.initializer.extend(init for init in added if init.name in used)


class _Rewrite:
    """One pass over a graph's nodes in order: ``nodes`` is the rewritten list."""

    def __init__(self, weights: dict[str, Any], constants: dict[str, Any], inputs: set[str], readers: dict[str, set[str]]) -> None:
        from onnx import numpy_helper

        self.weights, self.constants, self.inputs, self.readers = weights, constants, inputs, readers
        self.axis = f"{PREFIX}_axis2"
        self.added = [numpy_helper.from_array(_int64([2]), self.axis)]
        self.four: dict[str, str] = {}
        """A 3-D tensor's name -> its 4-D twin's."""
        self.shapes: set[str] = set()
        """4-D twins that are shapes (a ``Shape`` of a 4-D tensor): only ``ConstantOfShape`` reads them."""
        self.flat: set[str] = set(inputs) | set(weights) | set(constants)
        """Tensors whose 3-D form exists in the rewritten graph."""
        self.nodes: list[Any] = []
        self.lifted = 0
        self.convolutions = 0

    def visit(self, node: Any) -> None:
        made = self._lifted(node)
        if made is not None:
            self.nodes.append(made)
            self.lifted += 1
            self.convolutions += node.op_type in CONVOLUTIONS
            return
        for name in node.input:
            if name in self.four:
                self.lower(name)
        self.nodes.append(node)
        self.flat.update(node.output)

    def lower(self, name: str) -> None:
        """Make the 3-D form of a lifted tensor where something reads it."""
        if name in self.flat or name not in self.four:
            return
        from onnx import helper

        self.nodes.append(helper.make_node("Squeeze", [self.four[name], self.axis], [name], name=f"{PREFIX}_{name}_squeeze"))
        self.flat.add(name)

    def _raise(self, name: str) -> Optional[str]:
        """The 4-D twin of ``name``: made for a 3-D graph input on first use; ``None`` for any other tensor."""
        if name in self.four:
            return self.four[name]
        if name not in self.inputs:
            return None
        from onnx import helper

        twin = f"{PREFIX}_{name}"
        self.nodes.append(helper.make_node("Unsqueeze", [name, self.axis], [twin], name=f"{twin}_unsqueeze"))
        self.four[name] = twin
        return twin

    def _constant(self, name: str) -> Optional[Any]:
        """The value of a ``Constant`` node's or an initializer's tensor; ``None`` for a computed one."""
        value = self.constants.get(name)
        if value is None and name in self.weights:
            from onnx import numpy_helper

            value = numpy_helper.to_array(self.weights[name])
        return value

    def _scalar(self, name: str) -> bool:
        value = self._constant(name)
        return value is not None and value.size == 1 and value.ndim <= 1

    def _lifted(self, node: Any) -> Optional[Any]:
        """The node's 4-D form (registering its outputs' twins), or ``None`` when it stays 3-D."""
        op = node.op_type
        if op in CONVOLUTIONS:
            made = self._convolution(node)
        elif op in ELEMENTWISE:
            made = self._elementwise(node)
        elif op in ("Slice", "Split", "Concat"):
            made = self._along_axis(node)
        elif (op == "Shape" and len(node.input) == 1 and not node.attribute and node.input[0] in self.four
              and self.readers.get(node.output[0], set()) == {"ConstantOfShape"}):
            made = self._copy(node, [self.four[node.input[0]]])
            if made is not None:
                self.shapes.add(made.output[0])
        elif op == "ConstantOfShape" and self.four.get(node.input[0]) in self.shapes:
            made = self._copy(node, [self.four[node.input[0]]])
        else:
            return None
        return made

    def _copy(self, node: Any, inputs: list[str], **attributes: Any) -> Any:
        from onnx import helper

        kept = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kept.update(attributes)
        outputs = [f"{PREFIX}_{name}" if name else "" for name in node.output]
        for name, twin in zip(node.output, outputs, strict=True):
            if name:
                self.four[name] = twin
        # the node keeps its name (its module scope, which :mod:`.graph` and the tests read): it replaces the old one
        return helper.make_node(node.op_type, inputs, outputs, name=node.name or f"{PREFIX}_{node.output[0]}", **kept)

    def _convolution(self, node: Any) -> Optional[Any]:
        weight = self.weights.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 3 or self.four.get(node.input[0]) in self.shapes:
            return None
        from onnx import helper, numpy_helper

        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"", "NOTSET", "") or "output_shape" in attributes:
            return None
        source = self._raise(node.input[0])
        if source is None:
            return None
        twin = f"{PREFIX}_{weight.name}"
        if not any(init.name == twin for init in self.added):
            self.added.append(numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, None, :], twin))
        changed: dict[str, Any] = {}
        for key, value in attributes.items():
            if key in ("kernel_shape", "strides", "dilations"):
                changed[key] = [1, *value]
            elif key == "output_padding":
                changed[key] = [0, *value]
            elif key == "pads":
                changed[key] = [0, value[0], 0, value[1]]
        return self._copy(node, [source, twin, *node.input[2:]], **changed)

    def _elementwise(self, node: Any) -> Optional[Any]:
        if not any((name in self.four and self.four[name] not in self.shapes) or name in self.inputs for name in node.input):
            return None
        inputs = []
        for name in node.input:
            twin = self._raise(name) if not self._scalar(name) else name
            if twin is None or twin in self.shapes:
                return None
            inputs.append(twin)
        return self._copy(node, inputs)

    def _along_axis(self, node: Any) -> Optional[Any]:
        """Slice/Split/Concat whose axes are known: the time axis (2, or -1) moves to 3 (-1 stays -1)."""
        data = list(node.input if node.op_type == "Concat" else node.input[:1])
        if not any(name in self.four or name in self.inputs for name in data):
            return None
        from onnx import helper, numpy_helper

        rest = list(node.input[len(data):])
        attributes: dict[str, Any] = {}
        if node.op_type == "Slice":
            given = self._constant(rest[2]) if len(rest) >= 3 else None  # starts, ends, axes(, steps)
            if given is None:
                return None
            axes = f"{PREFIX}_{node.output[0]}_axes"
            self.added.append(numpy_helper.from_array(_int64([_moved(int(a)) for a in given.reshape(-1)]), axes))
            rest[2] = axes
        else:
            axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
            attributes["axis"] = _moved(int(axis))
        twins = [self._raise(name) for name in data]
        if any(twin is None or twin in self.shapes for twin in twins):
            return None
        return self._copy(node, twins + rest, **attributes)


def _live(nodes: list[Any], outputs: set[str]) -> list[Any]:
    """``nodes`` less those whose outputs nothing reads (an input's 4-D twin made for a node that then stayed 3-D)."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def _moved(axis: int) -> int:
    """A 3-D tensor's axis on its 4-D form with the unit axis at 2."""
    if axis >= 0:
        return axis if axis < 2 else axis + 1
    return axis if axis == -1 else axis - 1


def _int64(values: list[int]) -> Any:
    import numpy as np

    return np.array(values, dtype=np.int64)
