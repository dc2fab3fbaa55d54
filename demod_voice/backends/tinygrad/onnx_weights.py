"""Read a Piper voice's VITS weights and layer settings out of its ``.onnx`` file.

Every Piper voice is Piper's VITS generator exported by torch's ONNX exporter. The
exporter leaves most parameters under their PyTorch names, but not all of them:

- weight-normalised convolutions (the flow's WaveNet layers) are folded into anonymous
  constants such as ``onnx::Conv_6447``; their bias keeps its name, so a Conv node's
  bias name says which module the folded weight belongs to;
- identical tensors are stored once (all fresh LayerNorm gammas are equal), the others
  appear as ``Identity`` nodes whose output carries the parameter's name;
- ``exp(-logs)`` of the duration predictor's first flow is folded to ``-logs``;
- in a single-speaker export the unused ``sid`` input name lands on the first
  initialiser, so the phoneme embedding is called ``sid``.

So the reader works from the graph's structure (which node consumes which tensor), not
from node names, which older exporters did not scope. Piper stores no hyper-parameters
next to the weights, so :func:`read_shape` derives the architecture from tensor shapes
and :func:`receptive_field` how far the decoder looks. Nothing here imports tinygrad:
the result is plain numpy arrays and convolution settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from demod_voice.errors import InputError


@dataclass(frozen=True)
class ConvSpec:
    """One Conv1d/ConvTranspose1d as the exported graph runs it."""

    weight: np.ndarray
    """Weight as PyTorch lays it out (out, in/groups, k) or, transposed, (in, out, k)."""
    bias: Optional[np.ndarray]
    """Bias, or ``None``."""
    stride: int = 1
    dilation: int = 1
    padding: tuple[int, int] = (0, 0)
    """Zero padding before and after."""
    groups: int = 1
    transposed: bool = False


@dataclass
class VitsWeights:
    """The named tensors and convolutions of one exported voice."""

    tensors: dict[str, np.ndarray]
    """Non-convolution parameters by PyTorch name (embeddings, LayerNorm, flow constants)."""
    convs: dict[str, ConvSpec]
    """Convolutions by module path, e.g. ``flow.flows.0.enc.in_layers.1``."""

    def tensor(self, name: str) -> np.ndarray:
        """The parameter ``name``; raise :class:`InputError` when the export lacks it."""
        if name not in self.tensors:
            raise unreadable(f"has no '{name}'")
        return self.tensors[name]

    def conv(self, path: str) -> ConvSpec:
        """The convolution at module ``path``."""
        if path not in self.convs:
            raise unreadable(f"has no convolution '{path}'")
        return self.convs[path]

    def has(self, path: str) -> bool:
        """Whether a convolution or tensor with this name exists."""
        return path in self.convs or path in self.tensors

    def indices(self, prefix: str, suffix: str = "") -> list[int]:
        """Sorted ``N`` of every ``{prefix}.N{suffix}`` convolution or tensor (counts layers)."""
        found = set()
        for name in (*self.convs, *self.tensors):
            if name.startswith(prefix + "."):
                head, _, rest = name[len(prefix) + 1:].partition(".")
                if head.isdigit() and ("." + rest).startswith(suffix):
                    found.add(int(head))
        return sorted(found)


def unreadable(what: str) -> InputError:
    """The error for a graph that is not the Piper VITS layout this reader knows."""
    return InputError(f"the voice's ONNX graph {what}: not a Piper VITS export the tinygrad backend can read; use --backend piper")


def read_vits_weights(path: Path) -> VitsWeights:
    """Parse ``path`` and collect what the VITS forward pass needs."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        from demod_voice.errors import DependencyError

        raise DependencyError(f"the onnx package is missing ({err}); install it with: pip install 'demod-voice[tinygrad]'") from None
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # noqa: BLE001 - protobuf raises its own untyped errors
        raise InputError(f"cannot read voice {path} as ONNX ({type(err).__name__}); re-download it") from None
    values = _graph_values(graph, numpy_helper)
    convs = _convolutions(graph, values)
    tensors = {name: value for name, value in values.items() if not name.startswith("onnx::") and "/" not in name}
    tensors.update(_embeddings(graph, values))
    affine = _negated_logs(graph, values, "dp.flows.0.m")
    if affine is not None and "dp.flows.0.logs" not in tensors:
        tensors["dp.flows.0.logs"] = -affine
    return VitsWeights(tensors=tensors, convs=convs)


def _graph_values(graph: Any, numpy_helper: Any) -> dict[str, np.ndarray]:
    """Every constant tensor by name: initialisers, ``Constant`` outputs and ``Identity`` aliases of them."""
    values: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == 4:  # a tensor attribute
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _attribute(node: Any, name: str, default: Any) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return list(attribute.ints) if attribute.ints else attribute.i
    return default


def _module_path(node: Any) -> Optional[str]:
    """The PyTorch module a Conv node came from: from its bias's or weight's name, else its scoped node name."""
    for position, suffix in ((2, ".bias"), (1, ".weight")):
        if len(node.input) > position and node.input[position].endswith(suffix) and not node.input[position].startswith("onnx::"):
            return node.input[position][: -len(suffix)]
    if node.name.startswith("/"):  # torch >= 1.13 scopes node names: /flow/flows.0/enc/in_layers.1/Conv
        return ".".join(node.name.strip("/").split("/")[:-1]) or None
    return None


def _convolutions(graph: Any, values: dict[str, np.ndarray]) -> dict[str, ConvSpec]:
    convs: dict[str, ConvSpec] = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.input[1] not in values:
            continue
        path = _module_path(node)
        if path is None:
            continue
        pads = _attribute(node, "pads", [0, 0])
        bias = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        convs[path] = ConvSpec(
            weight=values[node.input[1]].astype(np.float32),
            bias=None if bias is None else bias.astype(np.float32),
            stride=int(_attribute(node, "strides", [1])[0]),
            dilation=int(_attribute(node, "dilations", [1])[0]),
            padding=(int(pads[0]), int(pads[-1])),
            groups=int(_attribute(node, "group", 1)),
            transposed=node.op_type == "ConvTranspose",
        )
    return convs


def _embeddings(graph: Any, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The phoneme and speaker tables, found as the Gathers indexed by the graph inputs ``input`` and ``sid``."""
    found: dict[str, np.ndarray] = {}
    roles = {"input": "enc_p.emb.weight", "sid": "emb_g.weight"}
    inputs = {item.name for item in graph.input}
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in values and node.input[1] in inputs and node.input[1] in roles:
            found[roles[node.input[1]]] = values[node.input[0]]
    return found


def _negated_logs(graph: Any, values: dict[str, np.ndarray], mean_name: str) -> Optional[np.ndarray]:
    """``-logs`` of an ElementwiseAffine whose ``exp(-logs)`` the exporter folded.

    The reverse pass is ``(x - m) * exp(-logs)``: find the Sub that consumes ``m``, the Mul
    that consumes the Sub, and the Exp feeding that Mul; the Exp's input is ``-logs``.
    """
    producers = {out: node for node in graph.node for out in node.output}
    subs = [node.output[0] for node in graph.node if node.op_type == "Sub" and mean_name in node.input]
    for node in graph.node:
        if node.op_type != "Mul" or not any(name in subs for name in node.input):
            continue
        for name in node.input:
            exp = producers.get(name)
            if exp is not None and exp.op_type == "Exp" and exp.input[0] in values:
                return values[exp.input[0]]
    return None


@dataclass(frozen=True)
class Shape:
    """Layer counts and sizes read from the weights (Piper stores no hyper-parameters beside them)."""

    hidden: int
    heads: int
    window: int
    encoder_layers: int
    ffn_kernel: int
    inter: int
    dds_layers: int
    dp_flows: tuple[int, ...]
    bins: int
    filter_channels: int
    flows: tuple[int, ...]
    wn_layers: int
    upsamples: int
    kernels_per_upsample: int
    resblock_type: str
    speakers: int


def read_shape(w: VitsWeights) -> Shape:
    """Derive the architecture from tensor shapes and the layers present."""
    try:
        return _read_shape(w)
    except (IndexError, ZeroDivisionError):  # a layer family is missing altogether
        raise _unsupported("its layers are not laid out like Piper's VITS") from None


def _read_shape(w: VitsWeights) -> Shape:
    hidden = w.tensor("enc_p.emb.weight").shape[1]
    rel = w.tensor("enc_p.encoder.attn_layers.0.emb_rel_k")
    resblocks = w.indices("dec.resblocks")
    upsamples = w.indices("dec.ups")
    if not w.has("dp.proj"):
        raise _unsupported("it has no stochastic duration predictor")
    first = f"dec.resblocks.{resblocks[0]}" if resblocks else ""
    resblock_type = "1" if w.has(f"{first}.convs1.0") else "2"
    return Shape(
        hidden=hidden,
        heads=hidden // rel.shape[2],
        window=(rel.shape[1] - 1) // 2,
        encoder_layers=len(w.indices("enc_p.encoder.attn_layers")),
        ffn_kernel=w.conv("enc_p.encoder.ffn_layers.0.conv_1").weight.shape[2],
        inter=w.conv("enc_p.proj").weight.shape[0] // 2,
        dds_layers=len(w.indices("dp.convs.convs_sep")),
        dp_flows=tuple(sorted(w.indices("dp.flows", ".pre"), reverse=True)),
        bins=(w.conv(f"dp.flows.{w.indices('dp.flows', '.proj')[0]}.proj").weight.shape[0] + 1) // 3,
        filter_channels=w.conv("dp.pre").weight.shape[0],
        flows=tuple(sorted(w.indices("flow.flows", ".pre"), reverse=True)),
        wn_layers=len(w.indices(f"flow.flows.{w.indices('flow.flows', '.pre')[0]}.enc.in_layers")),
        upsamples=len(upsamples),
        kernels_per_upsample=len(resblocks) // max(1, len(upsamples)),
        resblock_type=resblock_type,
        speakers=w.tensor("emb_g.weight").shape[0] if "emb_g.weight" in w.tensors else 1,
    )


def _unsupported(why: str) -> Exception:
    return InputError(f"this voice cannot run on the tinygrad backend: {why}; use --backend piper")


def receptive_field(w: VitsWeights, shape: Shape) -> int:
    """Frames on each side that can influence a frame of audio through the flow and the decoder.

    Summed over every convolution on the longest path, at the resolution it runs at, plus
    one frame of margin: a window that keeps this many frames of context on each side
    computes its middle exactly as a run over the whole sentence would.
    """
    reach = 0.0
    for index in shape.flows:
        reach += sum(w.conv(f"flow.flows.{index}.enc.in_layers.{i}").padding[0] for i in range(shape.wn_layers))
    reach += max(w.conv("dec.conv_pre").padding)
    scale = 1
    for i in range(shape.upsamples):
        up = w.conv(f"dec.ups.{i}")
        reach += up.weight.shape[2] / up.stride / scale
        scale *= up.stride
        branches = []
        for j in range(shape.kernels_per_upsample):
            prefix = f"dec.resblocks.{i * shape.kernels_per_upsample + j}"
            convs = [path for path in w.convs if path.startswith(prefix + ".")]
            branches.append(sum(max(w.conv(path).padding) for path in convs))
        reach += max(branches, default=0) / scale
    reach += max(w.conv("dec.conv_post").padding) / scale
    return int(math.ceil(reach)) + 1
