"""Voice conversion over HTTP: ``POST /v1/audio/conversions``.

Multipart: ``file`` (the source recording, any format FFmpeg reads), and the target as ``voice``
(an enrolled voice's id) or ``references`` (one or more recordings); ``response_format`` (wav,
mp3, opus, aac, flac, pcm; default wav). Uploads get what enrollment's get: the same size limits,
decoding in a child process, the same length limit (``serve.limits.max_reference_seconds``) and
the same scope (``enroll``: a conversion clones a voice). The answer streams as the converter
makes it; a long source is converted in windows (``convert.window_seconds``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from demod_voice.audio.encode import FORMATS, StreamEncoder, media_type
from demod_voice.backends import registry
from demod_voice.engine.handles import Priority
from demod_voice.errors import DemodVoiceError, QueueFull
from demod_voice.serve.errors import ApiError, from_engine
from demod_voice.serve.http.deps import Context, require
from demod_voice.serve.http.streaming import CutAtDeadline, StreamBroken, client_gone
from demod_voice.serve.limits import check_voice_id, deadline_error, queue_full
from demod_voice.serve.uploads import decode_uploads, read_form
from demod_voice.serve.voices import load_profile, scope
from demod_voice.voices.profiles import REENROLL_HTTP, reenroll_advice

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require("enroll"))])

SOURCE_FIELDS = ("file", "source")
REFERENCE_FIELDS = ("references", "reference", "references[]")
MAX_REFERENCES = 8


@router.post("/v1/audio/conversions")
async def convert(request: Request, ctx: Context) -> StreamingResponse:
    """Re-speak the uploaded source in the target voice; the audio streams as it is converted."""
    if ctx.draining.is_set():
        raise ApiError(503, "the server is shutting down; retry on another instance", "server_error", "shutting_down")
    form = await read_form(request, ctx.settings.limits, MAX_REFERENCES + 2, SOURCE_FIELDS + REFERENCE_FIELDS)
    fmt, source, references, voice = _parts(form)
    if voice:
        _profile(ctx, voice)  # 404 for an unknown voice, before any upload is decoded
    work = Path(tempfile.mkdtemp(dir=ctx.data_dir, prefix="convert-"))
    try:
        wavs = [wav for wav, _ in await decode_uploads([source, *references], work, ctx.settings.limits, shared=False, sources=1)]
        converter = registry.converter()
        with reenroll_advice(REENROLL_HTTP):  # to_thread runs the check with this task's context, advice included
            job = (await asyncio.to_thread(converter.conversion_jobs, scope(ctx), [str(wavs[0])], ["-"], [str(p) for p in wavs[1:]],
                                           voice or None))[0]
        handle = ctx.engine.submit(job, priority=Priority.INTERACTIVE, bounded=True)
    except QueueFull as err:
        shutil.rmtree(work, ignore_errors=True)
        raise queue_full(err) from None
    except DemodVoiceError as err:
        shutil.rmtree(work, ignore_errors=True)
        problem = from_engine(err)  # its words for a client: a missing converter named the server's folders
        raise ApiError(problem.status, _without(str(problem), work), problem.kind, problem.code) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    encoders: list[StreamEncoder] = []
    deadline = asyncio.get_running_loop().time() + ctx.settings.limits.deadline_seconds
    body = _stream(ctx, handle, fmt, encoders, work, deadline)
    try:
        first = await _first_audio(ctx, request, body)  # errors before any audio are still a status code
    except BaseException:
        await body.aclose()
        raise
    return CutAtDeadline(_prepend(first, body), deadline, functools.partial(_cut, handle), media_type=media_type(fmt),
                         headers={"X-Sample-Rate": str(encoders[0].output_rate), "Cache-Control": "no-store"})


async def _first_audio(ctx: Any, request: Request, body: AsyncIterator[bytes]) -> bytes:
    """The answer's first bytes, unless the client leaves first: its conversion is then cancelled (``body``'s own
    ``finally``), not left to run to the deadline on the one converter while nobody waits for it."""
    first = asyncio.ensure_future(body.__anext__())
    gone = asyncio.ensure_future(client_gone(request))
    try:
        await asyncio.wait({first, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not first.done():
            first.cancel()
            await asyncio.wait({first})  # the body's cleanup (job cancelled, upload removed) has run
    if first.cancelled():
        ctx.metrics.cancelled.labels("client_gone").inc()
        raise ApiError(499, "the client went away", code="client_closed")
    return first.result()


def _cut(handle: Any) -> None:
    """A conversion's answer reached its deadline while its client did not read: its job is cancelled."""
    log.warning("conversion stream cut at its deadline (serve.limits.deadline_seconds): the client did not read its audio")
    handle.cancel()


def _parts(form: Any) -> tuple[str, Any, list, str]:
    """(response format, the source upload, reference uploads, voice id) from the form, or the 4xx saying what is wrong."""
    fmt = str(form.get("response_format") or "wav")
    if fmt not in FORMATS:
        raise ApiError(400, f"unknown response_format '{fmt[:20]}'; use one of {', '.join(FORMATS)}", code="bad_format")
    source = next((form[f] for f in SOURCE_FIELDS if f in form and hasattr(form[f], "read")), None)
    if source is None:
        raise ApiError(400, "send the recording to convert as the multipart field 'file'", code="missing_file")
    references = [item for field in REFERENCE_FIELDS for item in form.getlist(field) if hasattr(item, "read")]
    voice = str(form.get("voice") or "")
    if bool(voice) == bool(references):
        raise ApiError(400, "say which voice to convert into: the field 'voice' (an enrolled voice's id) or 'references' "
                            "(recordings), one of the two", code="missing_voice")
    if len(references) > MAX_REFERENCES:
        raise ApiError(413, f"at most {MAX_REFERENCES} reference files per conversion", code="too_many_files")
    return fmt, source, references, voice


def _profile(ctx: Any, voice: str) -> Any:
    profile = load_profile(ctx, check_voice_id(voice))
    if profile is None:
        raise ApiError(404, f"there is no voice '{voice}' (GET /v1/voices lists them)", code="unknown_voice")
    return profile


async def _stream(ctx: Any, handle: Any, fmt: str, encoders: list, work: Path, deadline: float) -> AsyncIterator[bytes]:
    """The encoded audio; the first item comes once the first chunk is made (an error before it raises). The encoder
    is made for the first chunk's rate (the converter's) and appended to ``encoders`` for the caller's headers."""
    loop = asyncio.get_running_loop()
    stream = handle.stream()
    started = False
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise deadline_error(ctx.settings.limits.deadline_seconds) from None
            except DemodVoiceError as err:
                raise from_engine(err) from None
            if not encoders:
                encoders.append(StreamEncoder(fmt, chunk.sample_rate))
            encoder = encoders[0]
            data = await asyncio.to_thread(functools.partial(encoder.feed, chunk.samples))
            started = True
            yield data
        if not encoders:
            raise ApiError(500, "the conversion made no audio", "server_error", "no_audio")
        yield await asyncio.to_thread(encoders[0].close)
    except ApiError as err:
        if not started:
            raise
        log.warning("conversion stream ended early: %s", err)  # headers are gone: the answer ends broken (streaming.py)
        raise StreamBroken(str(err)) from None
    finally:
        if not handle.done():
            handle.cancel()
        shutil.rmtree(work, ignore_errors=True)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for data in rest:
        yield data


def _without(message: str, work: Path) -> str:
    """A message with the server's temporary folder taken out (the decoded files' names stay)."""
    return message.replace(str(work) + "/", "").replace(str(work), "the upload")
