"""Piper's worker side: one ``PiperVoice`` on one onnxruntime session, imported inside ``load``.

Sentences go through the voice in batches (:mod:`.batching`): those of one text, and those of
batch rows handed over together (one voice, one set of options). A file job on its own
(``piper-infer -o x.wav``) runs its first sentence alone, then the rest in batches.

A streamed job (its output is ``-``: ``-o -``, every ``serve`` request) on a split voice goes
sentence by sentence, each through the decoder in windows of frames (:meth:`BatchSession.stream`):
its first audio needs the front of the first sentence and one window of ~0.15 s, not the whole
sentence. When other jobs wait for the voice's workers, a streamed sentence is decoded in one run
instead: its first audio waits in the queue anyway, and the windows' overlap costs CPU time
(~20% of a sentence's) that the jobs behind it need. The joined windows are the sentence's audio, but piper scales each finished sentence
to its own peak, which a stream cannot know before it ends: a streamed sentence is scaled by the
voice's level instead (the peak of a warm-up sentence spoken at load at zero noise, the same in
every worker), or by its first window's peak where that is higher, then clipped. Its level is
therefore within a few dB of the file's, not its exact samples; the same request gives the same
stream whatever the worker made before, and whether it was decoded in windows or whole (to float
rounding: within one 16-bit step).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

from demod_voice.audio.chunks import AudioChunk, with_pauses
from demod_voice.backends.base import Backend, LoadInfo, in_turn
from demod_voice.backends.piper import timing
from demod_voice.backends.piper.request import PiperOptions, read_voice_config
from demod_voice.engine.jobs import STDOUT, JobValue, LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError
from demod_voice.speech_text.perform import perform
from demod_voice.speech_text.script import Speak

log = logging.getLogger(__name__)

FIRST_WINDOW = 0.15
"""Seconds of audio in a streamed sentence's first decoder window (later ones grow, up to :data:`MOST_WINDOW`)."""
MOST_WINDOW = 3.0
"""Seconds of audio in the largest decoder run, streamed or not: bounds a worker's memory."""
WARM_UP = "Hello, this is a short sentence to warm the voice up."
"""Spoken once at load: the first request does not pay onnxruntime's first run, and streams get the voice's level."""
MOST_PHONEMES = 400
"""Phonemes in one run of the voice: a longer sentence (a row with no full stop, a list joined by commas) is cut after
its last clause mark, else its last word, before this many (:func:`pieces`). The voice expands phonemes to frames
through a phonemes x frames matrix, so a sentence's memory grows with the square of its length: a 2,600-character
sentence took 1.5 GB and 22 s, a 17,000-character one 20 GB (the machine's OOM killer), ~400 characters a few MB."""
CLAUSE_MARKS = frozenset(",;:—–.!?")
WORD_PHONEMES = 20_000
"""Words whose phonemes (for word timings) are kept; the cache is emptied when it grows past this."""


class PiperBackend(Backend):
    """Runs in a worker: one ``PiperVoice`` on one onnxruntime session."""

    def __init__(self) -> None:
        self.voice: Any = None
        self._synthesis_config: Any = None
        self.batcher: Any = None
        """The :class:`~demod_voice.backends.piper.batching.BatchSession` of the voice; ``None``: one sentence at a time."""
        self.level = 0.0
        """Raw peak of the warm-up sentence: what a streamed sentence is scaled by (0: unknown)."""
        self._word_phonemes: dict[str, str] = {}

    def load(self, spec: LoadSpec) -> LoadInfo:
        try:
            from piper.config import PhonemeType, PiperConfig, SynthesisConfig
            from piper.voice import PiperVoice
        except ImportError as err:
            raise DependencyError(f"piper-tts is not installed ({err}); install it with: pip install 'demod-voice[piper]'") from None

        started = time.perf_counter()
        config = PiperConfig.from_dict(read_voice_config(Path(spec.model_config)))
        if config.phoneme_type == PhonemeType.ESPEAK:
            _check_espeak_voice(config.espeak_voice, spec.model_config)
        session, device, detail, warnings = self.open_session(spec)
        # piper's own PiperVoice does the text side (phonemes, ids, normalisation, volume) and
        # calls session.run for the audio, so every engine gives the same sentence the same ids.
        self.voice = PiperVoice(session=session, config=config)
        self._synthesis_config = SynthesisConfig
        batching = ("batched sentences" + (", per-item decoder" if self.batcher.decoder else ", masked decoder")
                    if self.batcher else "one sentence at a time")
        if self.streams():
            batching += f", streamed in decoder windows ({self.batcher.context} frames of context)"
            self.batcher.most = math.ceil(MOST_WINDOW * config.sample_rate / self.batcher.hop)
        self.warm_up()
        detail = f"{detail}; {batching}; loaded in {time.perf_counter() - started:.2f} s"
        return LoadInfo(device=device, detail=detail, sample_rate=config.sample_rate, warnings=warnings)

    def open_session(self, spec: LoadSpec) -> tuple[Any, str, str, list[str]]:
        """An object with onnxruntime's ``run(None, feeds)`` for the voice: (session, device, detail, warnings).

        The voice's graph prepared for batches (:mod:`.batching`) when it can be; ``self.batcher``
        is then that session, else ``None`` and sentences run one at a time."""
        from demod_voice.backends.piper.batching import BatchSession, one_preparer, prepare
        from demod_voice.devices import onnx_session

        warnings: list[str] = []

        def opened(model: Any, bounded: bool = False, wide: bool = False) -> Any:
            # bytes (nothing cached) have no file identity to key the optimised-graph cache by
            session, said = onnx_session(model, spec.device, spec.cache_dir if isinstance(model, str) else None, bounded, wide)
            warnings.extend(w for w in said if w not in warnings)
            return session

        try:
            with one_preparer(spec.model, spec.cache_dir):  # the workers starting on a cold voice: one prepares it
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
        _check_speakers(session.front if prepared else session, int(read_voice_config(Path(spec.model_config))["num_speakers"]),
                        spec)
        providers = session.get_providers()
        device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
        return session, device, f"onnxruntime providers {', '.join(providers)}", warnings

    def streams(self) -> bool:
        """Whether streamed jobs go through the decoder in windows (a split voice whose decoder's reach is known)."""
        return bool(self.batcher is not None and self.batcher.decoder is not None and self.batcher.context)

    def warm_up(self) -> None:
        """One sentence through the voice at zero noise: onnxruntime's first run is slow, and its peak is :attr:`level`."""
        if self.batcher is None:
            return
        try:
            ids = self.phoneme_ids(WARM_UP)[:1]
            if ids:
                scales, speaker = self._feeds(self.synthesis_config(PiperOptions(noise_scale=0.0, noise_w_scale=0.0)))
                self.level = _peak(self.batcher.batch(ids, scales, speaker)[0])
        except Exception as err:  # noqa: BLE001 - a warm-up is an optimisation; the voice's errors show on real text
            log.debug("warm-up sentence failed: %s", err)

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        """The job's audio alone (its word timings, which only the worker's ``synthesize_together`` gives, left out)."""
        for chunks in self.synthesize_together([job]):
            yield from (chunk for chunk in chunks if isinstance(chunk, AudioChunk))

    def synthesize_together(self, jobs: list[SynthesisJob]) -> Iterator[Iterator[Any]]:
        """The sentences of all ``jobs`` (one voice, one set of options) go through the voice in
        batches; each job's chunks follow in text order, then (where the durations are known: a
        batched or streamed voice, text without SSML) a :class:`JobValue` with its words' timings
        (:meth:`word_value`), which the worker sends as the job's value."""
        opts: PiperOptions = jobs[0].options or PiperOptions()
        if any(job.segments for job in jobs):  # SSML: pieces at their own rates, exact pauses between
            for job in jobs:
                yield perform(job.segments, self.voice.config.sample_rate, lambda piece, job=job: self.synthesize(self.piece_job(job, piece)))
            return
        syn = self.synthesis_config(opts)
        rate = self.voice.config.sample_rate
        if len(jobs) == 1 and jobs[0].output == STDOUT and self.streams():
            yield self.streamed(jobs[0], syn, opts)
            return
        if self.batcher is None:
            for job in jobs:
                yield with_pauses(([AudioChunk(a, rate)] for a in self.sentences(job.text, syn)), opts.sentence_silence, rate)
            return
        texts = [self.phoneme_ids(job.text) for job in jobs]
        widths: dict[int, Any] = {}
        spoken = self.batched([ids for text in texts for ids in text], syn, opts.batch_size, first_alone=len(jobs) == 1, widths=widths)
        first = 0
        for job, text, own in zip(jobs, texts, in_turn(spoken, map(len, texts)), strict=True):
            lengths: list[int] = []
            sentences = _measured(([AudioChunk(audio, rate)] for audio in own), lengths)
            durations = functools.partial(lambda low, high: [widths.pop(i, None) for i in range(low, high)], first, first + len(text))
            yield self._timed(job, with_pauses(sentences, opts.sentence_silence, rate), text, durations, lengths, opts.sentence_silence)
            first += len(text)

    def streamed(self, job: SynthesisJob, syn: Any, opts: PiperOptions) -> Iterator[AudioChunk]:
        """A streamed job's audio: sentence by sentence, each in decoder windows as they are made, the first
        sentence's first window small (:data:`FIRST_WINDOW`), a later sentence's as long as the audio already
        sent; with jobs queued behind it (``job.waiting``), each sentence in one run up to :data:`MOST_WINDOW`."""
        rate, hop = self.voice.config.sample_rate, self.batcher.hop
        most = self.batcher.most
        window = min(most, max(1, math.ceil(FIRST_WINDOW * rate / hop)))
        first = most if job.waiting else window
        scales, speaker = self._feeds(syn)
        text = self.phoneme_ids(job.text)
        durations: list = []
        lengths: list[int] = []
        head = window * hop  # the gain comes from the same samples whatever the windows

        def spoken(ids: list[int]) -> Iterator[AudioChunk]:
            # A later sentence starts with a window as long as the audio already sent (``lengths``, up to the most):
            # a listener has that much to play while it is made, ~40x what it takes on a core, and a sentence in
            # fewer windows recomputes less context (docs/performance.md, "Audio before the sentence is done").
            start = min(most, max(first, sum(lengths) // hop))
            return self._windows(self.batcher.stream(ids, scales, speaker, start, most, durations), syn, rate, head)

        sentences = _measured((spoken(ids) for ids in text), lengths)
        return self._timed(job, with_pauses(sentences, opts.sentence_silence, rate), text, lambda: durations, lengths,
                           opts.sentence_silence)

    def _timed(self, job: SynthesisJob, chunks: Iterator[AudioChunk], text: list[list[int]], durations: Callable[[], list],
               lengths: list[int], pause: float) -> Iterator[Any]:
        """A job's chunks, then its words' timings as its value (:meth:`word_value`; none if they cannot be had)."""
        yield from chunks
        value = self.word_value(job.text, text, durations(), lengths, pause)
        if value:
            yield JobValue(value)

    def word_value(self, text: str, ids: list[list[int]], durations: list, lengths: list[int], pause: float) -> dict:
        """``{"words": [[start, end, word], ...], "timing": how, "seconds": by the durations}`` for a job whose
        sentences had ``ids``, lasted ``durations`` frames per id and ``lengths`` samples, ``pause`` seconds apart
        (:mod:`.timing`); ``{}`` when any of that is missing. Word timings are a by-product: they never fail a job."""
        rate = self.voice.config.sample_rate
        if not ids or len(durations) != len(ids) or len(lengths) != len(ids) or any(d is None for d in durations):
            return {}
        gap, start, sentences = int(round(pause * rate)), 0, []
        for sentence, widths, length in zip(ids, durations, lengths, strict=True):
            # The decoder's hop where the graph was split (read from its convolutions), else what the audio shows.
            hop = self.batcher.hop or length // max(int(round(float(sum(widths)))), 1)
            sentences.append(timing.Sentence(sentence, widths, start, hop))
            start += length + gap
        try:
            words, how = timing.word_times(text, sentences, self.voice.config.phoneme_id_map, rate, self.word_phonemes)
        except Exception as err:  # noqa: BLE001 - a by-product; the audio is what the job is for
            log.debug("no word timings for %r: %s: %s", text[:40], type(err).__name__, err)
            return {}
        if not words:
            return {}
        return {"words": words, "timing": how, "seconds": round(timing.spoken_seconds(sentences, gap, rate), 4)}

    def word_phonemes(self, word: str) -> str:
        """A word's phonemes spoken alone (espeak, through piper's phonemizer), kept for the next time."""
        known = self._word_phonemes.get(word)
        if known is None:
            if len(self._word_phonemes) >= WORD_PHONEMES:
                self._word_phonemes.clear()
            known = self._word_phonemes[word] = " ".join("".join(p) for p in self.voice.phonemize(word))
        return known

    def _windows(self, pieces: Iterator[Any], syn: Any, rate: int, head: int) -> Iterator[AudioChunk]:
        """A sentence's raw windows, finished as :func:`finish` does but with a gain fixed by its first ``head``
        samples (the first window of a stream decoded in windows): a sentence decoded whole, under load, gets
        the same gain, so the same request gives the same stream either way (to float rounding: within one
        16-bit step)."""
        import numpy as np

        gain = 1.0
        for index, raw in enumerate(pieces):
            if index == 0 and syn.normalize_audio:
                gain = 1.0 / max(self.level, _peak(raw[:head]), 1e-8)
            yield AudioChunk(np.clip(raw * (gain * syn.volume), -1.0, 1.0).astype(np.float32), rate)

    def piece_job(self, job: SynthesisJob, piece: Speak) -> SynthesisJob:
        """One piece of a job's script as a job of its own, its rate folded into the length scale."""
        opts: PiperOptions = job.options or PiperOptions()
        if piece.rate != 1.0:
            opts = dataclasses.replace(opts, length_scale=(opts.length_scale or self.voice.config.length_scale) / piece.rate)
        return dataclasses.replace(job, text=piece.text, segments=None, options=opts)

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
        for ids in self.phoneme_ids(text):
            yield finish(self.voice.phoneme_ids_to_audio(ids, syn), syn)

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """The phoneme ids of each sentence of ``text``, as piper makes them (empty sentences dropped), a sentence of
        more than :data:`MOST_PHONEMES` phonemes in pieces (:func:`pieces`)."""
        return [self.voice.phonemes_to_ids(piece) for phonemes in self.voice.phonemize(text) if phonemes
                for piece in pieces(phonemes, MOST_PHONEMES)]

    def batched(self, sentences: list[list[int]], syn: Any, size: int, first_alone: bool = False,
                widths: Optional[dict[int, Any]] = None) -> Iterator[Any]:
        """Each sentence's finished audio in order, made in batches of up to ``size`` similar lengths
        (and, into ``widths`` by index, its frames per phoneme id, as each batch is made)."""
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
            found: Optional[list] = [] if widths is not None else None
            audio = self.batcher.batch([sentences[i] for i in group], scales, speaker, found)
            if widths is not None:
                widths.update(zip(group, found, strict=True))
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


def _check_speakers(session: Any, count: int, spec: LoadSpec) -> None:
    """A config from another voice (3 speakers for a one-speaker graph) failed every sentence ("Invalid input name: sid",
    exit 1)."""
    takes_speaker = "sid" in {i.name for i in session.get_inputs()}
    if takes_speaker != (count > 1):
        graph = "several speakers" if takes_speaker else "one speaker"
        raise InputError(f"voice config {spec.model_config} says num_speakers {count}, but {Path(spec.model).name} speaks "
                         f"{graph}: the two files are of different voices; give the .onnx.json that came with it")


def _check_espeak_voice(voice: str, config: str) -> None:
    """An espeak voice that espeak-ng lacks failed each sentence ("RuntimeError: Failed to set voice", exit 1)."""
    from demod_voice.speech_text.espeak import check_espeak_voice

    try:
        check_espeak_voice(voice)
    except InputError as err:
        raise InputError(f"{err}, in 'espeak.voice' of {config}") from None


def _measured(sentences: Iterator[Iterator[AudioChunk]], lengths: list[int]) -> Iterator[Iterator[AudioChunk]]:
    """``sentences`` as they are, each one's samples counted into ``lengths`` as it passes."""
    for chunks in sentences:
        lengths.append(0)
        yield _counted(chunks, lengths)


def _counted(chunks: Iterator[AudioChunk], lengths: list[int]) -> Iterator[AudioChunk]:
    for chunk in chunks:
        lengths[-1] += len(chunk.samples)
        yield chunk


def pieces(phonemes: list[str], most: int) -> Iterator[list[str]]:
    """One sentence's phonemes in pieces of at most ``most``, each cut after the last clause mark in its second half,
    else after its last word, else at ``most``; a sentence no longer than ``most`` whole."""
    if len(phonemes) <= most:
        yield phonemes  # as piper makes it
        return
    start = 0
    while start < len(phonemes):
        window = phonemes[start: start + most]
        cut = len(window)
        if len(phonemes) - start > most:
            cut = ([i + 1 for i in range(most - 1, most // 2, -1) if window[i] in CLAUSE_MARKS] or
                   [i for i in range(most - 1, most // 4, -1) if window[i] == " "] or [most])[0]
        piece = window[:cut]
        while piece and piece[-1] == " ":
            piece.pop()
        if piece:
            yield piece
        start += cut
        while start < len(phonemes) and phonemes[start] == " ":
            start += 1


def _peak(audio: Any) -> float:
    import numpy as np

    return float(np.max(np.abs(audio))) if len(audio) else 0.0


def finish(audio: Any, syn: Any) -> Any:
    """A sentence's raw audio finished as piper finishes it: peak-normalised, volume, clipped, float32."""
    import numpy as np

    if syn.normalize_audio:
        peak = np.max(np.abs(audio)) if len(audio) else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if syn.volume != 1.0:
        audio = audio * syn.volume
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
