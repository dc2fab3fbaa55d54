"""Piper's worker side: one ``PiperVoice`` on one onnxruntime session, imported inside ``load``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demod_voice.audio.chunks import AudioChunk, with_pauses
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.backends.piper.request import PiperOptions, read_voice_config
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError


class PiperBackend(Backend):
    """Runs in a worker: one ``PiperVoice`` on one onnxruntime session."""

    def __init__(self) -> None:
        self.voice: Any = None
        self._synthesis_config: Any = None

    def load(self, spec: LoadSpec) -> LoadInfo:
        try:
            from piper.config import PiperConfig, SynthesisConfig
            from piper.voice import PiperVoice
        except ImportError as err:
            raise DependencyError(f"piper-tts is not installed ({err}); install it with: pip install 'demod-voice[piper]'") from None

        started = time.perf_counter()
        config = PiperConfig.from_dict(read_voice_config(Path(spec.model_config)))
        session, device, detail, warnings = self.open_session(spec)
        # piper's own PiperVoice does the text side (phonemes, ids, normalisation, volume) and
        # calls session.run for the audio, so every engine gives the same sentence the same ids.
        self.voice = PiperVoice(session=session, config=config)
        self._synthesis_config = SynthesisConfig
        detail = f"{detail}; loaded in {time.perf_counter() - started:.2f} s"
        return LoadInfo(device=device, detail=detail, sample_rate=config.sample_rate, warnings=warnings)

    def open_session(self, spec: LoadSpec) -> tuple[Any, str, str, list[str]]:
        """An object with onnxruntime's ``run(None, feeds)`` for the voice: (session, device, detail, warnings)."""
        from demod_voice.devices import onnx_session

        try:
            session, warnings = onnx_session(spec.model, spec.device, spec.cache_dir)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot load voice {spec.model}: not a usable ONNX model ({first}); re-download it") from None
        providers = session.get_providers()
        device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
        return session, device, f"onnxruntime providers {', '.join(providers)}", warnings

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        opts: PiperOptions = job.options or PiperOptions()
        syn = self._synthesis_config(
            speaker_id=opts.speaker_id,
            length_scale=opts.length_scale,
            noise_scale=opts.noise_scale,
            noise_w_scale=opts.noise_w_scale,
            volume=opts.volume,
        )
        rate = self.voice.config.sample_rate
        spoken = ([AudioChunk(audio, rate)] for audio in self.sentences(job.text, syn))
        yield from with_pauses(spoken, opts.sentence_silence, rate)

    def sentences(self, text: str, syn: Any) -> Iterator[Any]:
        """Each sentence's audio (float32), as piper's ``PiperVoice.synthesize`` makes it."""
        for chunk in self.voice.synthesize(text, syn_config=syn):
            yield chunk.audio_float_array
