"""Voice conversion's worker side: OpenVoice v2's converter through coqui-tts.

The converter loads as coqui's own ``tts --source_wav ... --target_wav ...`` loads it, and a
source that fits one window is converted exactly as coqui converts it (same embeddings, same
noise for the same seed): the source's tone colour is taken out by the flow and the target's put
in. Longer sources go through :mod:`.windows`: read and resampled block by block, converted a
window at a time with the source embedding of their start, and joined with cross-fades, so
memory stays that of two windows whatever the length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demod_voice.audio.chunks import AudioChunk
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.backends.openvoice import windows
from demod_voice.backends.openvoice.request import SAMPLE_RATE, ConvertOptions, Target
from demod_voice.config import ConvertSettings
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError
from demod_voice.voices.references import sound_span

log = logging.getLogger(__name__)

READ_SECONDS = 5.0
"""Seconds of source read (and resampled) at a time in the windowed path."""


class OpenVoiceBackend(Backend):
    """Runs in a worker: one coqui ``OpenVoice`` converter."""

    def __init__(self) -> None:
        self.model: Any = None
        self.torch: Any = None
        self.device = "cpu"
        self._targets: dict[str, Any] = {}

    def load(self, spec: LoadSpec) -> LoadInfo:
        started = time.perf_counter()
        torch, config_class, model_class = _import_engine()
        from demod_voice.devices import THREADS

        if THREADS:
            torch.set_num_threads(THREADS)
        warnings = []
        if spec.device == "gpu":
            if torch.cuda.is_available():
                self.device = "cuda"
            else:
                warnings.append("--gpu was asked for, but torch sees no CUDA device (CPU-only torch, or no driver); running on CPU")
        config = config_class()
        model = model_class(config)
        try:
            model.load_checkpoint(config, str(Path(spec.model) / "checkpoint.pth"), eval=True)
        except Exception as err:  # noqa: BLE001 - torch and coqui raise many kinds for a bad file
            raise InputError(f"cannot load the voice converter in {spec.model}: {type(err).__name__}: {str(err)[:200]}") from None
        self.model, self.torch = model.to(self.device), torch
        audio = model.config.audio
        if audio.input_sample_rate != SAMPLE_RATE:
            raise InputError(f"the converter in {spec.model} works at {audio.input_sample_rate} Hz; OpenVoice v2's converter, at "
                             f"{SAMPLE_RATE} Hz, is the one supported")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        detail = f"OpenVoice converter {params:.1f}M parameters, torch {torch.__version__}; loaded in {time.perf_counter() - started:.1f} s"
        return LoadInfo(device=self.device, detail=detail, sample_rate=SAMPLE_RATE, warnings=warnings)

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        opts: ConvertOptions = job.options
        if not isinstance(opts, ConvertOptions):
            raise InputError("the voice converter takes conversion jobs only (a source recording and a target voice)")
        target = self.target(opts.target)
        settings = opts.settings
        audio = self.model.config.audio
        lost = audio.fft_size - audio.hop_length
        layout = windows.plan(settings.window_seconds, settings.overlap_seconds, SAMPLE_RATE, audio.hop_length, lost)
        started = time.perf_counter()
        total = 0
        for piece in windows.join(self._converted(opts.source, target, settings, layout)):
            total += len(piece)
            yield AudioChunk(piece, SAMPLE_RATE)
        left = _source_samples(opts.source) - total
        if left > 0:  # what the spectrogram's last frame leaves out (n_fft - hop samples), as silence
            yield AudioChunk(_zeros(left), SAMPLE_RATE)
        log.info("converted %s: %.1f s in %.1f s", Path(opts.source).name, (total + max(left, 0)) / SAMPLE_RATE,
                 time.perf_counter() - started)

    def _converted(self, source: str, target: Any, settings: ConvertSettings, layout: windows.Plan) -> Iterator[tuple[int, Any]]:
        """``(start, output)`` per window; one window (the whole clip read as coqui reads it) when the source fits."""
        torch = self.torch
        if _source_samples(source) <= layout.window:
            source_se, spec = self.model.extract_se(source)  # librosa's load and resampling, as coqui's conversion
            torch.manual_seed(settings.seed)
            yield 0, self._infer(spec, source_se, target, settings.tau)
            return
        source_se, _ = self.model.extract_se(torch.from_numpy(_head(source, round(settings.source_embedding_seconds * SAMPLE_RATE))))
        for index, (start, samples) in enumerate(windows.windows(_blocks(source), layout)):
            wav = samples if len(samples) >= self.model.config.audio.fft_size else _padded(samples, self.model.config.audio.fft_size)
            _, spec = self.model.extract_se(torch.from_numpy(wav))
            torch.manual_seed(settings.seed + index)
            yield start, self._infer(spec, source_se, target, settings.tau)

    def _infer(self, spec: Any, source_se: Any, target_se: Any, tau: float) -> Any:
        model = self.model
        model.tau = tau
        with self.torch.inference_mode():
            out = model.inference(spec, {"g_src": source_se, "g_tgt": target_se.to(self.device)})
        return out["model_outputs"][0, 0].float().cpu().numpy()

    def target(self, target: Target) -> Any:
        """The target voice's embedding (mean over its references), kept per target for later jobs."""
        if target.key in self._targets:
            return self._targets[target.key]
        started = time.perf_counter()
        if target.references:
            rate = self.model.config.audio.input_sample_rate
            embedding = self.model._extract_target_se([_speech_of(self.torch, r.path, rate) for r in target.references])
        else:
            embedding = self.model._extract_target_se(_profile_clips(self.torch, target))
        log.info("target voice embedding in %.1f s", time.perf_counter() - started)
        self._targets[target.key] = embedding
        return embedding


def _speech_of(torch: Any, path: str, rate: int) -> Any:
    """A reference recording at ``rate`` as coqui reads it, its silence before and after the speech cut off, as a
    profile's kept audio and XTTS's conditioning are (:func:`~demod_voice.voices.references.sound_span`): the
    reference check said so, and the embedding was made from the whole file."""
    import librosa

    audio = librosa.load(path, sr=rate)[0]
    start, end = sound_span(audio, rate)
    return torch.from_numpy(audio[start:end])


def _profile_clips(torch: Any, target: Target) -> list[Any]:
    """A profile's kept references (int16, one after another) as float tensors at the converter's rate."""
    import librosa
    import numpy as np

    clips, offset = [], 0
    for length in target.lengths:
        clip = target.audio[offset: offset + int(length)].astype(np.float32) / 32767.0
        offset += int(length)
        if target.rate != SAMPLE_RATE:
            clip = librosa.resample(clip, orig_sr=target.rate, target_sr=SAMPLE_RATE)
        clips.append(torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)))
    return clips


def _blocks(path: str) -> Iterator[Any]:
    """The source as mono float32 blocks at the converter's rate, read and resampled a few seconds at a time."""
    import soundfile
    import soxr

    rate = soundfile.info(path).samplerate
    stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
    for block in soundfile.blocks(path, blocksize=int(READ_SECONDS * rate), dtype="float32", always_2d=True):
        mono = block.mean(axis=1)
        yield stream.resample_chunk(mono) if stream else mono
    if stream:
        yield stream.resample_chunk(_zeros(0), last=True)


def _head(path: str, samples: int) -> Any:
    """The source's first ``samples`` at the converter's rate (its own voice is judged on them)."""
    import numpy as np

    parts, have = [], 0
    for block in _blocks(path):
        parts.append(block[: samples - have])
        have += len(parts[-1])
        if have >= samples:
            break
    return np.concatenate(parts).astype(np.float32)


def _source_samples(path: str) -> int:
    """The source's length at the converter's rate (what the output is trimmed or padded to)."""
    import soundfile

    info = soundfile.info(path)
    return round(info.frames * SAMPLE_RATE / info.samplerate)


def _zeros(count: int) -> Any:
    import numpy as np

    return np.zeros(count, dtype=np.float32)


def _padded(samples: Any, length: int) -> Any:
    import numpy as np

    return np.concatenate([samples, _zeros(length - len(samples))]).astype(np.float32)


def _import_engine() -> tuple[Any, Any, Any]:
    try:
        import torch
        from TTS.vc.configs.openvoice_config import OpenVoiceConfig
        from TTS.vc.models.openvoice import OpenVoice
    except ImportError as err:
        hint = "; next to CPU torch run: python -m demod_voice.fixups torchaudio-cpu" if "torchaudio" in str(err) or ".so" in str(err) else ""
        raise DependencyError(f"voice conversion needs coqui-tts, torch and librosa ({err}); install them with: "
                              f"pip install -c constraints.txt 'demod-voice[xtts]'{hint}") from None
    return torch, OpenVoiceConfig, OpenVoice
