"""What the runtimes really offer, asked of them rather than guessed from package names."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

THREADS = 0
"""Compute threads an engine in this process may use; 0 lets the engine choose (all cores)."""


@dataclass(frozen=True)
class OnnxTuning:
    """onnxruntime session options beyond the thread count (bench/batch_piper.py prints the variants measured)."""

    spinning: Optional[bool] = False
    """Let idle intra-op threads spin for work; ``None``: only when this process has all the cores
    (``THREADS`` 0). Off: measured on 2 cores (medium voice, batches of 8, shared machine), two
    spinning threads spent 1.75x the CPU time of one thread for a slower run; without spinning
    1.20x, and 0.88x the one thread's wall time."""
    mem_pattern: bool = False
    """onnxruntime's memory-pattern planning. Off: it plans per input shape, and every sentence
    has its own (measured, medium voice, 1 thread: 7% less CPU time with it and the arena off)."""
    cpu_arena: bool = False
    """onnxruntime's CPU memory arena for sessions whose inputs have no bound. Off: the arena kept
    every size it ever grew to, so a worker's memory climbed with each longer sentence (310 -> 389
    MiB over 48 sentences one at a time); without it, 183-262 MiB with no upward trend. A session
    opened as ``bounded`` (:func:`onnx_session`) has it on."""


TUNING = OnnxTuning()
"""The options every session in this process gets."""

TINYGRAD_GPU_DEVICES = ("CUDA", "NV", "AMD", "METAL", "CL")
"""tinygrad devices tried, in order, for ``--gpu`` (the backend and ``health`` both ask in this order)."""

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def onnx_providers(device: str) -> tuple[list[Any], list[str]]:
    """Providers to ask onnxruntime for, and warnings when ``gpu`` cannot be honoured."""
    import onnxruntime

    if device != "gpu":
        return [CPU_PROVIDER], []
    available = onnxruntime.get_available_providers()
    if CUDA_PROVIDER in available:
        return [(CUDA_PROVIDER, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU_PROVIDER], []
    return [CPU_PROVIDER], [
        "--gpu was asked for, but this onnxruntime has no CUDA provider "
        f"(available: {', '.join(available)}); running on CPU. "
        "Install onnxruntime-gpu in place of onnxruntime to use the GPU."
    ]


def onnx_session(model: str | bytes, device: str, cache_dir: Optional[str] = None, bounded: bool = False,
                 wide: bool = False) -> tuple[Any, list[str]]:
    """An ``InferenceSession`` for ``model`` on ``device``, falling back to CPU when CUDA fails to start.

    Returns the session and the warnings to report. With ``cache_dir``, the graph that
    onnxruntime optimises at load is saved once and reused: creating a session for a
    Piper medium voice drops from ~0.55 s to ~0.10 s here, at the same inference speed.
    ``bounded``: the caller keeps every run's inputs under a fixed size (Piper's decoder and flow
    run in windows of at most a few seconds), so the session gets onnxruntime's memory arena, whose
    high-water mark is then bounded too. Without it each run's large buffers are mapped afresh and
    page-faulted in: a 10-word sentence on a medium voice took 293 ms of CPU time against 240 ms
    with the decoder's and the flow's arenas (one thread), for ~80 MB more resident per worker,
    flat over sentences of 5 to 200 words.
    ``wide``: the session may use twice this process's thread share (:func:`session_threads`).
    """
    providers, warnings = onnx_providers(device)
    try:
        session = _cached_session(model, providers, cache_dir, bounded, wide)
    except Exception as err:  # noqa: BLE001 - a CUDA start failure comes as a generic runtime error
        if providers == [CPU_PROVIDER]:
            raise
        warnings.append(f"the CUDA provider failed to start ({err}); running on CPU")
        session = _cached_session(model, [CPU_PROVIDER], cache_dir, bounded, wide)
    used = session.get_providers()
    if device == "gpu" and CUDA_PROVIDER not in used and not warnings:
        warnings.append(f"--gpu was asked for, but onnxruntime gave this session only {', '.join(used)}; running on CPU")
    return session, warnings


def session_threads(wide: bool = False) -> int:
    """Intra-op threads of a session in this process (0: onnxruntime's choice, all the cores).

    ``wide``: twice the process's share, at most the cores, for a short step that every request waits for and
    that threads speed up: a Piper voice's front (text encoder and durations), run before a stream's first audio.
    Measured (generated medium voice, 2 cores, workers of one thread, threads not spinning, the Wyoming bench's
    lines): the front 12.5-12.9 ms on two threads against 15.6-16.6 ms on one, the first chunk 27.5-28.7 ms against
    30.5-30.9 ms; with both workers busy, sentences made in 15 s 312 / 313 against 309 / 318 (every session of
    the worker on two threads: 289 / 296 against 327 / 321, so only the front gets them). ``/tmp/s12`` scripts."""
    if not THREADS:
        return 0
    return min(os.cpu_count() or 1, 2 * THREADS) if wide else THREADS


def _options(bounded: bool = False, wide: bool = False) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    threads = session_threads(wide)
    if threads:
        options.intra_op_num_threads = threads
    spinning = TUNING.spinning if TUNING.spinning is not None else not THREADS
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_mem_pattern = TUNING.mem_pattern
    options.enable_cpu_mem_arena = TUNING.cpu_arena or bounded
    return options


def _cached_session(model: str, providers: list[Any], cache_dir: Optional[str], bounded: bool = False, wide: bool = False) -> Any:
    import onnxruntime

    levels = onnxruntime.GraphOptimizationLevel
    cached = optimized_path(model, providers, cache_dir)
    if cached is not None and cached.is_file():
        try:
            return _from_cache(cached, providers, bounded, wide)
        except Exception as err:  # noqa: BLE001 - a damaged cache entry is rebuilt, not fatal
            log.warning("discarding a damaged optimised-graph cache entry %s (%s)", cached, err)
            cached.unlink(missing_ok=True)
    options = _options(bounded, wide)
    tmp = None
    if cached is not None and _writable_folder(cached.parent):
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        options.optimized_model_filepath = str(tmp)
        # EXTENDED, not ALL, for the file: ALL adds layout transforms tied to this CPU, which must not be cached.
        options.graph_optimization_level = levels.ORT_ENABLE_EXTENDED
    else:
        options.graph_optimization_level = levels.ORT_ENABLE_ALL
    try:
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if tmp is None or not tmp.is_file():
        return session
    os.replace(tmp, cached)
    log.debug("cached the optimised graph of %s as %s", model, cached)
    # the session made the file without the layout transforms; one from the file has them (~10-100 ms)
    try:
        return _from_cache(cached, providers, bounded, wide)
    except Exception as err:  # noqa: BLE001 - e.g. another process found the entry damaged and removed it
        log.debug("reopening %s from the cache failed (%s); keeping the session without layout transforms", cached, err)
        return session


def _from_cache(cached: Path, providers: list[Any], bounded: bool, wide: bool = False) -> Any:
    """A session of an optimised graph from the cache: onnxruntime's CPU-specific layout transforms
    (blocked "NCHWc" convolutions, which :mod:`demod_voice.backends.piper.layout` makes a Piper voice's
    decoder use) are applied at load, on top of the cached ones."""
    import onnxruntime

    options = _options(bounded, wide)
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(cached), sess_options=options, providers=providers)


def optimized_path(model: str, providers: list[Any], cache_dir: Optional[str]) -> Optional[Path]:
    """Where the optimised graph of ``model`` lives, keyed by file identity, onnxruntime version and providers."""
    if not cache_dir:
        return None
    import onnxruntime

    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    key = f"{file_identity(model)}|{onnxruntime.__version__}|{','.join(names)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(cache_dir) / "onnx" / f"{Path(model).stem}-{digest}.onnx"


def file_identity(path: str) -> str:
    """What a cache entry derived from the file at ``path`` is keyed by: its real path, size, modification and change
    times. The change time is set by the kernel at every write or rename: a voice replaced by one of the same size with
    its modification time kept (``cp -p``, ``rsync -a``, files from a Nix store all dated 1970) was served from the old
    voice's optimised graph."""
    stat = os.stat(path)
    return f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def _writable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    glibc keeps memory freed by the engines (onnxruntime without its arena, torch on a CPU) for reuse, so a
    worker's resident set stays at the most any recent run needed. A worker calls this when it goes idle
    (:meth:`~demod_voice.backends.base.Backend.idle`): an XTTS worker then holds 65-90 MB less of its ~1.9 GB,
    a Piper worker the activations of its last fronts. Not after each run: giving memory back and touching it again
    costs ~1.3% of a streamed Piper sentence's CPU time (medium voice, /tmp scripts). Piper's batches also trim after
    their front (:meth:`~demod_voice.backends.piper.batching.BatchSession.batch`), whose activations are the largest.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs a subprocess: ~1 ms a call); ``None`` elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None
