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


def time_series(shapes: dict[str, tuple[int, int]]) -> set[str]:
    """The 3-D tensors (in a VITS: ``[batch, channels, time]``) among :func:`.graph.value_shapes` of the whole
    voice: what :func:`lift` may give the unit axis (the split parts' inputs carry no shapes of their own)."""
    return {name for name, (_, rank) in shapes.items() if rank == 3}


def lift(model: Any, series: set[str]) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``, in place) to run its 1-D work in 4-D; return how many nodes now do.

    ``series``: names known to be 3-D (:func:`time_series`); only graph inputs among them are lifted, and the rest
    of the graph only from those. A graph below opset 13 (``Squeeze`` with axes as an attribute) is left alone."""
    from onnx import numpy_helper

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        return 0
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    constants = {node.output[0]: numpy_helper.to_array(node.attribute[0].t)
                 for node in graph.node if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"}
    outputs = {o.name for o in graph.output}
    readers: dict[str, set[str]] = {name: {"(graph output)"} for name in outputs}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    rewrite = _Rewrite(weights, constants, {i.name for i in graph.input} & series, readers)
    for node in graph.node:
        rewrite.visit(node)
    if not rewrite.convolutions:  # nothing that runs faster in 4-D
        return 0
    for name in outputs:
        rewrite.lower(name)
    _replace(graph, _live(rewrite.nodes, outputs), rewrite.added)
    log.debug("layout: %d nodes run in 4-D", rewrite.lifted)
    return rewrite.lifted


def blocked(model: Any) -> int:
    """Keep a lifted decoder (:func:`lift`) in onnxruntime's channel blocks from end to end (``model`` in place);
    return how many nodes were changed.

    Two kinds of node sent a HiFi-GAN decoder's tensors out of the blocks and back around every convolution
    (reorders, and the residual sums and activations on the plain layout: ~25% of its time):

    - a transposed convolution (each upsampling) has no blocked kernel. Upsampling by ``s`` with a kernel of
      ``k`` taps is ``s`` convolutions of ``ceil(k / s)`` taps over the input, one per output phase: one
      ``Conv`` with ``s`` times the output channels, interleaved into time (reshape, transpose, reshape, trim);
    - a ``LeakyRelu`` that does not follow a convolution it can be fused into (the residual blocks'
      pre-activations, which read a sum) has no blocked kernel either. In front of it, a depthwise 1x1
      convolution of ones (one multiply per value) takes it: onnxruntime fuses the activation into that.

    After each upsampling the same 1x1 convolution brings its output into the blocks. The released joe
    voice's decoder took 0.915x the time (120 and 400 frames, one thread) with the same audio (< 6e-8 apart).
    """
    from onnx import numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for output in graph.output:
        readers[output.name] = readers.get(output.name, 0) + 1
    producers = {name: node for node in graph.node for name in node.output}
    channels = _channels(graph, weights)
    nodes, added, changed = [], [], 0
    for node in graph.node:
        if node.op_type == "ConvTranspose":
            made = _polyphase(node, weights)
            if made is not None:
                nodes.extend(made[0])
                added.extend(made[1])
                changed += 1
                continue
        elif node.op_type == "LeakyRelu" and node.input[0] in channels:
            source = producers.get(node.input[0])
            if source is None or source.op_type != "Conv" or readers.get(node.input[0], 0) > 1:
                name = f"{PREFIX}_{node.output[0]}_ones"
                added.append(numpy_helper.from_array(_ones(channels[node.input[0]]), name))
                nodes.append(_depthwise(node.input[0], name, f"{PREFIX}_{node.output[0]}_in", channels[node.input[0]],
                                        f"{node.name or PREFIX + '_' + node.output[0]}/blocks"))
                node.input[0] = f"{PREFIX}_{node.output[0]}_in"
                changed += 1
        nodes.append(node)
    if changed:
        _replace(graph, nodes, added)
        log.debug("layout: %d nodes kept in channel blocks", changed)
    return changed


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
    kept = [init for init in list(graph.initializer) + added if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


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
