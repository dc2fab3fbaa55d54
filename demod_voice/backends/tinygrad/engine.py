"""Piper voices on tinygrad (experimental): the same ``.onnx`` voices, no onnxruntime at inference.

The weights come straight from the voice's ``.onnx`` (:mod:`.vits_onnx`), the network is
written in tinygrad (:mod:`.vits_tinygrad`), and piper's own ``PiperVoice`` does the text
side by calling :class:`TinygradSession` where it would call onnxruntime. So phonemes,
ids, speakers, scales, silence and volume behave exactly as on the ``piper`` backend.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import numpy as np

from demod_voice.backends.base import LoadInfo
from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.devices import TINYGRAD_GPU_DEVICES as GPU_DEVICES
from demod_voice.engine.jobs import LoadSpec
from demod_voice.errors import DependencyError, InputError

log = logging.getLogger(__name__)

MAX_FRAMES = 200_000
"""More frames than this for one sentence (~40 minutes) means the voice's durations are broken."""
CLANG_HINT = "tinygrad's CPU device compiles kernels with clang: install it (apt-get install clang) or use --backend piper"


def prepare_environment(cache_dir: Optional[str], threads: int) -> None:
    """Settings tinygrad reads once at import: its kernel cache beside ours, and our share of the cores."""
    if cache_dir and "CACHEDB" not in os.environ:
        folder = Path(cache_dir) / "tinygrad"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["CACHEDB"] = str(folder / "cache.db")
    if threads > 0:
        os.environ.setdefault("NUM_CPU_THREADS", str(threads))


def cpu_device() -> str:
    """tinygrad's CPU device name, or :class:`DependencyError` saying what is missing."""
    from tinygrad import Device

    try:
        Device["CPU"]
    except Exception as err:  # noqa: BLE001 - tinygrad reports a missing compiler as a plain error
        raise DependencyError(f"{CLANG_HINT} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    return "CPU"


def gpu_device() -> Optional[str]:
    """The first tinygrad GPU device that opens here, or ``None``."""
    from tinygrad import Device

    for name in GPU_DEVICES:
        try:
            Device[name]
        except Exception:  # noqa: BLE001, S112 - a device that cannot open is simply not available
            continue
        return name
    return None


def choose_device(requested: str) -> tuple[str, list[str]]:
    """(tinygrad device, warnings) for ``cpu`` or ``gpu``; a GPU that is missing falls back to the CPU, said aloud."""
    if requested != "gpu":
        return cpu_device(), []
    found = gpu_device()
    if found is not None:
        return found, []
    device = cpu_device()
    return device, [f"--gpu: tinygrad found no GPU device (tried {', '.join(GPU_DEVICES)}); running on the CPU"]


class TinygradSession:
    """Answers ``run(None, feeds)`` like the onnxruntime session of a Piper voice."""

    def __init__(self, model: Any, seed: Optional[int] = None) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Same inputs (``input``, ``input_lengths``, ``scales``, ``sid``) and output shape as the ONNX graph."""
        ids = np.asarray(feeds["input"])[0]
        noise_scale, length_scale, noise_w_scale = (float(v) for v in np.asarray(feeds["scales"]).reshape(-1)[:3])
        speaker = int(np.asarray(feeds["sid"]).reshape(-1)[0]) if feeds.get("sid") is not None else 0
        count = len(ids)
        noise_w = self.rng.standard_normal((2, count)).astype(np.float32) * noise_w_scale
        logw, means, log_scales = self.model.encode(ids, speaker, noise_w)
        index = self.frame_index(logw, length_scale)
        inter = means.shape[0]
        if len(index) == 0:  # VITS clamps a sentence to at least one frame
            z_p = self.rng.standard_normal((inter, 1)) * noise_scale
        else:
            noise = self.rng.standard_normal((inter, len(index)))
            z_p = means[:, index] + noise * np.exp(log_scales[:, index]) * noise_scale
        audio = self.model.decode(z_p.astype(np.float32), speaker)
        return [audio.reshape(1, 1, 1, -1)]

    @staticmethod
    def frame_index(logw: np.ndarray, length_scale: float) -> np.ndarray:
        """For each frame, the phoneme it belongs to (VITS rounds each duration up)."""
        with np.errstate(over="ignore"):
            durations = np.ceil(np.exp(logw.astype(np.float64)) * length_scale)
        if not np.all(np.isfinite(durations)) or durations.sum() > MAX_FRAMES:
            raise InputError("the voice predicted an impossible length for this sentence; check the voice or use --backend piper")
        return np.repeat(np.arange(len(logw)), durations.astype(np.int64))


CPU_DEVICES = 2
"""tinygrad runs each CPU device's kernels on one core (its thread split is done in turn, measured:
the same time with 1 or 2 threads), so sentences are spread over this many CPU devices, each with
its own copy of the weights (~60 MB for a medium voice) and its own compiled replays."""


class TinygradBackend(PiperBackend):
    """A Piper voice whose network runs on tinygrad."""

    def __init__(self) -> None:
        super().__init__()
        self.models: list[Any] = []
        self._free: Any = None

    def load(self, spec: LoadSpec) -> LoadInfo:
        import queue

        info = super().load(spec)
        # One piper voice per device, waiting to be used: piper's text side, that device's model.
        self._free = queue.SimpleQueue()
        for model in self.models:
            voice = copy.copy(self.voice)
            voice.session = TinygradSession(model)
            self._free.put(voice)
        return info

    def open_session(self, spec: LoadSpec) -> tuple[Any, str, str, list[str]]:
        from demod_voice import devices

        prepare_environment(spec.cache_dir, devices.THREADS)
        try:
            import tinygrad  # noqa: F401
        except ImportError as err:
            raise DependencyError(f"tinygrad is not installed ({err}); install it with: pip install 'demod-voice[tinygrad]'") from None
        from demod_voice.backends.tinygrad.onnx_weights import read_vits_weights

        device, warnings = choose_device(spec.device)
        weights = read_vits_weights(Path(spec.model))
        try:
            model = self._build(weights, device)
        except (InputError, DependencyError):
            raise
        except Exception as err:  # noqa: BLE001 - a GPU runtime can fail in many ways; the CPU is the fallback
            if device == "CPU":
                raise
            warnings.append(f"--gpu: tinygrad could not use {device} ({type(err).__name__}: {err}); running on the CPU")
            device = cpu_device()
            model = self._build(weights, device)
        self.models = [model]
        if device == "CPU":
            self.models += self._more_cpu_devices(weights, devices.THREADS or os.cpu_count() or 1)
        detail = (f"tinygrad {device}{f' x{len(self.models)}' if len(self.models) > 1 else ''}, decoder windows "
                  f"{'/'.join(map(str, model.windows))} frames ({model.context} of context each side)")
        return TinygradSession(model), device.lower(), detail, warnings

    def sentences(self, text: str, syn: Any) -> Iterator[Any]:
        """With several CPU devices, sentences run side by side, one per device, in text order."""
        if len(self.models) < 2:
            yield from super().sentences(text, syn)
            return
        from concurrent.futures import ThreadPoolExecutor

        ids = [self.voice.phonemes_to_ids(phonemes) for phonemes in self.voice.phonemize(text) if phonemes]
        pool = ThreadPoolExecutor(len(self.models), thread_name_prefix="tinygrad")
        try:
            yield from pool.map(lambda sentence: self._spoken(sentence, syn), ids)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _spoken(self, ids: list[int], syn: Any) -> Any:
        """One sentence on whichever device is free, finished as piper finishes it (normalised, volume, clipped)."""
        voice = self._free.get()
        try:
            audio = voice.phoneme_ids_to_audio(ids, syn)
        finally:
            self._free.put(voice)
        if syn.normalize_audio:
            peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
            audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
        if syn.volume != 1.0:
            audio = audio * syn.volume
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def _more_cpu_devices(self, weights: Any, cores: int) -> list[Any]:
        """Models on further CPU devices, one per core up to ``CPU_DEVICES``; none if tinygrad cannot open them."""
        models = []
        for index in range(1, min(CPU_DEVICES, cores)):
            try:
                models.append(self._build(weights, f"CPU:{index}"))
            except Exception as err:  # noqa: BLE001 - one device still works; say why at -v
                log.info("tinygrad CPU:%d cannot be opened (%s: %s); sentences run one at a time", index, type(err).__name__, err)
                break
        return models

    @staticmethod
    def _build(weights: Any, device: str) -> Any:
        from demod_voice.backends.tinygrad.vits import TinyVits

        return TinyVits(weights, device)
