"""What the runtimes really offer, asked of them rather than guessed from package names."""

from __future__ import annotations

from typing import Any

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


def onnx_session(model: str, device: str, threads: int = 0) -> tuple[Any, list[str]]:
    """An ``InferenceSession`` for ``model`` on ``device``, falling back to CPU when CUDA fails to start.

    Returns the session and the warnings to report. ``threads`` 0 lets onnxruntime choose.
    """
    import onnxruntime

    providers, warnings = onnx_providers(device)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as err:  # noqa: BLE001 - a CUDA start failure comes as a generic runtime error
        if providers == [CPU_PROVIDER]:
            raise
        warnings.append(f"the CUDA provider failed to start ({err}); running on CPU")
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=[CPU_PROVIDER])
    used = session.get_providers()
    if device == "gpu" and CUDA_PROVIDER not in used and not warnings:
        warnings.append(f"--gpu was asked for, but onnxruntime gave this session only {', '.join(used)}; running on CPU")
    return session, warnings
