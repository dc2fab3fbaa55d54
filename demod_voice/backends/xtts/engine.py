"""XTTS-v2's worker side, through coqui-tts: the model loads once; conditioning latents come
from the voice cache when the same references were seen with the same model; long text is
split into sentences within the language's limit, never truncated."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.audio.chunks import AudioChunk, with_pauses
from demod_voice.audio.text import split_sentences
from demod_voice.backends.base import Backend, LoadInfo, in_turn
from demod_voice.backends.xtts.request import SAMPLE_RATE, EnrollOptions, XttsOptions
from demod_voice.config import XttsSettings
from demod_voice.engine.jobs import JobValue, LoadSpec, SynthesisJob
from demod_voice.errors import DependencyError, InputError, RuntimeFailure
from demod_voice.models.registry import model_identity
from demod_voice.speech_text.perform import perform
from demod_voice.speech_text.script import Speak
from demod_voice.voices.profiles import Profile
from demod_voice.voices.references import FLOOR_DB, TRIM_DB, Reference, latent_key, load_latents, save_latents, sound_span

log = logging.getLogger(__name__)

STREAM_OUT_OF_MEMORY = "the GPU ran out of memory in the middle of a streamed sentence; rerun with --cpu"
"""Audio of the sentence has gone out: making it again on the CPU would say its start twice."""

LATENTS_KEPT = 64
"""Reference sets whose conditioning a worker keeps in memory (~130 KB each); older ones are read back from the disk cache."""

class XttsBackend(Backend):
    """Runs in a worker: one coqui ``Xtts`` model."""

    def __init__(self) -> None:
        self.model: Any = None
        self.device = "cpu"
        self.identity = ""
        self.cache_dir: Optional[str] = None
        self._latents: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        """Conditioning of the :data:`LATENTS_KEPT` reference sets used last (a server cloning from every upload grew it
        by ~130 KB per new recording, without end)."""

    def load(self, spec: LoadSpec) -> LoadInfo:
        started = time.perf_counter()
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # transformers prints config and generation notices meant for model authors; keep them for -vv.
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        torch, xtts_module, config_module = _import_engine()
        from demod_voice.devices import THREADS

        if THREADS:
            torch.set_num_threads(THREADS)
        folder = Path(spec.model)
        if spec.fetch:
            download_released(spec.fetch, Path(spec.cache_dir))
        warnings = []
        self.device = "cpu"
        if spec.device == "gpu":
            if torch.cuda.is_available():
                self.device = "cuda"
            else:
                warnings.append("--gpu was asked for, but torch sees no CUDA device (CPU-only torch, or no driver); running on CPU")
        config = config_module.XttsConfig()
        config.load_json(str(folder / "config.json"))
        try:
            with skip_random_init(torch):
                model = xtts_module.Xtts(config)
                map_checkpoint(model, torch)
                model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True)
        except Exception as err:  # noqa: BLE001 - torch and coqui raise many kinds for a bad file
            raise InputError(f"cannot load the XTTS checkpoint in {folder}: {type(err).__name__}: {err}") from None
        params = sum(p.numel() for p in model.parameters()) / 1e6
        self.model = model.to(self.device)
        packed = self._pack() if self.device == "cpu" else 0
        self.identity = model_identity(folder)
        self.cache_dir = spec.cache_dir
        products = f"; {packed} GPT products through oneDNN" if packed else ""
        detail = f"XTTS {params:.1f}M parameters, torch {torch.__version__}{products}; loaded in {time.perf_counter() - started:.1f} s"
        return LoadInfo(device=self.device, detail=detail, sample_rate=SAMPLE_RATE, warnings=warnings)

    def synthesize(self, job: SynthesisJob) -> Iterator[AudioChunk]:
        for chunks in self.synthesize_together([job]):
            yield from chunks

    def synthesize_together(self, jobs: list[SynthesisJob]) -> Iterator[Iterator[AudioChunk]]:
        """The sentences of all ``jobs`` (one set of sampling settings; voices and languages may
        differ, each sentence keeps its own) are generated in batches together; each job's audio
        is ready once its last sentence is. Enrollment jobs (never handed over with others) give
        back their conditioning instead of audio."""
        if isinstance(jobs[0].options, EnrollOptions):
            for job in jobs:
                yield iter([self.enroll(job.options)])
            return
        if any(job.segments for job in jobs):  # SSML: pieces at their own speed and language, exact pauses between
            for job in jobs:
                yield perform(job.segments, SAMPLE_RATE, lambda piece, job=job: self.synthesize(piece_job(job, piece)))
            return
        sentences: list[_Sentence] = []
        counts = []
        for job in jobs:
            opts: XttsOptions = job.options
            gpt_latent, speaker = self._from_profile(opts.profile) if opts.profile else self.conditioning(opts.references)
            limit = self.model.tokenizer.char_limits.get(opts.language.split("-")[0], 250)
            texts = split_sentences(job.text, limit)
            log.debug("%d sentence(s) within the %d-character limit of '%s'", len(texts), limit, opts.language)
            sentences += [_Sentence(text, opts.language, gpt_latent, speaker) for text in texts]
            counts.append(len(texts))
        opts = jobs[0].options
        spoken = self._streamed(sentences, opts) if opts.stream else self._batched(sentences, opts)
        for share in in_turn(spoken, counts):
            yield with_pauses(share, opts.settings.sentence_silence, SAMPLE_RATE)

    def interleaved(self, jobs: list[SynthesisJob],
                    more: Optional[Callable[[], list[SynthesisJob]]] = None) -> Optional[Iterator[tuple[int, Any]]]:
        """Streamed jobs handed over together (one set of sampling settings, any voices): their
        sentences go through the GPT as one batch, a sentence of each job at a time, and each
        job's audio comes out as it is made, ``(job's place, chunk)``, ``(place, None)`` once the
        job is complete (:func:`.batching.generate_stream`). ``None`` for jobs made in turn.

        ``more()``, asked before each round, gives the jobs that joined meanwhile (``SynthesisJob.joins``): their
        sentences go in from the next round, the first piece cut as a batch's are; one whose voice cannot be read is
        answered ``(place, error)`` alone."""
        opts = jobs[0].options
        if not isinstance(opts, XttsOptions) or not opts.stream or any(job.segments for job in jobs):
            return None
        queues = [self._queue_of(job) for job in jobs]
        if len(jobs) > 1:
            log.info("%d streamed jobs made together, their chunks interleaved", len(jobs))
        return self._rounds(queues, opts.settings, more)

    def _queue_of(self, job: SynthesisJob) -> list[_Sentence]:
        """A streamed job's sentences, each with its voice's conditioning."""
        options: XttsOptions = job.options
        gpt_latent, speaker = self._from_profile(options.profile) if options.profile else self.conditioning(options.references)
        limit = self.model.tokenizer.char_limits.get(options.language.split("-")[0], 250)
        return [_Sentence(text, options.language, gpt_latent, speaker) for text in split_sentences(job.text, limit)]

    def _joined(self, queues: list[list[_Sentence]], spoken: list[bool],
                more: Optional[Callable[[], list[SynthesisJob]]]) -> Iterator[tuple[int, Any]]:
        """Take the jobs that joined since the last round: each gets the next place (its place in the hand-over)."""
        for job in more() if more is not None else ():
            spoken.append(False)
            try:
                queues.append(self._queue_of(job))
            except (Exception, SystemExit) as err:  # noqa: BLE001 - the joined job fails alone; the batch goes on
                queues.append([])
                yield len(queues) - 1, err
                continue
            log.debug("a streamed job joined %d others between two rounds", sum(1 for q in queues[:-1] if q))
            if not queues[-1]:
                yield len(queues) - 1, None

    def _rounds(self, queues: list[list[_Sentence]], s: XttsSettings,
                more: Optional[Callable[[], list[SynthesisJob]]] = None) -> Iterator[tuple[int, Any]]:
        """The next sentence of every job with sentences left, as one streamed batch, until none are left (jobs that
        join meanwhile included)."""
        import numpy as np

        from demod_voice.backends.xtts import batching as xtts_batch

        silence = np.zeros(int(round(s.sentence_silence * SAMPLE_RATE)), dtype=np.float32)
        spoken = [False] * len(queues)
        for index, queue in enumerate(queues):
            if not queue:
                yield index, None
        while True:
            yield from self._joined(queues, spoken, more)
            if not any(queues):
                return
            members = [index for index, queue in enumerate(queues) if queue]
            rows = [queues[index].pop(0) for index in members]
            # a job's first sentence: nothing of it heard yet, so its first piece comes sooner the more share the batch
            first = [s.stream_chunk_size if spoken[index] else xtts_batch.first_chunks(len(rows), s.stream_chunk_size)
                     for index in members]
            for index in members:
                if spoken[index] and len(silence):
                    yield index, AudioChunk(silence, SAMPLE_RATE)
                spoken[index] = True
            yield from self._round(rows, [(index, not queues[index]) for index in members], first, s)

    def _round(self, rows: list[_Sentence], members: list[tuple[int, bool]], first: list[int],
               s: XttsSettings) -> Iterator[tuple[int, Any]]:
        """One sentence of each member job as one streamed batch: ``(job's place, chunk)``, and ``(place, None)`` when
        it was the job's last (``members``: each row's place and whether it is). A GPU out of memory before any audio
        moves the model to the CPU and makes the round there, as a lone stream's sentence did."""
        import torch

        from demod_voice.backends.xtts import batching as xtts_batch

        emitted = False
        try:
            with self._inference(s):
                pieces = xtts_batch.generate_stream(
                    self.model, [r.text for r in rows], [r.language for r in rows], [r.gpt_latent.to(self.device) for r in rows],
                    [r.speaker.to(self.device) for r in rows], speed=s.speed, chunk_tokens=s.stream_chunk_size, first_tokens=first,
                    **_sampling(s))
                for row, samples in pieces:
                    index, last = members[row]
                    if samples is not None:
                        emitted = True
                        yield index, AudioChunk(samples, SAMPLE_RATE)
                    elif last:
                        yield index, None
        except torch.cuda.OutOfMemoryError:
            if emitted:
                raise RuntimeFailure(STREAM_OUT_OF_MEMORY) from None
            self._fall_back_to_cpu()
            yield from self._round(rows, members, first, s)

    def _streamed(self, sentences: list[_Sentence], opts: XttsOptions) -> Iterator[Iterator[AudioChunk]]:
        """One sentence at a time through XTTS's streaming inference: audio as soon as it is made."""
        for sentence in sentences:
            yield self._sentence(sentence.text, opts, sentence.gpt_latent, sentence.speaker)

    def _batched(self, sentences: list[_Sentence], opts: XttsOptions) -> Iterator[list[AudioChunk]]:
        """Sentences generated in groups of up to ``batch_sentences`` (:mod:`.batching`), yielded in order."""
        from demod_voice.backends.xtts import batching as xtts_batch

        done: dict[int, Any] = {}
        following = 0
        for group in xtts_batch.sentence_groups([len(s.text) for s in sentences], opts.settings.batch_sentences):
            started = time.perf_counter()
            rows = [sentences[i] for i in group]
            # The model may have moved to the CPU after an out-of-memory error; latents follow it.
            wavs = self._on_device(opts.settings, lambda rows=rows: xtts_batch.generate(
                self.model, [r.text for r in rows], [r.language for r in rows],
                [r.gpt_latent.to(self.device) for r in rows], [r.speaker.to(self.device) for r in rows],
                speed=opts.settings.speed, **_sampling(opts.settings)))
            log.debug("generated %d sentence(s) together in %.1f s", len(group), time.perf_counter() - started)
            done.update(zip(group, wavs, strict=True))
            while following in done:
                yield [AudioChunk(done.pop(following), SAMPLE_RATE)]
                following += 1

    def _on_device(self, settings: XttsSettings, work: Any) -> Any:
        """``work()`` under inference mode (and float16 autocast when configured on CUDA); a CUDA
        out-of-memory error moves the model to the CPU and runs it again there."""
        import torch

        try:
            with self._inference(settings):
                return work()
        except torch.cuda.OutOfMemoryError:
            self._fall_back_to_cpu()
            with self._inference(settings):
                return work()

    def _inference(self, settings: XttsSettings) -> Any:
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if settings.mixed_precision and self.device == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
        return stack

    def _fall_back_to_cpu(self) -> None:
        import torch

        log.warning("the GPU ran out of memory; moving XTTS to the CPU and retrying (slower)")
        self.model = self.model.to("cpu")
        self.device = "cpu"
        self._latents.clear()  # on the GPU: a voice used before would be handed to the model, now on the CPU, from there
        kept = getattr(self.model.gpt.gpt_inference, "voices", None)
        if kept:
            kept.clear()  # voices' keys and values worked out on the GPU (batching._voice_cache): their memory goes too
        torch.cuda.empty_cache()
        self._pack()

    def _pack(self) -> int:
        """On a CPU, the GPT's weight products through oneDNN with weights laid out once (:mod:`.packed`:
        a decode step 1.4x faster alone, 3.1x for 4 rows sharing it); how many were replaced."""
        from demod_voice.backends.xtts import packed

        return packed.pack(self.model.gpt)

    def _from_profile(self, profile: Profile) -> tuple[Any, Any]:
        import torch

        if profile.model != self.identity:
            raise InputError(f"voice profile '{profile.name}' was made with another XTTS model ({profile.model[:12]}, this one is "
                             f"{self.identity[:12]}); re-create it here with 'demod-voice voices add {profile.name} REFERENCE...'")
        log.info("voice profile '%s': conditioning skipped", profile.name)
        return torch.from_numpy(profile.gpt_cond_latent).to(self.device), torch.from_numpy(profile.speaker_embedding).to(self.device)

    def conditioning(self, references: tuple[Reference, ...]) -> tuple[Any, Any]:
        """Latents for the references, from memory, the disk cache, or computed (and cached)."""
        import torch

        config = self.model.config
        params = {"gpt_cond_len": config.gpt_cond_len, "gpt_cond_chunk_len": config.gpt_cond_chunk_len,
                  "max_ref_len": config.max_ref_len, "sound_norm_refs": config.sound_norm_refs, "trim_db": TRIM_DB,
                  "trim_floor_db": FLOOR_DB}  # latents learnt with the room noise kept are not reused
        key = latent_key(list(references), self.identity, params)
        names = ", ".join(Path(r.path).name for r in references)
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]
        cached = load_latents(self.cache_dir, key)
        if cached is not None:
            log.info("voice cache hit for %s: conditioning skipped", names)
            latents = (torch.from_numpy(cached[0]).to(self.device), torch.from_numpy(cached[1]).to(self.device))
        else:
            started = time.perf_counter()
            gpt_latent, speaker = self._latents_of(references)
            log.info("computed the voice latents of %s in %.1f s; cached for next time", names, time.perf_counter() - started)
            save_latents(self.cache_dir, key, gpt_latent.cpu().numpy(), speaker.cpu().numpy(),
                         {"references": [r.sha256 for r in references], "model": self.identity, "params": params})
            latents = (gpt_latent, speaker)
        self._latents[key] = latents
        while len(self._latents) > LATENTS_KEPT:
            self._latents.popitem(last=False)  # the disk cache keeps it: a later request reads it back in milliseconds
        return latents

    def _latents_of(self, references: tuple[Reference, ...]) -> tuple[Any, Any]:
        """coqui's ``get_conditioning_latents``, with each recording's silence at its start and end cut off first
        (:func:`~demod_voice.voices.references.sound_span`, as the reference check says): kept, a phone memo's seconds
        before and after the speech were averaged into the voice (a 4 s chunk of silence of three in a 12 s memo), and
        the silence before it took the place of speech in the seconds the model hears (``max_ref_len``)."""
        import torch
        from TTS.tts.models.xtts import load_audio

        config, rate = self.model.config, 22050  # the rate coqui's conditioning loads references at
        audios, speakers = [], []
        with torch.inference_mode():
            for reference in references:
                audio = load_audio(reference.path, rate)
                start, end = sound_span(audio[0].numpy(), rate)
                audio = audio[:, start:end][:, : rate * config.max_ref_len].to(self.device)
                if config.sound_norm_refs:
                    audio = (audio / torch.abs(audio).max()) * 0.75
                speakers.append(self.model.get_speaker_embedding(audio, rate))
                audios.append(audio)
            gpt_latent = self.model.get_gpt_cond_latents(torch.cat(audios, dim=-1), rate, length=config.gpt_cond_len,
                                                         chunk_length=config.gpt_cond_chunk_len)
        return gpt_latent, torch.stack(speakers).mean(dim=0)

    def enroll(self, opts: EnrollOptions) -> JobValue:
        """A voice's conditioning as plain arrays (what a profile stores), and the first
        ``keep_seconds`` of its references at 24 kHz, 16-bit (what voice conversion needs)."""
        import numpy as np
        from TTS.tts.models.xtts import load_audio

        gpt_latent, speaker = self.conditioning(opts.references)
        clips, left = [], int(opts.keep_seconds * SAMPLE_RATE)
        for reference in opts.references:
            if left <= 0:
                break
            audio = load_audio(reference.path, SAMPLE_RATE).reshape(-1).numpy()
            start, end = sound_span(audio, SAMPLE_RATE)  # the speech, as the conditioning hears it
            audio = audio[start:end][:left]
            clips.append(np.round(audio * 32767).astype(np.int16))
            left -= len(clips[-1])
        return JobValue({"gpt_cond_latent": gpt_latent.detach().cpu().float().numpy(),
                         "speaker_embedding": speaker.detach().cpu().float().numpy(),
                         "model": self.identity, "references": [r.sha256 for r in opts.references],
                         "reference_audio": np.concatenate(clips), "reference_lengths": np.array([len(c) for c in clips], dtype=np.int64),
                         "reference_rate": SAMPLE_RATE})

    def _sentence(self, sentence: str, opts: XttsOptions, gpt_latent: Any, speaker: Any) -> Iterator[AudioChunk]:
        import torch

        emitted = False
        try:
            for samples in self._stream(sentence, opts, gpt_latent, speaker):
                emitted = True
                yield AudioChunk(samples, SAMPLE_RATE)
        except torch.cuda.OutOfMemoryError:
            if emitted:
                raise RuntimeFailure(STREAM_OUT_OF_MEMORY) from None
            self._fall_back_to_cpu()
            yield from (AudioChunk(s, SAMPLE_RATE) for s in self._stream(sentence, opts, gpt_latent, speaker))

    def _stream(self, sentence: str, opts: XttsOptions, gpt_latent: Any, speaker: Any) -> Iterator[Any]:
        """One sentence's audio as ``Xtts.inference_stream`` makes it (to float rounding), each chunk decoded
        over its own frames (:func:`.batching.generate_stream` with one row)."""
        from demod_voice.backends.xtts import batching as xtts_batch

        s = opts.settings
        # The model may have moved to the CPU after an out-of-memory error; latents follow it.
        gpt_latent, speaker = gpt_latent.to(self.device), speaker.to(self.device)
        with self._inference(s):
            pieces = xtts_batch.generate_stream(self.model, [sentence], [opts.language], [gpt_latent], [speaker], speed=s.speed,
                                                chunk_tokens=s.stream_chunk_size, **_sampling(s))
            for _, samples in pieces:
                if samples is not None:
                    yield samples


def piece_job(job: SynthesisJob, piece: Speak) -> SynthesisJob:
    """One piece of a job's script as a job of its own: its rate folded into the speed, its language if it has one."""
    opts: XttsOptions = job.options
    settings = opts.settings if piece.rate == 1.0 else dataclasses.replace(opts.settings, speed=opts.settings.speed * piece.rate)
    options = dataclasses.replace(opts, settings=settings, language=piece.language or opts.language)
    return dataclasses.replace(job, text=piece.text, segments=None, options=options)


@dataclass(frozen=True)
class _Sentence:
    """One sentence to speak, with the voice and language of the job it belongs to."""

    text: str
    language: str
    gpt_latent: Any
    speaker: Any


def _sampling(s: XttsSettings) -> dict[str, Any]:
    """The GPT's sampling keywords from the settings, as ``Xtts.inference`` and ``inference_stream`` take them."""
    kwargs: dict[str, Any] = {"temperature": s.temperature, "length_penalty": s.length_penalty,
                              "repetition_penalty": s.repetition_penalty, "top_k": s.top_k, "top_p": s.top_p}
    if s.max_new_tokens:
        kwargs["max_new_tokens"] = s.max_new_tokens
    return kwargs


def _import_engine() -> tuple[Any, Any, Any]:
    try:
        import torch
        from TTS.tts.configs import xtts_config
        from TTS.tts.models import xtts
    except ImportError as err:
        hint = ""
        if "torchaudio" in str(err) or ".so" in str(err):
            hint = "; next to CPU torch run: python -m demod_voice.fixups torchaudio-cpu"
        raise DependencyError(f"XTTS needs coqui-tts, torch, torchaudio and torchcodec ({err}); "
                              f"install them with: pip install -c constraints.txt 'demod-voice[xtts]'{hint}") from None
    return torch, xtts, xtts_config


# The weight initialisers that draw random numbers (torch.nn.init's, transformers' wrappers of them,
# and the tensor methods they end in); matched by name because transformers swaps its own in.
RANDOM_INIT = frozenset({"normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                         "xavier_normal_", "trunc_normal_", "orthogonal_"})


def skip_random_init(torch: Any) -> Any:
    """A context in which building a model leaves its weights uninitialised instead of random.

    coqui's ``load_checkpoint`` builds the GPT twice (once in ``Xtts()``, again after the tokenizer
    is read) and each build fills ~400M weights with random numbers that the checkpoint then
    overwrites: 5.5 s of an 11 s load of XTTS-v2 on 2 CPU cores. This is only sound where every
    weight is then loaded; coqui loads with ``strict=True``, which fails on any missing key.
    """
    from torch.overrides import TorchFunctionMode

    class SkipRandomInit(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") in RANDOM_INIT:
                return args[0] if args else kwargs["tensor"]
            return func(*args, **kwargs)

    return SkipRandomInit()


def map_checkpoint(model: Any, torch: Any) -> None:
    """Make coqui's ``load_checkpoint`` map model.pth into memory instead of copying it twice.

    coqui reads every tensor out of the file and then copies it into the model's own tensors
    (3 s for XTTS-v2 on 2 CPU cores). Mapped (``torch.load(mmap=True)``, still ``weights_only``:
    tensors only, no code) and assigned, the weights are the file's pages: load takes 0.25 s, the
    pages come from the page cache as inference first touches them, and workers that load the
    same model share them. A file that cannot be mapped (the pre-1.6 torch format, or coqui's
    old checkpoints holding a config object) goes through coqui's own reader; a tensor whose
    dtype differs from the model's is copied and converted as coqui would.
    """
    import functools

    read_copy, load_state = model._load_checkpoint, model.load_state_dict

    def read_mapped(path: Any) -> dict:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)["model"]
        except Exception:  # noqa: BLE001 - any reason it cannot be mapped: coqui's reader decides
            log.debug("model.pth cannot be mapped; reading it with coqui's loader")
            return read_copy(path)

    def assign_state(state: dict, *args: Any, **kwargs: Any) -> Any:
        own = model.state_dict()
        same = all(key not in own or tensor.dtype == own[key].dtype for key, tensor in state.items())
        return load_state(state, *args, assign=same, **kwargs)

    model._load_checkpoint = read_mapped
    model.load_state_dict = functools.wraps(load_state)(assign_state)


def download_released(name: str, cache: Path) -> None:
    """Fetch a released model through coqui's model manager (the parent checked the licence was accepted)."""
    from TTS.utils.manage import ModelManager

    os.environ["COQUI_TOS_AGREED"] = "1"  # this worker only; never prompts on stdin
    log.warning("downloading %s into %s (about 1.9 GB, once)", name, cache / "coqui")
    try:
        ModelManager(output_prefix=cache / "coqui", progress_bar=True).download_model(name)
    except Exception as err:  # noqa: BLE001 - network and hub failures come in many types
        raise RuntimeFailure(f"could not download {name} ({type(err).__name__}: {err}); if offline, put config.json, "
                             f"model.pth and vocab.json in a folder and pass --model-dir") from None
