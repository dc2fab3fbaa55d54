"""Worker side of the recogniser: faster-whisper loaded once per worker; each job transcribes one file.

A model named rather than found (``LoadSpec.fetch``) is downloaded into ``LoadSpec.model`` by
faster-whisper's own download (the Hugging Face hub, or ``HF_ENDPOINT``) the first time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.backends.whisper.request import fetch_model, missing_recogniser_hint
from demod_voice.engine.jobs import JobValue, LoadSpec, SynthesisJob
from demod_voice.errors import InputError

log = logging.getLogger(__name__)
RATE = 16000
"""Whisper hears 16 kHz mono."""


class WhisperBackend(Backend):
    """faster-whisper (CTranslate2): int8 on the CPU, float16 on a GPU."""

    def __init__(self) -> None:
        self.model: Any = None

    def load(self, spec: LoadSpec) -> LoadInfo:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise missing_recogniser_hint() from None
        from demod_voice import devices

        folder = Path(spec.model)
        if spec.fetch and not (folder / "model.bin").is_file():
            fetch_model(spec.fetch, folder)
        started = time.perf_counter()
        device, warnings = ("cuda" if spec.device == "gpu" else "cpu"), []
        try:
            self.model = WhisperModel(str(folder), device=device, compute_type="int8" if device == "cpu" else "float16",
                                      cpu_threads=devices.THREADS or 0)
        except (RuntimeError, ValueError) as err:
            if device == "cpu":
                raise InputError(f"cannot load the Whisper model in {folder.name} ({err}); download it again") from None
            warnings.append(f"--gpu: the recogniser could not use the GPU ({err}); it runs on the CPU")
            device = "cpu"
            self.model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=devices.THREADS or 0)
        return LoadInfo(device=device, detail=f"faster-whisper {folder.name}, loaded in {time.perf_counter() - started:.2f} s",
                        sample_rate=RATE, warnings=warnings)

    def synthesize(self, job: SynthesisJob) -> Iterator[Any]:
        from faster_whisper import decode_audio

        opts = job.options
        try:
            audio = decode_audio(opts.audio, sampling_rate=RATE)
        except Exception as err:  # noqa: BLE001 - PyAV raises its own errors for unreadable files
            raise InputError(f"cannot decode {Path(opts.audio).name} as audio ({type(err).__name__})") from None
        language = opts.language if getattr(self.model.model, "is_multilingual", True) else None
        segments, info = self.model.transcribe(audio, language=language, beam_size=opts.beam_size, temperature=0.0,
                                               word_timestamps=opts.word_timestamps, condition_on_previous_text=False,
                                               vad_filter=False)
        words, text = [], []
        for segment in segments:
            text.append(segment.text.strip())
            words += [[round(w.start, 3), round(w.end, 3), w.word.strip()] for w in (segment.words or [])]
        yield JobValue({"text": " ".join(t for t in text if t), "words": words, "language": info.language,
                        "seconds": round(len(audio) / RATE, 3)})
