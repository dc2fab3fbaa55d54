"""Read a Piper voice's VITS weights and layer settings out of its ``.onnx`` file.

Every Piper voice is Piper's VITS generator exported by torch's ONNX exporter, but
exporters differ: they name, fold and share tensors differently (weight-normalised
convolutions become anonymous constants, equal LayerNorm gammas are stored once,
``exp(-logs)`` of the first duration flow is folded, a single-speaker export names the
phoneme table after the unused ``sid`` input). So :mod:`.vits_graph` finds every weight by
the graph's structure, never by a name, and this module turns what it found into numpy
arrays and convolution settings. Piper stores no hyper-parameters next to the weights, so
:func:`read_shape` derives the architecture from tensor shapes and
:func:`receptive_field` how far the decoder looks. Nothing here imports tinygrad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from demod_voice.backends.tinygrad.vits_graph import (
    Graph,
    LayoutError,
    embeddings,
    first_duration_flow,
    label_convolutions,
    layer_norms,
    relative_embeddings,
)
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
    """Parse ``path`` and collect what the VITS forward pass needs, found by the graph's structure."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        from demod_voice.errors import DependencyError

        raise DependencyError(f"the onnx package is missing ({err}); install it with: pip install 'demod-voice[tinygrad]'") from None
    try:
        model = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf raises its own untyped errors
        raise InputError(f"cannot read voice {path} as ONNX ({type(err).__name__}); re-download it") from None
    try:
        return _structured(Graph(model.graph, numpy_helper))
    except LayoutError as err:
        raise unreadable(str(err)) from None


def _structured(graph: Graph) -> VitsWeights:
    tables = embeddings(graph)
    if "enc_p.emb.weight" not in tables:
        raise LayoutError("has no phoneme embedding gathered by the input 'input'")
    hidden = int(tables["enc_p.emb.weight"].shape[1])
    speaker_channels = int(tables["emb_g.weight"].shape[1]) if "emb_g.weight" in tables else 0
    labels = label_convolutions(graph, hidden, speaker_channels)
    names = {id(node): path for path, node in labels.items()}
    tensors = {**tables, **layer_norms(graph, names), **relative_embeddings(graph, names), **first_duration_flow(graph)}
    return VitsWeights(tensors=tensors, convs={path: _conv_spec(node, graph.values) for path, node in labels.items()})


def _attribute(node: Any, name: str, default: Any) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return list(attribute.ints) if attribute.ints else attribute.i
    return default


def _conv_spec(node: Any, values: dict[str, np.ndarray]) -> ConvSpec:
    pads = _attribute(node, "pads", [0, 0])
    bias = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return ConvSpec(
        weight=values[node.input[1]].astype(np.float32),
        bias=None if bias is None else bias.astype(np.float32),
        stride=int(_attribute(node, "strides", [1])[0]),
        dilation=int(_attribute(node, "dilations", [1])[0]),
        padding=(int(pads[0]), int(pads[-1])),
        groups=int(_attribute(node, "group", 1)),
        transposed=node.op_type == "ConvTranspose",
    )


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
