"""A kernel schedule for the convolutions of the tinygrad VITS on a CPU device.

tinygrad picks each kernel's schedule (how many outputs one loop iteration computes, which
loops are unrolled) with general heuristics. For a 1-D convolution on the CPU they choose
4 output channels x 4 time steps per iteration (and a thread split that the CPU device runs
in turn), which keeps the compiled C code from reusing its loads: measured on a medium Piper
voice's decoder (256 frames, 2-core EPYC), its 131 kernels took 0.80 s, 17-26 GFLOPS on the
large convolutions. Computing 8 time steps x 8 output channels per iteration with the taps
unrolled took 0.38-0.44 s for the same kernels (the 32-channel, 7-tap convolution at 65536
samples: 55 ms -> 22 ms), and gave bit-identical audio. Of the variants measured (time x
channels, sums of kernel times with about +-50 ms of noise) 8x8 took 384-439 ms and 16x4
397-479 ms; 8x4, 4x8, 4x16, 8x16, 16x2, 16x8 and 16x16 took 477-588 ms, 32x2 and 32x4 750 ms and
more. For the 1x1 convolutions (one reduction axis) 8x8 without unrolling saved a little (358 ms
in all against 385). The price is compile time: tinygrad takes longer to generate the larger
kernels (a 256-frame window's first two calls: 10.8 s -> 16 s).

:func:`install` puts the rule in front of tinygrad's heuristic, in this process and in the
processes tinygrad compiles in. A kernel the rule does not recognise, a device other than the
CPU, or an option tinygrad refuses for a shape goes to tinygrad's own choice unchanged: the
rule only changes speed, never what is computed.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

TIME_STEPS = 8
CHANNELS = 8
MAX_TAPS = 16
"""A second reduction axis this short is a convolution's taps (Piper's kernels have 1-16)."""

_installed = False


def conv_schedule(k: Any, fallback: Any) -> Any:
    """The schedule for one kernel: ours for a convolution on the CPU, else ``fallback(k)``."""
    from tinygrad.codegen.opt import KernelOptError, Opt, OptOps

    if str(getattr(getattr(k.ren, "target", None), "device", "")).split(":")[0] != "CPU":
        return fallback(k)
    reduce, output = k.unrollable_dims, k.upcastable_dims
    if len(output) < 2 or len(reduce) not in (1, 2) or (len(reduce) == 2 and k.full_shape[reduce[1]] > MAX_TAPS):
        return fallback(k)
    ours = k.copy()
    time_axis, channel_axis = output[-1], output[-2]  # [channels, time]: time is the contiguous output axis
    try:
        if k.full_shape[time_axis] % TIME_STEPS == 0:
            ours.apply_opt(Opt(OptOps.UPCAST, ours.upcastable_dims.index(time_axis), TIME_STEPS))
        if k.full_shape[channel_axis] % CHANNELS == 0:
            ours.apply_opt(Opt(OptOps.UPCAST, ours.upcastable_dims.index(channel_axis), CHANNELS))
        if len(reduce) == 2:
            ours.apply_opt(Opt(OptOps.UNROLL, 1, 0))  # all the taps
    except (KernelOptError, ValueError, AttributeError):
        return fallback(k)
    return ours


def install() -> None:
    """Route tinygrad's kernel heuristic through :func:`conv_schedule`, here and in its compile workers."""
    global _installed
    if _installed:
        return
    _installed = True
    # Internals of tinygrad (pinned at 0.14.0): if they have moved, tinygrad's own heuristic stays.
    try:
        import tinygrad.codegen.opt.heuristic as heuristic
        import tinygrad.engine.worker as worker
    except ImportError as err:
        log.info("tinygrad's kernel heuristic cannot be found (%s); its own schedules are used", err)
        return
    original = getattr(heuristic, "hand_coded_optimizations", None)
    if original is None or not all(hasattr(worker, name) for name in ("_init_worker", "terminate_worker_pool")):
        log.info("tinygrad's kernel heuristic is not where 0.14.0 had it; its own schedules are used")
        return
    heuristic.hand_coded_optimizations = lambda k: conv_schedule(k, original)
    if worker._init_worker is not _init_worker:
        worker._init_worker = _init_worker
        worker.terminate_worker_pool()  # a pool started before this would compile with the old heuristic


def _init_worker() -> None:
    """Start of a tinygrad compile worker: tinygrad's own set-up, then the rule. The worker is a
    fresh spawned interpreter, so its ``worker._init_worker`` is still tinygrad's until :func:`install`."""
    import tinygrad.engine.worker as worker

    if worker._init_worker is not _init_worker:
        worker._init_worker()
    install()
