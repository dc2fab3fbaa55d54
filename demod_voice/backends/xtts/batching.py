"""Several XTTS sentences generated together: the GPT reads its weights once per step for all of them.

coqui's ``Xtts.inference`` speaks one sentence at a time, so every audio token is a set of
matrix-vector products that read the whole GPT (~1.5 GB of fp32 XTTS-v2 weights) for one row.
On a CPU that is memory-bound: measured on 2 cores, one 1024x4096 product costs 0.86 ms for one
row, 2.5 ms for 4, 3.0 ms for 16 (``bench/xtts_clone.py`` gives the whole-command effect).
Here the sentences' prompts (voice latent, then text) are left-padded to one length with an
attention mask, so each row's audio tokens start at the same step and carry the same positions
as when the sentence is generated alone (the GPT has no absolute positions of its own;
mel positions count from the start-of-audio token). Sampling, the repetition penalty and the
stop token work per row in ``transformers``' ``generate``. Each sentence's latents (the GPT's outputs
as it generated, which coqui's ``Xtts.inference`` works out again in one more forward over prompt and
codes) then go through the same speed change and HiFi-GAN decoder, one at a time (they are
compute-bound already). With greedy decoding the audio equals coqui's sentence by sentence (a test
checks it); with sampling it is drawn from the same distribution.

A prompt is the voice latent's 32 rows, then the text's ~15. The GPT's keys and values over a voice's rows are the
same in every sentence in that voice, so they are worked out once per voice and kept (:func:`_voice_cache`, the
:data:`VOICES_KEPT` voices used last); a sentence's first forward runs its text rows and the start token only, its
voice's rows standing in the cache before its padding (:func:`_prefixed`). Full XTTS-v2 shapes, 2 cores: the first
forward 0.20 s instead of 0.33 s for one row, 0.71 s instead of 1.24 s for 4 (``bench/xtts_profile.py``).

:func:`generate_stream` does the same for streamed requests: the batch's GPT steps go on as one,
and each row's audio comes out as ``Xtts.inference_stream`` makes it alone, every
``chunk_tokens`` of its tokens (the HiFi-GAN decoder over the row's latents so far, cross-faded
with the last chunk), tagged with its row, so several requests share the GPT's steps and each
still hears its first audio after its first ``chunk_tokens`` tokens.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from demod_voice.errors import InputError


def sentence_groups(lengths: Sequence[int], most: int) -> list[list[int]]:
    """Indices of the sentences, in groups of at most ``most`` and of near-equal size, similar lengths together.

    A group runs until its longest sentence is done, so sentences of similar length share one;
    ``[5, 40, 6, 38]`` with ``most=2`` gives ``[[0, 2], [3, 1]]``.
    """
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    count = -(-len(order) // max(1, most))
    bounds = [len(order) * k // count for k in range(count + 1)]
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def generate(model: Any, texts: Sequence[str], language: Union[str, Sequence[str]], gpt_latent: Any, speaker: Any, *,
             speed: float = 1.0, **sampling: Any) -> list[Any]:
    """Waveforms (float32 numpy, 24 kHz) of ``texts``, generated as one batch.

    ``language``, ``gpt_latent`` and ``speaker`` are one value for all texts, or a sequence with
    one per text: sentences of different requests in different voices share a batch, each row
    conditioned on its own voice. ``sampling`` holds ``generate``'s keywords as ``Xtts.inference``
    takes them (temperature, top_k, top_p, repetition_penalty, length_penalty, do_sample, max_new_tokens, ...).
    """
    import torch

    gpt = model.gpt
    speakers, inputs, keywords = _started(model, texts, language, gpt_latent, speaker, sampling)
    # The GPT's output at each step's input (the start token, then every code but the last) is the latent the
    # HiFi-GAN decodes: coqui's inference runs the GPT once more over prompt and codes for them (its "latent pass",
    # the same sums in one forward), its inference_stream keeps them as they come, as this does.
    states: list[Any] = []
    hook = gpt.gpt_inference.transformer.register_forward_hook(lambda module, args, out: states.append(out[0][:, -1]))
    try:
        codes = gpt.gpt_inference.generate(inputs, **keywords)[:, inputs.shape[-1]:]
    finally:
        hook.remove()
    if len(states) != codes.shape[-1]:
        raise RuntimeError(f"the GPT ran {len(states)} steps for {codes.shape[-1]} codes")
    hidden = gpt.final_norm(torch.stack(states, dim=1))
    return [_decode(model, hidden[index: index + 1, : _until_stop(row, gpt.stop_audio_token).shape[-1]], spk, speed)
            for index, (row, spk) in enumerate(zip(codes, speakers, strict=True))]


def _started(model: Any, texts: Sequence[str], language: Union[str, Sequence[str]], gpt_latent: Any, speaker: Any,
             sampling: dict[str, Any]) -> tuple[list[Any], Any, dict[str, Any]]:
    """A batch made ready for the GPT, as :func:`generate` and :func:`generate_stream` both start one: each row's
    speaker; the left-padded prompts stored as the GPT's prefix (their voice rows in the cache the keywords carry);
    the start inputs; and the keywords of coqui's ``generate`` (with ``sampling`` over its defaults)."""
    import torch

    gpt = model.gpt
    languages = _per_row(language, len(texts), str)
    latents = _per_row(gpt_latent, len(texts), torch.Tensor)
    speakers = _per_row(speaker, len(texts), torch.Tensor)
    tokens = [_text_tokens(model, text, lang) for text, lang in zip(texts, languages, strict=True)]
    inference = _prefixed(gpt.gpt_inference)
    voices = len({latent.shape for latent in latents}) == 1  # XTTS's latents are all 32 rows: always, in practice
    prompt, mask = _prompts(gpt, None if voices else latents, tokens)
    inference.store_prefix_emb(prompt)
    inputs = torch.ones(mask.shape, dtype=torch.long, device=mask.device)
    inputs[:, -1] = gpt.start_audio_token
    keywords = {"attention_mask": mask, "bos_token_id": gpt.start_audio_token, "pad_token_id": gpt.stop_audio_token,
                "eos_token_id": gpt.stop_audio_token, "max_length": gpt.max_gen_mel_tokens + inputs.shape[-1],
                "num_return_sequences": 1, "output_attentions": False, "do_sample": True, "num_beams": 1, **sampling}
    if voices:
        # each row's voice rows come from the keys and values kept for its voice; they stand before the row's padding,
        # which the mask hides whatever its place (the GPT has no positions of its own)
        keywords["past_key_values"] = _voice_cache(inference, latents)
        inference.voice_rows = latents[0].shape[1]
        keywords["attention_mask"] = torch.cat([mask.new_ones(mask.shape[0], inference.voice_rows), mask], dim=1)
    return speakers, inputs, keywords


VOICES_KEPT = 8
"""Voices whose part of the GPT's prompt a model keeps worked out (:func:`_voice_cache`): ~7.9 MB each at XTTS-v2's
shapes (30 layers' keys and values over the voice's 32 latent rows)."""


def _prefixed(inference: Any) -> Any:
    """coqui's ``GPT2InferenceModel`` made able to start from the keys and values of the voice rows of its prompt
    (the class of the model changed in place, once; it behaves as coqui's until :func:`_started` says otherwise)."""
    cls = _prefixed_class()
    if not isinstance(inference, cls):
        inference.__class__ = cls
        inference.voices = OrderedDict()
    return inference


@functools.cache
def _prefixed_class() -> type:
    from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions
    from TTS.tts.layers.xtts.gpt_inference import GPT2InferenceModel

    class PrefixedInference(GPT2InferenceModel):
        """``voice_rows`` > 0: the prompt stored is the text part alone, and the voice's rows are in the cache the
        generation starts from, so the first step runs the text rows and the start token only (a third of a
        sentence's prompt rows). Mel positions count from the start token, as in coqui's."""

        voice_rows = 0

        def store_prefix_emb(self, prefix_emb: Any) -> None:
            self.voice_rows = 0  # coqui's own calls store the whole prompt
            super().store_prefix_emb(prefix_emb)

        def forward(self, input_ids: Any = None, past_key_values: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
            if not self.voice_rows:
                return super().forward(input_ids=input_ids, past_key_values=past_key_values, attention_mask=attention_mask, **kwargs)
            import torch

            text = self.cached_prefix_emb
            if input_ids.shape[1] != 1:  # the first step: the stored text rows, then the start-of-audio token
                start = self.embeddings(input_ids[:, text.shape[1]:])
                emb = torch.cat([text.to(start.dtype), start + self.pos_embedding(start)], dim=1)
            else:
                step = past_key_values.get_seq_length() - self.voice_rows - text.shape[1]
                emb = self.embeddings(input_ids) + self.pos_embedding.get_fixed_embedding(step, input_ids.device)
            out = self.transformer(inputs_embeds=emb, past_key_values=past_key_values, attention_mask=attention_mask,
                                   position_ids=kwargs.get("position_ids"), use_cache=kwargs.get("use_cache"),
                                   output_hidden_states=kwargs.get("output_hidden_states"), return_dict=True)
            return CausalLMOutputWithCrossAttentions(logits=self.lm_head(out.last_hidden_state), past_key_values=out.past_key_values,
                                                     hidden_states=out.hidden_states)

    return PrefixedInference


def _voice_cache(inference: Any, latents: list[Any]) -> Any:
    """A ``transformers`` cache holding, row by row, the GPT's keys and values over that row's voice latent: worked
    out once per voice (by content) and kept for the :data:`VOICES_KEPT` voices used last."""
    import hashlib

    import torch
    from transformers import DynamicCache

    rows = []
    for latent in latents:
        # by content (each request's latents are new tensors) and by how they were worked out (float16 autocast on CUDA)
        key = (str(latent.device), str(latent.dtype), torch.is_autocast_enabled(latent.device.type),
               hashlib.blake2b(latent.detach().float().cpu().numpy().tobytes(), digest_size=16).digest())
        kept = inference.voices.get(key)
        if kept is None:
            out = inference.transformer(inputs_embeds=latent, use_cache=True, return_dict=True)
            kept = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            inference.voices[key] = kept
            while len(inference.voices) > VOICES_KEPT:
                inference.voices.popitem(last=False)
        inference.voices.move_to_end(key)
        rows.append(kept)
    cache = DynamicCache()
    for layer in range(len(rows[0])):
        cache.update(torch.cat([row[layer][0] for row in rows]), torch.cat([row[layer][1] for row in rows]), layer)
    return cache


def _per_row(value: Any, count: int, single: type) -> list[Any]:
    """One value per row: a single value repeated, or the sequence given (checked for length)."""
    if isinstance(value, single):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{len(values)} values for {count} sentences")
    return values


def _text_tokens(model: Any, text: str, language: str) -> Any:
    import torch

    ids = model.tokenizer.encode(text.strip().lower(), lang=language.split("-")[0])
    if len(ids) >= model.args.gpt_max_text_tokens:
        raise InputError(f"a sentence is {len(ids)} text tokens, XTTS takes fewer than {model.args.gpt_max_text_tokens}; "
                         "split it with punctuation")
    return torch.tensor(ids, dtype=torch.int32, device=model.device).unsqueeze(0)


def _prompts(gpt: Any, latents: Optional[list[Any]], tokens: list[Any]) -> tuple[Any, Any]:
    """Each row's voice latent (none when ``latents`` is ``None``) + start/stop-marked text embeddings, left-padded
    into one batch, and the mask."""
    import torch
    import torch.nn.functional as F

    rows = []
    for index, text_tokens in enumerate(tokens):
        marked = F.pad(F.pad(text_tokens, (0, 1), value=gpt.stop_text_token), (1, 0), value=gpt.start_text_token)
        text = gpt.text_embedding(marked) + gpt.text_pos_embedding(marked)
        rows.append((text if latents is None else torch.cat([latents[index], text], dim=1))[0])
    width = max(len(row) for row in rows)
    prompt = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])
    mask = torch.zeros(len(rows), width + 1, dtype=torch.long, device=prompt.device)  # +1: the start-of-audio token
    for index, row in enumerate(rows):
        prompt[index, width - len(row):] = row
        mask[index, width - len(row):] = 1
    return prompt, mask


def _until_stop(row: Any, stop: int) -> Any:
    """A row's codes up to and including its stop token, as generating it alone returns them
    (in a batch, rows that stopped early are filled with the stop token)."""
    stops = (row == stop).nonzero()
    return (row[: int(stops[0]) + 1] if len(stops) else row).unsqueeze(0)


def _decode(model: Any, latents: Any, speaker: Any, speed: float) -> Any:
    """The speed change and HiFi-GAN decoder of ``Xtts.inference`` for one sentence's latents ``[1, codes, dim]``."""
    import numpy as np
    import torch.nn.functional as F

    length_scale = 1.0 / max(speed, 0.05)
    if length_scale != 1.0:
        latents = F.interpolate(latents.transpose(1, 2), scale_factor=length_scale, mode="linear").transpose(1, 2)
    wav = model.hifigan_decoder(latents, g=speaker)
    return np.asarray(wav.float().cpu(), dtype=np.float32).reshape(-1)


@dataclass
class _Row:
    """One row of a streamed batch: its latents so far and the state of coqui's chunk cross-fade."""

    speaker: Any
    due: int
    """The count of tokens at which the row's next piece is decoded."""
    latents: list = field(default_factory=list)
    made: int = 0
    """Samples of the sentence's waveform so far (the length of coqui's ``wav_gen_prev``; 0: none yet)."""
    overlap: Any = None
    done: bool = False


def generate_stream(model: Any, texts: Sequence[str], language: Union[str, Sequence[str]], gpt_latent: Any, speaker: Any, *,
                    speed: float = 1.0, chunk_tokens: int = 20, overlap: int = 1024,
                    first_tokens: Optional[Sequence[int]] = None, **sampling: Any) -> Iterator[tuple[int, Optional[Any]]]:
    """``(row, waveform piece)`` as each row's audio is made, ``(row, None)`` once a row is complete.

    Arguments as :func:`generate`; ``chunk_tokens`` and ``overlap`` as ``inference_stream``'s
    ``stream_chunk_size`` and ``overlap_wav_len``. A row's pieces are those ``inference_stream``
    gives for its sentence alone (greedy, or with a rule of the row's own tokens: equal to float
    rounding; a test checks it). ``first_tokens``: per row, where its first piece is cut when that
    is before ``chunk_tokens`` (:func:`first_chunks`); its later pieces are cut where they are
    alone, at each multiple of ``chunk_tokens``, so only the first piece is split in two.
    """
    gpt = model.gpt
    speakers, inputs, keywords = _started(model, texts, language, gpt_latent, speaker, sampling)
    firsts = first_tokens or [chunk_tokens] * len(speakers)
    rows = [_Row(spk, due=max(1, min(first, chunk_tokens))) for spk, first in zip(speakers, firsts, strict=True)]
    steps = gpt.gpt_inference.generate_stream(inputs, output_hidden_states=True, return_dict_in_generate=True, **keywords)
    decode = _StreamDecoder(model, speed, overlap)
    for codes, hidden in steps:
        active = [index for index, row in enumerate(rows) if not row.done]
        for index in active:
            rows[index].latents.append(hidden[index: index + 1])
        due = [(i, rows[i]) for i in active if len(rows[i].latents) >= rows[i].due]
        for _, row in due:
            row.due = (len(row.latents) // chunk_tokens + 1) * chunk_tokens
        yield from decode.pieces(due, final=False)
        yield from decode.pieces([(i, rows[i]) for i in active if int(codes[i]) == gpt.stop_audio_token], final=True)
    # rows that reached the most tokens without a stop
    yield from decode.pieces([(index, row) for index, row in enumerate(rows) if not row.done], final=True)


FIRST_PIECE_LEAST = 4
"""The fewest tokens a batch's first pieces are cut at (~0.17 s of audio, ~0.13 s sent before the cross-fade)."""


def first_chunks(rows: int, chunk_tokens: int) -> int:
    """Where the first piece of a stream's first sentence is cut when ``rows`` sentences go through the GPT together.

    Due rows are decoded one after another (the HiFi-GAN is compute-bound: :class:`_StreamDecoder`), so with
    every row's first piece at ``chunk_tokens`` the last of n rows heard its first audio after n first-piece
    decodes, and after the n rows' steps, where alone it waits for one row's. Cut at ``chunk_tokens / n``, the n
    first decodes together cost about one lone first decode, and the steps before them are fewer: the first
    audio of each of them stays near what it gets alone. Only the first piece is split: later cuts are alone's.
    """
    return max(min(FIRST_PIECE_LEAST, chunk_tokens), -(-chunk_tokens // max(1, rows)))


class _StreamDecoder:
    """``Xtts.inference_stream``'s decoding of rows' latents so far, one row at a time, the HiFi-GAN over the
    new frames only.

    coqui decodes *all* of a sentence's latents at every chunk and keeps the part after what it sent:
    a sentence of n chunks costs 1 + 2 + ... + n chunks' decoding (a 100-token sentence in 20-token chunks,
    15 chunks' worth). The decoder's output at a sample depends only on the input frames within its
    receptive field (:func:`decoder_context`, from its layers), so here the latents so far are upsampled
    as coqui does (cheap, and exactly its frames, ends included) and the HiFi-GAN runs from
    ``decoder_context`` frames before the first sample coqui would keep: the same samples to float rounding,
    each chunk for about its own frames. The cross-fade is coqui's ``handle_chunks`` on those samples.

    The HiFi-GAN decoder is compute-bound: a batch of 4 20-token chunks costs 4.5x the CPU of one
    (one thread; ``bench/xtts_profile.py`` measures it at the worker's threads), so a batch saves
    nothing and made every due row wait for all of them. One at a time, the first due row's piece is out
    after one decode, the k-th after k, and each row's decode is exactly the one it gets alone."""

    def __init__(self, model: Any, speed: float, overlap: int) -> None:
        self.model = model
        self.length_scale = 1.0 / max(speed, 0.05)
        self.overlap = overlap
        generator = model.hifigan_decoder.waveform_decoder
        self.context = decoder_context(generator)
        self.hop = decoder_hop(generator) if self.context is not None else 0

    def pieces(self, due: list[tuple[int, _Row]], final: bool) -> Iterator[tuple[int, Optional[Any]]]:
        """Each due row's next piece (``final``: its last, then ``(row, None)``), each yielded as soon as it is decoded."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        for index, row in due:
            latents = torch.cat(row.latents, dim=0).unsqueeze(0)
            if self.length_scale != 1.0:
                latents = F.interpolate(latents.transpose(1, 2), scale_factor=self.length_scale, mode="linear").transpose(1, 2)
            wav, offset = self._decode(latents, row)
            piece = self._crossfaded(row, wav, offset, final)
            yield index, np.asarray(piece.float().cpu(), dtype=np.float32).reshape(-1)
            if final:
                row.done = True
                row.latents = []
                yield index, None

    def _decode(self, latents: Any, row: _Row) -> tuple[Any, int]:
        """The sentence's waveform so far from a little before the first sample the cross-fade reads, and where that is."""
        hifi = self.model.hifigan_decoder
        if self.context is None or not row.made:
            return hifi(latents, g=row.speaker).squeeze(), 0
        frames = frames_of(hifi, latents)
        first = max(0, (row.made - self.overlap) // self.hop - self.context)
        wav = hifi.waveform_decoder(frames[..., first:], g=row.speaker).squeeze()
        if first * self.hop + wav.shape[-1] != frames.shape[-1] * self.hop:  # not the layout reasoned about: all of it
            return hifi(latents, g=row.speaker).squeeze(), 0
        return wav, first * self.hop

    def _crossfaded(self, row: _Row, wav: Any, offset: int, final: bool) -> Any:
        """coqui's ``handle_chunks`` on the waveform from sample ``offset`` on: the samples after those sent, less
        the overlap; their first ``overlap`` faded in over the last chunk's kept tail (in place, as coqui does);
        the new tail kept for the next chunk (none after the last)."""
        import torch

        length, overlap = offset + wav.shape[-1], self.overlap
        start = row.made - overlap - offset if row.made else 0
        chunk = wav[start: None if final else max(0, wav.shape[-1] - overlap)]
        if row.overlap is not None:
            if overlap > len(chunk):  # a last chunk shorter than the overlap: the rest as it is
                row.made, row.overlap = length, None
                return wav[start:]
            fade_in = chunk[:overlap] * torch.linspace(0.0, 1.0, overlap).to(chunk.device)
            chunk[:overlap] = row.overlap * torch.linspace(1.0, 0.0, overlap).to(row.overlap.device)
            chunk[:overlap] += fade_in
        row.overlap = None if final else wav[max(0, wav.shape[-1] - overlap):]
        row.made = length
        return chunk


def frames_of(hifi: Any, latents: Any) -> Any:
    """The HiFi-GAN's input frames for ``latents``: upsampled to its hop and sample rate as ``HifiDecoder`` does."""
    import torch.nn.functional as F

    frames = F.interpolate(latents.transpose(1, 2), scale_factor=[hifi.ar_mel_length_compression / hifi.output_hop_length],
                           mode="linear").squeeze(1)
    if hifi.output_sample_rate != hifi.input_sample_rate:
        frames = F.interpolate(frames, scale_factor=[hifi.output_sample_rate / hifi.input_sample_rate], mode="linear").squeeze(0)
    return frames


def decoder_hop(generator: Any) -> int:
    """Output samples per input frame of a HiFi-GAN generator: its upsamplings' strides multiplied."""
    hop = 1
    for up in generator.ups:
        hop *= up.stride[0]
    return hop


def decoder_context(generator: Any) -> Optional[int]:
    """At most how many input frames on each side of an output sample a HiFi-GAN generator reads: each
    convolution's reach at the rate it runs, summed along the way; a stage's parallel residual blocks read
    the same input, so the stage reaches as far as its farthest block (upsamplings counted at a whole
    ``ceil(kernel / stride)`` input samples: a little over). ``None`` for a generator not laid out as coqui's
    ``HifiganGenerator``: its chunks are then decoded from the sentence's start, as coqui does."""
    import math

    import torch

    def reach(module: Any) -> int:
        """Samples on either side that ``module``'s 1-D convolutions read, one after another, at its own rate."""
        total = 0
        for conv in module.modules():
            if isinstance(conv, torch.nn.Conv1d):
                if not isinstance(conv.padding, tuple) or conv.stride[0] != 1:
                    raise TypeError("a convolution not padded by numbers, or strided")
                span = (conv.kernel_size[0] - 1) * conv.dilation[0]
                total += max(conv.padding[0], span - conv.padding[0])
        return total

    try:
        blocks, kinds = list(generator.resblocks), int(generator.num_kernels)
        frames, rate = float(reach(generator.conv_pre)), 1
        for stage, up in enumerate(generator.ups):
            if not isinstance(up, torch.nn.ConvTranspose1d) or up.kernel_size[0] - 2 * up.padding[0] != up.stride[0]:
                return None
            frames += math.ceil(up.kernel_size[0] / up.stride[0]) / rate
            rate *= up.stride[0]
            frames += max(reach(block) for block in blocks[stage * kinds:(stage + 1) * kinds]) / rate
        frames += reach(generator.conv_post) / rate
    except (AttributeError, TypeError):
        return None
    return math.ceil(frames) + 1
