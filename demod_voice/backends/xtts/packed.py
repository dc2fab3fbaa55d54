"""The GPT's weight products on a CPU, through oneDNN with weights laid out once at load.

XTTS's GPT is transformers' GPT-2, whose layers multiply with ``Conv1D``: ``addmm(bias, x, W)``
with ``W`` stored ``[in, out]``. On a CPU that goes to MKL, which for more than one row packs the
whole weight on every call: a decode step of 4 rows (requests sharing the GPT's steps) read the
~1.5 GB of weights about three times. Here each ``Conv1D`` becomes a product through oneDNN with
its weight turned ``[out, in]`` and laid out once for :data:`ROWS`-row products. Measured on the 2-core
machine, quiet, full XTTS-v2 shapes (``bench/xtts_profile.py``'s timings): a decode step 0.094 s ->
0.069 s alone and 0.235 s -> 0.076 s for 4 rows, the prefill 0.57 s -> 0.32 s, first audio alone
2.55 s -> 1.91 s. Outputs move by float rounding (~2e-6 on a 1024x4096 product), as between any two
GEMM libraries.

Imported only by a worker that runs XTTS on a CPU (torch and transformers are loaded by then).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers.pytorch_utils import Conv1D

ROWS = 4
"""The weights are laid out for products of this many rows, and fewer rows are padded to it: measured on 2 cores
(a 4096x1024 weight, out of cache), one row padded to 4 costs what one row costs in oneDNN's one-row layout
(0.41-0.53 ms against 0.40-0.54), and 4 rows cost the same (0.41-0.54 ms; 0.84-0.94 in the one-row layout,
2.2 ms through ``addmm``), so one layout serves a request alone and requests sharing a step."""


class PackedConv1D(torch.nn.Module):
    """``Conv1D``'s product (``x @ W + b`` over the last axis) with the weight laid out by oneDNN once."""

    def __init__(self, dense: Conv1D) -> None:
        super().__init__()
        self.nf = dense.nf
        self.nx = dense.weight.shape[0]
        with torch.no_grad():
            self.weight = torch.ops.mkldnn._reorder_linear_weight(dense.weight.detach().t().contiguous(), ROWS)
            self.bias = dense.bias.detach().clone()

    def forward(self, x: Any) -> Any:
        rows = x.reshape(-1, self.nx)
        count = rows.shape[0]
        if count < ROWS:
            rows = torch.nn.functional.pad(rows, (0, 0, 0, ROWS - count))
        out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        return out[:count].view(*x.shape[:-1], self.nf)

    def dense_weight(self) -> Any:
        """The weight as ``Conv1D`` holds it, ``[in, out]`` (for checks)."""
        return self.weight.to_dense().t() if self.weight.is_mkldnn else self.weight.t()

    def extra_repr(self) -> str:
        return f"nx={self.nx}, nf={self.nf}, oneDNN"


def usable() -> bool:
    """Whether this torch lays out and multiplies weights through oneDNN on the CPU (the official CPU wheels do):
    tried once on a small product, so a build without those kernels keeps the dense ``Conv1D``."""
    global _USABLE
    if _USABLE is None:
        try:
            probe = Conv1D(8, 16)
            with torch.inference_mode():
                _USABLE = bool(torch.allclose(PackedConv1D(probe)(torch.ones(2, 16)), probe(torch.ones(2, 16)), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _USABLE = False
    return _USABLE


_USABLE: Optional[bool] = None


def pack(module: Any) -> int:
    """Replace every ``Conv1D`` under ``module`` (float32, on the CPU) by a :class:`PackedConv1D`; how many were
    replaced. The dense weights are dropped, and where they were pages of a mapped checkpoint (the backend maps
    model.pth), those pages are handed back: read once to lay the weights out, they would otherwise stay in the
    worker's resident memory (~1.5 GB for XTTS-v2) next to the copy that is used."""
    if not usable():
        return 0
    dense: list[Any] = []
    count = _replace(module, dense)
    _release(dense)
    return count


def _replace(module: Any, dense: list[Any]) -> int:
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D) and child.weight.dtype == torch.float32 and child.weight.device.type == "cpu":
            setattr(module, name, PackedConv1D(child))
            dense += [child.weight, child.bias]
            count += 1
        else:
            count += _replace(child, dense)
    return count


def _release(tensors: list[Any]) -> None:
    """``madvise(DONTNEED)`` the whole pages of ``tensors`` that lie in a file mapping (read-only weights: a
    later read would fault them in from the file again; nothing reads them). Linux only; elsewhere a no-op."""
    import ctypes
    import mmap

    mapped = _file_mappings()
    if not mapped:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    page = mmap.PAGESIZE
    for tensor in tensors:
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if not any(low <= start and end <= high for low, high in mapped):
            continue
        first, last = -(-start // page) * page, end // page * page
        if last > first:
            libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED)


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's file mappings (``/proc/self/maps``); none where there is no such file."""
    ranges = []
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    low, high = fields[0].split("-")
                    ranges.append((int(low, 16), int(high, 16)))
    except OSError:
        return []
    return ranges
