"""Worker side of the book's recogniser jobs: faster-whisper loaded once per worker, each job one
take file transcribed and given back as a value (``{"text": ..., "words": [[start, end, word], ...]}``).

A stand-in until the project's shared recogniser backend lands: it lives here, named by
``module:Class`` in the job's load spec, so nothing else knows of it and it is dropped by
changing :data:`demod_voice.book.verify.RECOGNISER`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.engine.jobs import JobValue, LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError

log = logging.getLogger(__name__)


class RecogniserBackend(Backend):
    """faster-whisper (CTranslate2), int8 on the CPU."""

    def __init__(self) -> None:
        self.model: Any = None

    def load(self, spec: LoadSpec) -> LoadInfo:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise DependencyError("--verify needs faster-whisper; install it with: pip install 'demod-voice[asr]'") from None
        from demod_voice import devices

        started = time.perf_counter()
        device = "cuda" if spec.device == "gpu" else "cpu"
        warnings = []
        try:
            self.model = WhisperModel(spec.model, device=device, compute_type="int8" if device == "cpu" else "float16",
                                      cpu_threads=devices.THREADS or 0, download_root=spec.cache_dir)
        except (RuntimeError, ValueError) as err:
            if device != "cuda":
                raise InputError(f"cannot load the recogniser {spec.model} ({err}); check book.asr_model") from None
            warnings.append(f"the recogniser could not use the GPU ({err}); it runs on the CPU")
            device = "cpu"
            self.model = WhisperModel(spec.model, device="cpu", compute_type="int8", download_root=spec.cache_dir)
        return LoadInfo(device=device, detail=f"faster-whisper, loaded in {time.perf_counter() - started:.2f} s",
                        sample_rate=16000, warnings=warnings)

    def synthesize(self, job: SynthesisJob) -> Iterator[Any]:
        from faster_whisper import decode_audio

        opts = job.options
        audio = decode_audio(opts.audio, sampling_rate=16000)
        language = opts.language if getattr(self.model.model, "is_multilingual", True) else None  # a .en model knows one
        segments, _ = self.model.transcribe(audio, language=language, beam_size=opts.beam_size, word_timestamps=True,
                                            condition_on_previous_text=False, vad_filter=False)
        words, text = [], []
        for segment in segments:
            text.append(segment.text)
            words += [[round(w.start, 3), round(w.end, 3), w.word] for w in (segment.words or [])]
        yield JobValue({"text": " ".join(t.strip() for t in text).strip(), "words": words})
