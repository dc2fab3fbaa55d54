"""Building blocks of the tinygrad VITS: convolutions as the exported graph runs them, the
normalisations and activations torch uses, and the inverse rational-quadratic spline of the
stochastic duration predictor."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from tinygrad import Tensor, dtypes

from demod_voice.backends.tinygrad.onnx_weights import ConvSpec

SPLINE_TAIL = 5.0  # piper's ConvFlow tail_bound: a constant of the code, not stored in the weights
MIN_BIN, MIN_DERIVATIVE = 1e-3, 1e-3
LN_EPS = 1e-5


class Conv:
    """A Conv1d or ConvTranspose1d with its exported settings, weights on the device."""

    def __init__(self, spec: ConvSpec, device: str) -> None:
        self.spec = spec
        self.phases = polyphase(spec) if spec.transposed else None
        weight, bias = (self.phases if self.phases is not None else (spec.weight, spec.bias))[:2]
        self.weight = Tensor(weight, device=device).realize()
        self.bias = None if bias is None else Tensor(bias, device=device).realize()

    @property
    def out_channels(self) -> int:
        return self.spec.weight.shape[1] if self.spec.transposed else self.spec.weight.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        s = self.spec
        x = x.contiguous()
        if self.phases is not None:
            # One ordinary convolution yields all `stride` output phases as channels; interleave them.
            out = x.conv2d(self.weight, self.bias, padding=self.phases[2]).contiguous()  # interleaving inside the conv kernel halves its speed
            length = x.shape[2]
            out = out.reshape(1, self.out_channels, s.stride, length).permute(0, 1, 3, 2).reshape(1, self.out_channels, length * s.stride)
        elif s.transposed:
            out = x.conv_transpose2d(self.weight, self.bias, groups=s.groups, stride=s.stride, dilation=s.dilation, padding=s.padding)
        else:
            out = x.conv2d(self.weight, self.bias, groups=s.groups, stride=s.stride, dilation=s.dilation, padding=s.padding)
        # Each input element is read once per output channel: materialise inputs and outputs
        # rather than let the scheduler fuse activations (tanh, gelu) into the reduction and
        # recompute them for every output channel.
        return out.contiguous()


def polyphase(spec: ConvSpec) -> Optional[tuple[np.ndarray, Optional[np.ndarray], tuple[int, int]]]:
    """A strided ConvTranspose1d as one ordinary convolution with ``stride`` times the output channels.

    Transposed convolution inserts ``stride - 1`` zeros between input samples and then
    convolves; of a 16-tap kernel at stride 8 only 2 taps ever meet a real sample. Output
    sample ``q*stride + r`` is a short convolution of the input with the taps
    ``j = (q - i)*stride + r + pad``; stacking the ``stride`` phases ``r`` as output channels
    gives (weight [out*stride, in, taps], bias, padding) with no multiplications by zero.
    Returns ``None`` for layouts this does not cover (groups, dilation, an output length
    other than ``stride`` times the input).
    """
    weight, stride, (pad, pad_end) = spec.weight, spec.stride, spec.padding
    channels_in, channels_out, kernel = weight.shape
    if spec.groups != 1 or spec.dilation != 1 or pad != pad_end or kernel - 2 * pad != stride or stride < 2:
        return None
    # Input offset d (sample q + d) for tap j in phase r: j = -d*stride + r + pad.
    offsets = [(-((j - r - pad) // stride), r, j) for r in range(stride) for j in range(kernel) if (j - r - pad) % stride == 0]
    low, high = min(d for d, _, _ in offsets), max(d for d, _, _ in offsets)
    phases = np.zeros((channels_out, stride, channels_in, high - low + 1), dtype=np.float32)
    for d, r, j in offsets:
        phases[:, r, :, d - low] = weight[:, :, j].T
    bias = None if spec.bias is None else np.repeat(spec.bias, stride).astype(np.float32)
    return phases.reshape(channels_out * stride, channels_in, high - low + 1), bias, (-low, high)


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """LayerNorm over channels of a [b, c, t] tensor."""
    mean = x.mean(axis=1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(axis=1, keepdim=True)
    return centred * (var + LN_EPS).rsqrt() * gamma.reshape(1, -1, 1) + beta.reshape(1, -1, 1)


def gelu(x: Tensor) -> Tensor:
    """The exact (erf) GELU that torch's ``F.gelu`` computes."""
    return x * 0.5 * (1.0 + (x / math.sqrt(2.0)).erf())


def softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))`` without overflow."""
    return x.relu() + (1.0 + (-x.abs()).exp()).log()


def inverse_spline(x: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, bins: int) -> Tensor:
    """Inverse of the rational-quadratic spline with linear tails on [-5, 5] (``inverse=True`` in VITS)."""
    tail = SPLINE_TAIL
    inside = (x >= -tail) * (x <= tail)
    x_in = x.squeeze(1)  # [1, t]

    def knots(unnormalised: Tensor, minimum: float) -> Tensor:
        share = minimum + (1 - minimum * bins) * unnormalised.softmax(-1)
        cum = share.cumsum(-1).pad((None, None, None, (1, 0)))
        cum = 2 * tail * cum - tail
        edges = Tensor.arange(bins + 1).to(x.device).reshape(1, 1, 1, -1)
        return (edges == 0).where(-tail, (edges == bins).where(tail, cum))

    cumwidths = knots(widths, MIN_BIN)[:, 0]  # [1, t, bins+1]
    cumheights = knots(heights, MIN_BIN)[:, 0]
    bin_widths = cumwidths[..., 1:] - cumwidths[..., :-1]
    bin_heights = cumheights[..., 1:] - cumheights[..., :-1]
    constant = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
    derivs = MIN_DERIVATIVE + softplus(derivatives[:, 0].pad((None, None, (1, 1)), value=constant))  # [1, t, bins+1]

    edges = Tensor.arange(bins + 1).to(x.device).reshape(1, 1, -1)
    search = cumheights + (edges == bins).where(1e-6, 0.0)
    index = (x_in.unsqueeze(-1) >= search).sum(-1, dtype=dtypes.int32) - 1  # [1, t]
    pick = Tensor.arange(bins).to(x.device).reshape(1, 1, -1) == index.unsqueeze(-1)

    def take(values: Tensor) -> Tensor:
        return (pick.where(values[..., :bins], 0.0)).sum(-1)

    in_cumwidths, in_widths = take(cumwidths), take(bin_widths)
    in_cumheights, in_heights = take(cumheights), take(bin_heights)
    in_delta = take(bin_heights / bin_widths)
    d0, d1 = take(derivs), take(derivs[..., 1:])
    offset = x_in - in_cumheights
    slope = d0 + d1 - 2 * in_delta
    a = offset * slope + in_heights * (in_delta - d0)
    b = in_heights * d0 - offset * slope
    c = -in_delta * offset
    root = (2 * c) / (-b - (b * b - 4 * a * c).sqrt())
    out = (root * in_widths + in_cumwidths).unsqueeze(1)
    return inside.where(out, x)
