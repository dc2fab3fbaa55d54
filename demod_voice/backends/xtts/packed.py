"""The GPT's weight products on a CPU, through oneDNN with weights laid out once at load.

XTTS's GPT is transformers' GPT-2, whose layers multiply with ``Conv1D``: ``addmm(bias, x, W)``
with ``W`` stored ``[in, out]``. On a CPU that goes to MKL, which for more than one row packs the
whole weight on every call: a decode step of 4 rows (requests sharing the GPT's steps) read the
~1.5 GB of weights about three times. Here each ``Conv1D`` becomes a product through oneDNN with
its weight turned ``[out, in]`` and handed to oneDNN once. Measured on the 2-core machine, quiet,
full XTTS-v2 shapes (``bench/xtts_profile.py``): a decode step 0.094 s -> 0.061 s alone and
0.243 s -> 0.107 s for 4 rows, the prefill 0.47 s -> 0.39 s, first audio alone 2.66 s -> 1.87 s.
Outputs move by float rounding (~2e-6 on a 1024x4096 product), as between any two GEMM libraries.

Imported only by a worker that runs XTTS on a CPU (torch and transformers are loaded by then).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.pytorch_utils import Conv1D


class PackedConv1D(torch.nn.Module):
    """``Conv1D``'s product (``x @ W + b`` over the last axis) with the weight held by oneDNN."""

    def __init__(self, dense: Conv1D) -> None:
        super().__init__()
        self.nf = dense.nf
        self.nx = dense.weight.shape[0]
        with torch.no_grad():
            self.weight = dense.weight.detach().t().contiguous().to_mkldnn()
            self.bias = dense.bias.detach().contiguous().to_mkldnn()

    def forward(self, x: Any) -> Any:
        rows = x.reshape(-1, self.nx).contiguous().to_mkldnn()
        return torch._C._nn.mkldnn_linear(rows, self.weight, self.bias).to_dense().view(*x.shape[:-1], self.nf)

    def extra_repr(self) -> str:
        return f"nx={self.nx}, nf={self.nf}, oneDNN"


def usable() -> bool:
    """Whether this torch has oneDNN on the CPU (the official CPU wheels do)."""
    return bool(torch.backends.mkldnn.is_available())


def pack(module: Any) -> int:
    """Replace every ``Conv1D`` under ``module`` (float32) by a :class:`PackedConv1D`; how many were
    replaced. The dense weights are dropped (a mapped checkpoint's pages are then no longer read)."""
    if not usable():
        return 0
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D) and child.weight.dtype == torch.float32 and child.weight.device.type == "cpu":
            setattr(module, name, PackedConv1D(child))
            count += 1
        else:
            count += pack(child)
    return count
