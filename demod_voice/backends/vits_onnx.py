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
from node names, which older exporters did not scope. Nothing here imports tinygrad:
the result is plain numpy arrays and convolution settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError


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
        from ..errors import DependencyError

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
