"""Find a Piper voice's VITS parameters in its ONNX graph by structure, never by name.

Released voices come from several exporters: the 2023 piper ``export_onnx`` and piper-tts
1.8's differ in node names, in what they fold (``exp(-logs)`` of the first duration flow is
a constant in one, an ``Exp`` of ``-logs`` in the other) and in which tensors keep their
PyTorch names. Names are therefore never read here; what identifies a parameter is where
the graph uses it:

- **convolutions** come in the order the inference pass runs them (ONNX keeps nodes in
  topological order, and the exporter emits them as the model executes): the text encoder's
  attention and feed-forward layers, the duration predictor and its flows, the coupling
  flows, the HiFi-GAN decoder. Shapes and the ``group`` attribute split that sequence into
  modules; the decoder's residual blocks are told apart by data flow (each one starts from
  the up-sampling's output);
- **LayerNorms** are the ``Div -> Mul(gamma) -> Add(beta)`` ends of a normalisation, named
  after the nearest convolution upstream (``conv_o`` -> ``norm_layers_1``, ``convs_sep.i``
  -> ``norms_1.i``, ...);
- **relative position embeddings** are the 3-D constants whose consumers lead to an
  attention's output convolution, ``emb_rel_k`` when a ``Softmax`` lies on the way;
- **embeddings** are the tables gathered by the graph inputs ``input`` and ``sid`` (the
  inputs are the voice's interface, which every exporter keeps);
- **the first duration flow** is ``(x - m) * exp(-logs)``: a ``Sub`` of a (2, 1) constant
  and the ``Mul`` after it.

The result uses PyTorch's module paths (``flow.flows.0.enc.in_layers.1``) so that
:mod:`.vits` reads like Piper's own model code.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

NodeLabels = dict[str, Any]
"""Module path -> the Conv/ConvTranspose node of that module."""


class Graph:
    """An ONNX graph with its constants resolved and edges indexed both ways."""

    def __init__(self, graph: Any, numpy_helper: Any) -> None:
        self.nodes = list(graph.node)
        self.inputs = {item.name for item in graph.input}
        self.values: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].type == 4:  # a tensor attribute
                self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            elif node.op_type == "Identity" and node.input and node.input[0] in self.values:
                self.values[node.output[0]] = self.values[node.input[0]]
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def const(self, name: str) -> Optional[np.ndarray]:
        return self.values.get(name)

    def convolutions(self) -> list[Any]:
        """Conv and ConvTranspose nodes with constant weights, in graph order."""
        return [n for n in self.nodes if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1 and n.input[1] in self.values]

    def source(self, name: str, through: tuple[str, ...] = ("LeakyRelu", "Mul", "Pad")) -> str:
        """The tensor ``name`` is computed from, looking past element-wise steps like an activation."""
        node = self.producer.get(name)
        while node is not None and node.op_type in through and node.input:
            name = node.input[0]
            node = self.producer.get(name)
        return name

    def nearest_upstream(self, start: Any, wanted: Callable[[Any], bool], limit: int = 400) -> Optional[Any]:
        """The first node (breadth first, against the data flow) for which ``wanted`` holds."""
        return _breadth_first(start, lambda node: [self.producer[i] for i in node.input if i in self.producer], wanted, limit)[0]

    def downstream(self, name: str, stop: Callable[[Any], bool], limit: int = 400) -> tuple[Optional[Any], set[str]]:
        """(first node reached from tensor ``name`` for which ``stop`` holds, op types passed on the way)."""
        starts = list(self.consumers.get(name, []))
        found, seen = None, set()
        for start in starts:
            hit, ops = _breadth_first(start, lambda node: [c for out in node.output for c in self.consumers.get(out, [])], stop, limit)
            seen |= ops
            if hit is not None and found is None:
                found = hit
        return found, seen


def _breadth_first(start: Any, neighbours: Callable[[Any], list[Any]], wanted: Callable[[Any], bool], limit: int) -> tuple[Optional[Any], set[str]]:
    queue, visited, ops = deque([start]), {id(start)}, set()
    while queue and len(visited) <= limit:
        node = queue.popleft()
        if wanted(node):
            return node, ops
        ops.add(node.op_type)
        for nxt in neighbours(node):
            if id(nxt) not in visited:
                visited.add(id(nxt))
                queue.append(nxt)
    return None, ops


class LayoutError(ValueError):
    """The graph is not laid out like Piper's VITS; the message says what was expected where."""


# ----- convolutions ------------------------------------------------------------------------


def _shape(graph: Graph, node: Any) -> tuple[int, int, int]:
    """(out channels, in channels, kernel) of a Conv or ConvTranspose node."""
    weight = graph.values[node.input[1]]
    groups = _int_attribute(node, "group", 1)
    if node.op_type == "ConvTranspose":
        return int(weight.shape[1]) * groups, int(weight.shape[0]), int(weight.shape[2])
    return int(weight.shape[0]), int(weight.shape[1]) * groups, int(weight.shape[2])


def _int_attribute(node: Any, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


class _Sequence:
    """The convolutions in graph order, consumed front to back while labelling."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.convs = graph.convolutions()
        self.at = 0
        self.labels: NodeLabels = {}

    def peek(self, ahead: int = 0) -> Optional[Any]:
        index = self.at + ahead
        return self.convs[index] if index < len(self.convs) else None

    def shape(self, ahead: int = 0) -> Optional[tuple[int, int, int]]:
        node = self.peek(ahead)
        return None if node is None else _shape(self.graph, node)

    def depthwise(self, ahead: int = 0) -> bool:
        node = self.peek(ahead)
        return node is not None and node.op_type == "Conv" and _int_attribute(node, "group", 1) > 1

    def take(self, label: str, expect: Optional[Callable[[tuple[int, int, int]], bool]] = None, what: str = "") -> Any:
        node = self.peek()
        if node is None or (expect is not None and not expect(_shape(self.graph, node))):
            raise LayoutError(f"has no {what or label} where Piper's VITS has one")
        self.labels[label] = node
        self.at += 1
        return node


def label_convolutions(graph: Graph, hidden: int, speaker_channels: int) -> NodeLabels:
    """Module path of every convolution, from their order and shapes (``speaker_channels`` 0: one speaker)."""
    seq = _Sequence(graph)
    inter = _text_encoder(seq, hidden)
    _duration_predictor(seq, hidden, speaker_channels)
    _coupling_flows(seq, inter, speaker_channels)
    _decoder(seq, inter, speaker_channels)
    if seq.peek() is not None:
        raise LayoutError(f"has {len(seq.convs) - seq.at} convolutions after the decoder's last")
    return seq.labels


def _text_encoder(seq: _Sequence, hidden: int) -> int:
    square = (hidden, hidden, 1)
    layer = 0
    while all(seq.shape(k) == square for k in range(4)) and not seq.depthwise():
        path = f"enc_p.encoder.attn_layers.{layer}"
        for name in ("conv_q", "conv_k", "conv_v", "conv_o"):
            seq.take(f"{path}.{name}")
        ffn = f"enc_p.encoder.ffn_layers.{layer}"
        seq.take(f"{ffn}.conv_1", lambda s: s[1] == hidden, "feed-forward layer")
        seq.take(f"{ffn}.conv_2", lambda s: s[0] == hidden, "feed-forward layer")
        layer += 1
    if layer == 0:
        raise LayoutError("has no text encoder (attention layers over the phoneme embedding)")
    proj = seq.take("enc_p.proj", lambda s: s[1] == hidden and s[0] % 2 == 0, "text encoder projection")
    return _shape(seq.graph, proj)[0] // 2


def _dds(seq: _Sequence, path: str) -> None:
    """A DDSConv: (depthwise, 1x1) pairs."""
    layer = 0
    while seq.depthwise():
        seq.take(f"{path}.convs_sep.{layer}")
        seq.take(f"{path}.convs_1x1.{layer}", lambda s: s[2] == 1, "1x1 convolution")
        layer += 1
    if layer == 0:
        raise LayoutError(f"has no dilated convolutions in {path}")


def _duration_predictor(seq: _Sequence, hidden: int, speaker_channels: int) -> None:
    seq.take("dp.pre", lambda s: s[1] == hidden, "stochastic duration predictor")
    if speaker_channels:
        seq.take("dp.cond", lambda s: s[1] == speaker_channels, "speaker conditioning of the duration predictor")
    _dds(seq, "dp.convs")
    seq.take("dp.proj")
    flows = 0
    while seq.shape() is not None and seq.shape()[1] == 1 and not seq.depthwise():  # a ConvFlow's pre sees one channel
        path = f"dp.flows.@{flows}"
        seq.take(f"{path}.pre")
        _dds(seq, f"{path}.convs")
        seq.take(f"{path}.proj")
        flows += 1
    if flows == 0:
        raise LayoutError("has no duration flows")
    # Piper runs flows[7], [5], [3] (reversed, the unused flows[1] dropped): the k-th seen is 2 * (flows - k) + 1.
    _renumber(seq.labels, "dp.flows", {k: 2 * (flows - k) + 1 for k in range(flows)})


def _coupling_flows(seq: _Sequence, inter: int, speaker_channels: int) -> None:
    half = inter // 2
    flows = 0
    while seq.shape() is not None and seq.shape()[1] == half:
        path = f"flow.flows.@{flows}"
        width = _shape(seq.graph, seq.take(f"{path}.pre"))[0]
        if speaker_channels:
            seq.take(f"{path}.enc.cond_layer", lambda s: s[1] == speaker_channels, "speaker conditioning of a coupling flow")
        layer = 0
        while True:
            seq.take(f"{path}.enc.in_layers.{layer}", lambda s, w=width: s == (2 * w, w, s[2]), "WaveNet layer")
            skip = seq.take(f"{path}.enc.res_skip_layers.{layer}", lambda s, w=width: s[1] == w, "WaveNet skip layer")
            layer += 1
            if _shape(seq.graph, skip)[0] == width:  # the last layer has only a skip output
                break
        seq.take(f"{path}.post", lambda s, w=width: s[1] == w and s[0] in (half, inter), "coupling projection")
        flows += 1
    if flows == 0:
        raise LayoutError("has no coupling flows")
    # Piper runs flows[6], [4], [2], [0] (the flips in between have no weights).
    _renumber(seq.labels, "flow.flows", {k: 2 * (flows - 1 - k) for k in range(flows)})


def _renumber(labels: NodeLabels, prefix: str, numbers: dict[int, int]) -> None:
    for label in [name for name in labels if name.startswith(prefix + ".@")]:
        head, _, rest = label[len(prefix) + 2:].partition(".")
        labels[f"{prefix}.{numbers[int(head)]}.{rest}"] = labels.pop(label)


def _decoder(seq: _Sequence, inter: int, speaker_channels: int) -> None:
    seq.take("dec.conv_pre", lambda s: s[1] == inter, "decoder input convolution")
    if speaker_channels:
        seq.take("dec.cond", lambda s: s[1] == speaker_channels, "speaker conditioning of the decoder")
    block, stage = 0, 0
    while seq.peek() is not None and seq.peek().op_type == "ConvTranspose":
        up = seq.take(f"dec.ups.{stage}")
        stage += 1
        members: list[list[Any]] = []
        while seq.peek(1) is not None and seq.peek().op_type == "Conv":  # every conv but the very last (conv_post)
            node = seq.peek()
            if seq.graph.source(node.input[0]) == up.output[0] or not members:
                members.append([])
            members[-1].append(node)
            seq.at += 1
        for convs in members:
            _label_resblock(seq, f"dec.resblocks.{block}", convs)
            block += 1
    if stage == 0:
        raise LayoutError("has no up-sampling in the decoder")
    seq.take("dec.conv_post", lambda s: s[0] == 1, "decoder output convolution")


def _label_resblock(seq: _Sequence, path: str, convs: list[Any]) -> None:
    """HiFi-GAN's type 1 block pairs a dilated conv with a plain one (the second reads the first directly); type 2 has one per step."""
    paired = len(convs) >= 2 and len(convs) % 2 == 0 and seq.graph.source(convs[1].input[0]) == convs[0].output[0]
    for index, node in enumerate(convs):
        label = f"{path}.convs{1 + index % 2}.{index // 2}" if paired else f"{path}.convs.{index}"
        seq.labels[label] = node


# ----- other parameters --------------------------------------------------------------------


def embeddings(graph: Graph) -> dict[str, np.ndarray]:
    """The phoneme table (gathered by the input ``input``) and the speaker table (by ``sid``)."""
    roles = {"input": "enc_p.emb.weight", "sid": "emb_g.weight"}
    found: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if node.op_type == "Gather" and node.input[0] in graph.values:
            index = graph.source(node.input[1], through=("Cast", "Identity"))
            if index in roles and index in graph.inputs:
                found[roles[index]] = graph.values[node.input[0]]
    return found


def layer_norms(graph: Graph, conv_names: dict[int, str]) -> dict[str, np.ndarray]:
    """gamma/beta of every LayerNorm, named after the nearest convolution upstream."""
    found: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        picked = _layer_norm(graph, node)
        if picked is None:
            continue
        gamma, beta = picked
        conv = graph.nearest_upstream(node, lambda n: id(n) in conv_names)
        path = _norm_path(conv_names[id(conv)]) if conv is not None else None
        if path is not None:
            found[f"{path}.gamma"], found[f"{path}.beta"] = gamma, beta
    return found


def _layer_norm(graph: Graph, node: Any) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(gamma, beta) when ``node`` is the ``Mul`` of ``Div -> Mul(gamma) -> Add(beta)``."""
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    consts = [graph.const(name) for name in node.input]
    divided = [graph.producer.get(name) for name in node.input]
    if not any(c is not None and c.ndim == 1 for c in consts) or not any(p is not None and p.op_type == "Div" for p in divided):
        return None
    gamma = next(c for c in consts if c is not None)
    for add in graph.consumers.get(node.output[0], []):
        beta = next((graph.const(i) for i in add.input if graph.const(i) is not None), None)
        if add.op_type == "Add" and beta is not None and beta.shape == gamma.shape:
            return gamma, beta
    return None


def _norm_path(conv: str) -> Optional[str]:
    """Which LayerNorm follows convolution ``conv`` in Piper's VITS."""
    head, _, tail = conv.rpartition(".")
    if tail == "conv_o" and ".attn_layers." in head:
        return head.replace(".attn_layers.", ".norm_layers_1.")
    if tail == "conv_2" and ".ffn_layers." in head:
        return head.replace(".ffn_layers.", ".norm_layers_2.")
    owner, _, kind = head.rpartition(".")
    if kind in ("convs_sep", "convs_1x1"):
        return f"{owner}.{'norms_1' if kind == 'convs_sep' else 'norms_2'}.{tail}"
    return None


def relative_embeddings(graph: Graph, conv_names: dict[int, str]) -> dict[str, np.ndarray]:
    """Each attention layer's ``emb_rel_k`` / ``emb_rel_v``: 3-D constants that lead to its ``conv_o``."""
    found: dict[str, np.ndarray] = {}
    conv_weights = {node.input[1] for node in graph.convolutions()}
    for name, value in graph.values.items():
        if value.ndim != 3 or name in conv_weights or value.dtype.kind != "f" or value.shape[1] % 2 != 1:
            continue
        conv, ops = graph.downstream(name, lambda n: id(n) in conv_names)
        label = conv_names.get(id(conv)) if conv is not None else None
        if label is not None and label.endswith(".conv_o"):
            found[f"{label[: -len('.conv_o')]}.{'emb_rel_k' if 'Softmax' in ops else 'emb_rel_v'}"] = value
    return found


def first_duration_flow(graph: Graph) -> dict[str, np.ndarray]:
    """``m`` and ``logs`` of the duration predictor's ElementwiseAffine, run backwards as ``(x - m) * exp(-logs)``."""
    for node in graph.nodes:
        mean = graph.const(node.input[1]) if node.op_type == "Sub" and len(node.input) == 2 else None
        if mean is None or mean.shape != (2, 1):
            continue
        for mul in graph.consumers.get(node.output[0], []):
            if mul.op_type != "Mul":
                continue
            other = next(name for name in mul.input if name != node.output[0])
            scale = graph.const(other)
            if scale is not None and scale.shape == (2, 1):  # exp(-logs) folded into a constant
                return {"dp.flows.0.m": mean, "dp.flows.0.logs": -np.log(scale.astype(np.float64)).astype(np.float32)}
            exp = graph.producer.get(other)
            if exp is not None and exp.op_type == "Exp" and graph.const(exp.input[0]) is not None:  # Exp(-logs)
                return {"dp.flows.0.m": mean, "dp.flows.0.logs": -graph.const(exp.input[0])}
    raise LayoutError("has no first duration flow ((x - m) * exp(-logs))")
