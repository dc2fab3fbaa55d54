"""OpenAI's speech API: ``POST /v1/audio/speech``, ``GET /v1/models``, ``GET /v1/audio/voices``.

A request becomes one job on the engine; the handler only awaits the job's handle, encodes
chunks as they come and streams them (``stream_format: audio``: the container's bytes;
``sse``: ``speech.audio.delta`` events with base64 audio, then ``speech.audio.done``).
Headers are sent once the first audio exists, so a request that fails before any audio gets
a real status code; one that fails later ends its stream early (SSE: an ``error`` event).
A client that goes away cancels its job, which frees its worker.

``instructions`` (OpenAI's style prompt for its gpt-4o voices) is accepted; a speaking pace it asks
for ("slowly", "quickly") becomes the rate and pauses it asks for silence after each sentence; the
rest is ignored and logged (Piper and XTTS take no prompt). ``input`` may be SSML (``<speak>...``); ``normalize`` and ``lexicon`` say how it is read
(docs/pronunciation.md).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, Optional, Union

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from demod_voice.audio.encode import StreamEncoder, media_type
from demod_voice.engine.handles import Priority
from demod_voice.errors import DemodVoiceError, QueueFull
from demod_voice.serve.errors import ApiError, from_engine
from demod_voice.serve.http.deps import Context, Speaker, require
from demod_voice.serve.http.streaming import CutAtDeadline, StreamBroken, client_gone
from demod_voice.serve.lexicons import reading_for
from demod_voice.serve.limits import check_input, deadline_error, queue_full
from demod_voice.serve.voices import UnknownVoice, list_models, list_voices, refuse_if_enrolling, resolve_voice
from demod_voice.speech_text.markdown import unmarked
from demod_voice.speech_text.ssml import is_ssml

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require("speak"))])

OTHER_NAMES = {
    "input": ("text", "prompt"),
    "voice": ("voice_id", "voiceId", "voice_name", "speaker", "speaker_id"),
    "response_format": ("format", "output_format", "outputFormat", "audio_format", "responseFormat"),
    "model": ("model_id", "modelId"),
    "speed": ("rate", "speaking_rate"),
}
"""Names other speech APIs (and their SDKs) give OpenAI's fields. Unknown fields are ignored, as other clients send
their own; but one of these sent without the field it stands for is a mistake: ``voice_id`` spoke with the default
voice and ``format: wav`` answered mp3, both 200, and the app played the wrong thing."""
MISNAMED = "misnamed_field"
"""The pydantic error type of such a field (:func:`demod_voice.serve.http.app` words it as its message alone)."""


class SpeechRequest(BaseModel):
    """OpenAI's ``CreateSpeechRequest``."""
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _other_names(cls, data: Any) -> Any:
        """400 for a field named as another API names it (:data:`OTHER_NAMES`) when the field itself is missing. A
        ``null`` optional field is one not sent, as OpenAI takes it (typed clients send ``"speed": null`` for a rate
        left unset; it was a 400)."""
        if isinstance(data, dict):
            data = {name: value for name, value in data.items() if value is not None or name == "input"}
            for field, others in OTHER_NAMES.items():
                sent = next((name for name in others if name in data), None)
                if sent is not None and field not in data:
                    raise PydanticCustomError(MISNAMED, "'{sent}' is not a field of this API: send it as '{field}' "
                                                        "(OpenAI's speech fields: model, input, voice, response_format, speed)",
                                              {"sent": sent, "field": field})
        return data

    model: str = Field("tts-1", description="A Piper voice, or tts-1 / tts-1-hd / gpt-4o-mini-tts / xtts (the voice decides)")
    input: str = Field(..., description="Text to speak (serve.limits.max_input_chars at most)")
    voice: Union[StrictStr, StrictInt, dict] = Field("", description="A voice id (GET /v1/audio/voices), a speaker of the Piper "
                                                                     "voice in model (a name or a number), or {\"id\": ...}")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate, 0.25 to 4 (1: the voice's own)")
    instructions: Optional[str] = Field(None, description="OpenAI's style prompt: a pace it asks for (slowly, quickly) sets "
                                                          "the rate, pauses it asks for become silence after each sentence; the rest "
                                                          "is ignored (Piper and XTTS take no prompt)")
    stream_format: Literal["audio", "sse"] = "audio"
    language: Optional[str] = Field(None, max_length=40, description="Not OpenAI's: the language a cloned voice speaks the text "
                                    "in (es, pt-BR, ...; by default the one it was enrolled with); a Piper voice speaks its own")
    normalize: bool = Field(True, description="Spell out numbers, money, dates, abbreviations, URLs (false: leave them to the engine)")
    lexicon: Optional[Union[dict, list, str]] = Field(None, description="This request's own pronunciations: {WORD: PHONEMES or "
                                                      "{phonemes, say, match_case}}, a list of entries, TSV text, or a stored lexicon's name "
                                                      "(one this key may read: GET /v1/lexicons)")


def voice_id(voice: Union[str, int, dict]) -> str:
    """OpenAI lets ``voice`` be a string or ``{"id": ...}``; a speaker of a multi-speaker voice may be a number."""
    if isinstance(voice, dict):
        if not isinstance(voice.get("id"), (str, int)) or isinstance(voice.get("id"), bool) or not str(voice["id"]).strip():
            # {"name": "alice"} spoke with the default voice, 200: the client meant a voice and got another
            raise ApiError(400, "'voice' as an object needs its 'id': {\"id\": \"alice\"} (GET /v1/audio/voices lists them)",
                           code="bad_voice")
        return str(voice["id"])
    return str(voice)


@router.post("/v1/audio/speech")
async def speech(body: SpeechRequest, request: Request, ctx: Context, caller: Speaker) -> StreamingResponse:
    """Speak ``input``; the audio streams as it is made."""
    if ctx.draining.is_set():
        raise ApiError(503, "the server is shutting down; retry on another instance", "server_error", "shutting_down")
    check_input(body.input, ctx.settings.limits)
    started = time.perf_counter()
    try:
        choice = resolve_voice(ctx, body.model, voice_id(body.voice), (body.language or "").strip() or None)
        choice = dataclasses.replace(choice, reading=reading_for(ctx, choice.voice_id, caller, body.normalize, body.lexicon,
                                                                 body.instructions))
        # an app reading a chat model's reply aloud: its **bold** was read "asterisk asterisk" (normalize false: as sent)
        text = body.input if not body.normalize or is_ssml(body.input) else unmarked(body.input)
        job = choice.job(text, body.speed, label=f"speech {choice.voice_id}")
        handle = ctx.engine.submit(job, priority=Priority.INTERACTIVE, bounded=True)
    except QueueFull as err:
        raise queue_full(err) from None
    except DemodVoiceError as err:
        if type(err) is UnknownVoice:
            refuse_if_enrolling(ctx, voice_id(body.voice))
        raise from_engine(err) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.limits.deadline_seconds
    stream = handle.stream()
    first = await _first_chunk(ctx, request, handle, stream, deadline)
    encoder = StreamEncoder(body.response_format, first.sample_rate if first else choice.sample_rate)
    run = _Run(ctx, handle, choice.kind, started, deadline, len(body.input))
    body_iter = run.sse(encoder, first, stream) if body.stream_format == "sse" else run.audio(encoder, first, stream)
    kind = "text/event-stream" if body.stream_format == "sse" else media_type(body.response_format)
    headers = {"X-Sample-Rate": str(encoder.output_rate), "Cache-Control": "no-store"}
    return CutAtDeadline(body_iter, deadline, run.cut, media_type=kind, headers=headers)


async def _first_chunk(ctx: Any, request: Request, handle: Any, stream: AsyncIterator[Any], deadline: float) -> Any:
    """The job's first chunk (``None`` if it made none), while watching for the client leaving and the deadline."""
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(stream.__anext__())
    first.add_done_callback(_retrieved)  # however it ends (a cancelled job raises in it), nobody else may look
    gone = asyncio.ensure_future(client_gone(request))
    try:
        done, _ = await asyncio.wait({first, gone}, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        handle.cancel()
        first.cancel()
        raise
    finally:
        gone.cancel()
    if first not in done:
        handle.cancel()
        first.cancel()
        if gone in done:
            ctx.metrics.cancelled.labels("client_gone").inc()
            raise ApiError(499, "the client went away", code="client_closed")
        ctx.metrics.cancelled.labels("deadline").inc()
        raise deadline_error(ctx.settings.limits.deadline_seconds)
    try:
        return first.result()
    except StopAsyncIteration:
        return None
    except DemodVoiceError as err:
        raise from_engine(err) from None


def _retrieved(future: asyncio.Future) -> None:
    """Mark a future's exception as seen (asyncio would log "Task exception was never retrieved" with a traceback)."""
    if not future.cancelled():
        future.exception()


class _Run:
    """One speech response being streamed."""
    def __init__(self, ctx: Any, handle: Any, kind: str, started: float, deadline: float, characters: int) -> None:
        self.ctx = ctx
        self.handle = handle
        self.kind = kind
        self.started = started
        self.deadline = deadline
        self.characters = characters
        self.was_cut = False

    def cut(self) -> None:
        """The deadline passed while the client was not reading: cancel the job (freeing its worker)."""
        log.warning("speech stream cut at its deadline (serve.limits.deadline_seconds): the client did not read its audio")
        self._ended_by_deadline()

    def _ended_by_deadline(self) -> None:
        """Count the cancellation once, as the deadline's (not also as the client's leaving), and free the worker."""
        if not self.was_cut:
            self.was_cut = True
            self.ctx.metrics.cancelled.labels("deadline").inc()
        self.handle.cancel()

    async def _chunks(self, first: Any, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The first chunk and the rest, each awaited within the deadline."""
        if first is None:
            return
        yield first
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(0.0, self.deadline - loop.time()))
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                self._ended_by_deadline()
                raise deadline_error(self.ctx.settings.limits.deadline_seconds) from None
            yield chunk

    async def audio(self, encoder: StreamEncoder, first: Any, stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
        """The container's bytes as they are made."""
        try:
            async for chunk in self._chunks(first, stream):
                data = await _encode(encoder, chunk.samples)
                if data:
                    yield data
            yield await _encode(encoder, None)
            self._finished()
        except (DemodVoiceError, ApiError) as err:
            # Headers are gone: the answer ends broken (no last chunk: the client sees a cut transfer, not a short file
            # taken for a whole one), and the log says why.
            log.warning("speech stream ended early: %s", err)
            raise StreamBroken(str(err)) from None
        finally:
            self._release()

    async def sse(self, encoder: StreamEncoder, first: Any, stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
        """``speech.audio.delta`` events carrying base64 audio, then ``speech.audio.done``."""
        try:
            async for chunk in self._chunks(first, stream):
                data = await _encode(encoder, chunk.samples)
                if data:
                    yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
            tail = await _encode(encoder, None)
            if tail:
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(tail).decode("ascii")})
            seconds = encoder.frames / encoder.sample_rate
            usage = {"input_tokens": self.characters, "output_tokens": 0, "total_tokens": self.characters}
            yield _event({"type": "speech.audio.done", "usage": usage, "audio_seconds": round(seconds, 3)})
            self._finished()
        except (DemodVoiceError, ApiError) as err:
            problem = err if isinstance(err, ApiError) else from_engine(err)
            yield _event({"type": "error", "error": problem.body()["error"]})
        finally:
            self._release()

    def _finished(self) -> None:
        result = self.handle.result(timeout=5)
        first = result.first_chunk_seconds if result.first_chunk_seconds is not None else time.perf_counter() - self.started
        self.ctx.metrics.finished(self.kind, first, result.seconds, result.audio_seconds)

    def _release(self) -> None:
        if not self.handle.done() and not self.was_cut:
            # The client went away (or the deadline passed): the job stops and its worker is freed.
            self.ctx.metrics.cancelled.labels("client_gone").inc()
            self.handle.cancel()


async def _encode(encoder: StreamEncoder, samples: Any) -> bytes:
    """Feed (or, with ``None``, close) the encoder. Codecs run on a thread: an opus second costs tens of
    milliseconds, which on the event loop would delay every other client's audio."""
    work = encoder.close if samples is None else functools.partial(encoder.feed, samples)
    if encoder.format == "wav" or (encoder.format == "pcm" and encoder.output_rate == encoder.sample_rate):
        return work()
    return await asyncio.to_thread(work)


def _event(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


@router.get("/v1/models")
async def models(ctx: Context) -> dict:
    """Model ids a speech request may name."""
    created = int(ctx.started)
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "demod-voice"}
                                       for name in list_models(ctx)]}


@router.get("/v1/models/{model_id}")
async def model(model_id: str, ctx: Context) -> dict:
    """One model, as OpenAI's ``models.retrieve`` asks for it (an app checking its model before speaking)."""
    if model_id not in list_models(ctx):
        raise ApiError(404, f"there is no model '{model_id[:80]}' (GET /v1/models lists them)", code="unknown_model")
    return {"id": model_id, "object": "model", "created": int(ctx.started), "owned_by": "demod-voice"}


@router.get("/v1/audio/models")
async def audio_models(ctx: Context) -> dict:
    """Speech models in the shape Open WebUI reads from a custom OpenAI endpoint: ``{"models": [{"id"}]}``."""
    return {"models": [{"id": name, "name": name} for name in list_models(ctx)]}


@router.get("/v1/audio/voices")
async def audio_voices(ctx: Context) -> dict:
    """Voices in the shape Open WebUI reads: ``{"voices": [{"id", "name"}]}``."""
    voices = list_voices(ctx)
    return {"voices": [{"id": v.id, "name": v.name, "kind": v.kind, "language": v.language, "speakers": list(v.speakers)}
                       for v in voices]}
