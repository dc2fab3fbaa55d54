"""Piper's worker side: one ``PiperVoice`` on one onnxruntime session, imported inside ``load``.

Sentences go through the voice in batches (:mod:`.batching`): those of one text, and those of
batch rows handed over together (one voice, one set of options). A job on its own (``piper-infer``,
a streamed ``-o -`` or ``serve`` request) runs its first sentence alone, so its first audio is not
held back for a batch; and a file and a stream of one text are made in the same batches, so they
hold the same samples.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from demod_voice.audio.chunks import AudioChunk, with_pauses
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.backends.piper.batching import release_memory
from demod_voice.backends.piper.request import PiperOptions, read_voice_config
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError

log = logging.getLogger(__name__)


class PiperBackend(Backend):
    """Runs in a worker: one ``PiperVoice`` on one onnxruntime session."""

    def __init__(self) -> None:
        self.voice: Any = None
        self._synthesis_config: Any = None
        self.batcher: Any = None
        """The :class:`~demod_voice.backends.piper.batching.BatchSession` of the voice; ``None``: one sentence at a time."""

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
        batching = ("batched sentences" + (", per-item decoder" if self.batcher.decoder else ", masked decoder")
                    if self.batcher else "one sentence at a time")
        detail = f"{detail}; {batching}; loaded in {time.perf_counter() - started:.2f} s"
        return LoadInfo(device=device, detail=detail, sample_rate=config.sample_rate, warnings=warnings)

    def open_session(self, spec: LoadSpec) -> tuple[Any, str, str, list[str]]:
        """An object with onnxruntime's ``run(None, feeds)`` for the voice: (session, device, detail, warnings).

        The voice's graph prepared for batches (:mod:`.batching`) when it can be; ``self.batcher``
        is then that session, else ``None`` and sentences run one at a time."""
        from demod_voice.backends.piper.batching import BatchSession, prepare
        from demod_voice.devices import onnx_session

        warnings: list[str] = []

        def opened(model: Any) -> Any:
            # bytes (nothing cached) have no file identity to key the optimised-graph cache by
            session, said = onnx_session(model, spec.device, spec.cache_dir if isinstance(model, str) else None)
            warnings.extend(w for w in said if w not in warnings)
            return session

        try:
            prepared = prepare(spec.model, spec.cache_dir)
            try:
                session = BatchSession(prepared, opened) if prepared else opened(spec.model)
            except Exception as err:  # noqa: BLE001 - a damaged cache entry is rebuilt, not fatal
                if prepared is None or not prepared.cached:
                    raise
                log.warning("discarding damaged batching graphs of %s in the cache (%s); preparing them again", spec.model,
                            type(err).__name__)
                prepared = prepare(spec.model, spec.cache_dir, fresh=True)
                session = BatchSession(prepared, opened) if prepared else opened(spec.model)
        except Exception as err:  # noqa: BLE001 - onnx and onnxruntime raise their own untyped errors
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot load voice {spec.model}: not a usable ONNX model ({first}); re-download it") from None
        self.batcher = session if prepared else None
        providers = session.get_providers()
        device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
        return session, device, f"onnxruntime providers {', '.join(providers)}", warnings

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        for chunks in self.synthesize_together([job]):
            yield from chunks

    def synthesize_together(self, jobs: list[SynthesisJob]) -> Iterator[Iterator[AudioChunk]]:
        """The sentences of all ``jobs`` (one voice, one set of options) go through the voice in
        batches; each job's chunks follow in text order."""
        opts: PiperOptions = jobs[0].options or PiperOptions()
        syn = self.synthesis_config(opts)
        rate = self.voice.config.sample_rate
        if self.batcher is None:
            for job in jobs:
                yield with_pauses(([AudioChunk(a, rate)] for a in self.sentences(job.text, syn)), opts.sentence_silence, rate)
            return
        texts = [self.phoneme_ids(job.text) for job in jobs]
        spoken = self.batched([ids for text in texts for ids in text], syn, opts.batch_size, first_alone=len(jobs) == 1)
        for text in texts:
            sentences = ([AudioChunk(audio, rate)] for audio in itertools.islice(spoken, len(text)))
            yield with_pauses(sentences, opts.sentence_silence, rate)

    def synthesis_config(self, opts: PiperOptions) -> Any:
        """piper's ``SynthesisConfig`` for ``opts``."""
        return self._synthesis_config(
            speaker_id=opts.speaker_id,
            length_scale=opts.length_scale,
            noise_scale=opts.noise_scale,
            noise_w_scale=opts.noise_w_scale,
            volume=opts.volume,
        )

    def sentences(self, text: str, syn: Any) -> Iterator[Any]:
        """Each sentence's audio (float32), as piper's ``PiperVoice.synthesize`` makes it, one at a time."""
        for chunk in self.voice.synthesize(text, syn_config=syn):
            yield chunk.audio_float_array

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """The phoneme ids of each sentence of ``text``, as piper makes them (empty sentences dropped)."""
        return [self.voice.phonemes_to_ids(phonemes) for phonemes in self.voice.phonemize(text) if phonemes]

    def batched(self, sentences: list[list[int]], syn: Any, size: int, first_alone: bool = False) -> Iterator[Any]:
        """Each sentence's finished audio in order, made in batches of up to ``size`` similar lengths."""
        from demod_voice.backends.piper import batching

        scales, speaker = self._feeds(syn)
        rest = range(1, len(sentences)) if first_alone else range(len(sentences))
        order = [[rest[i] for i in group] for group in batching.groups([len(sentences[i]) for i in rest], size)]
        order.sort(key=min)  # the batch holding the next sentence in text order goes first
        if first_alone and sentences:
            order.insert(0, [0])
        done: dict[int, Any] = {}
        following = 0
        for group in order:
            started = time.perf_counter()
            audio = self.batcher.batch([sentences[i] for i in group], scales, speaker)
            release_memory()
            log.debug("%d sentence(s) in one batch in %.2f s", len(group), time.perf_counter() - started)
            done.update(zip(group, audio, strict=True))
            while following in done:
                yield finish(done.pop(following), syn)
                following += 1

    def _feeds(self, syn: Any) -> tuple[Any, Optional[int]]:
        """The ``scales`` input and the speaker id, resolved against the voice's defaults as piper does."""
        import numpy as np

        config = self.voice.config
        scales = np.array([
            config.noise_scale if syn.noise_scale is None else syn.noise_scale,
            config.length_scale if syn.length_scale is None else syn.length_scale,
            config.noise_w_scale if syn.noise_w_scale is None else syn.noise_w_scale,
        ], dtype=np.float32)
        if config.num_speakers <= 1:
            return scales, None
        return scales, config.default_speaker_id if syn.speaker_id is None else syn.speaker_id


def finish(audio: Any, syn: Any) -> Any:
    """A sentence's raw audio finished as piper finishes it: peak-normalised, volume, clipped, float32."""
    import numpy as np

    if syn.normalize_audio:
        peak = np.max(np.abs(audio)) if len(audio) else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if syn.volume != 1.0:
        audio = audio * syn.volume
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
