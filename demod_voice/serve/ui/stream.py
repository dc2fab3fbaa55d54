"""The web page's audio: a speech job made once, streamed into the page's player and kept for download.

A page action (Speak, Compare, a voice's sample) resolves the voice the way every front door
does (:func:`demod_voice.serve.voices.resolve_voice`, ``VoiceChoice.job``), submits the job to
the server's engine at interactive priority, and gets a token. Its chunks are encoded twice as
they come: MP3 for the player and the chosen format for the download.

Why MP3 for the player: a browser plays an ``<audio src>`` that is still arriving only after
its demuxer has probed ~5 s of it (measured in Chromium: 4-5 s to the first sound for WAV,
MP3, Opus, AAC and FLAC alike), while MP3 appended through Media Source Extensions starts
within ~0.1 s. The page's script fetches ``audio/TOKEN`` and appends what arrives.

``GET audio/TOKEN`` follows the job live (every reader gets every byte from the start, so a
second request for the same element hears the same audio, not a second synthesis);
``audio/TOKEN/download`` waits for the end and returns the file in the chosen format. The
token stands for the key that started the job: a media element cannot send an
``Authorization`` header, and whoever holds the token may only fetch that one result.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Optional

from starlette.responses import StreamingResponse

from demod_voice.audio.encode import StreamEncoder
from demod_voice.engine.handles import Priority
from demod_voice.errors import DemodVoiceError
from demod_voice.serve.errors import client_text, log_for_server
from demod_voice.serve.lexicons import read_by
from demod_voice.serve.limits import check_input

log = logging.getLogger(__name__)

PLAYER_FORMAT = "mp3"
"""What the player streams (Media Source Extensions play MP3 as it arrives)."""
KEEP = 48
"""How many finished results are kept for their download links."""
KEEP_SECONDS = 30 * 60.0
"""How long a result stays downloadable."""
READ_GRACE = 30.0
"""Seconds past ``serve.limits.deadline_seconds`` (from its request) that a player's live stream may wait on a client
that does not read before it is cut."""
KEEP_BYTES = 256 * 2**20
"""Bytes of finished results kept (both encodings together): past it the oldest go first, whatever their age."""
EXTENSIONS = {"opus": "ogg", "pcm": "raw"}


@dataclass
class Track:
    """One encoding of a job's audio, readable by any number of requests while it grows."""
    fmt: str
    """Response format (``wav``, ``mp3``, ...)."""
    encoder: Any
    """Its :class:`~demod_voice.audio.encode.StreamEncoder`."""
    parts: list = field(default_factory=list)
    """Encoded bytes so far, in order."""
    def whole(self) -> bytes:
        """The finished file; a WAV gets its real lengths (the streamed header said 'unknown')."""
        data = b"".join(self.parts)
        if self.fmt == "wav" and len(data) >= 44:
            from demod_voice.audio.encode import wav_header

            data = wav_header(self.encoder.output_rate, len(data) - 44) + data[44:]
        return data


@dataclass
class SpeechStream:
    """One job's audio for the page: a player track and a download track (the same one for MP3)."""
    token: str
    """Unguessable id in the URL."""
    label: str
    """What the download is called (no extension)."""
    player: Track
    """What the page's player streams."""
    download: Track
    """The file in the format asked for."""
    done: bool = False
    """The job ended (made or failed)."""
    error: str = ""
    """Why it failed, in words."""
    seconds: float = 0.0
    """Audio made so far."""
    created: float = field(default_factory=time.monotonic)
    """When the job was submitted."""
    first_audio: Optional[float] = None
    """Seconds from submission to the first chunk."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) whenever bytes arrive or the job ends."""
    def _notify(self) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()

    def tracks(self) -> list[Track]:
        return [self.player] if self.download is self.player else [self.player, self.download]

    def add(self, samples: Any, rate: int) -> None:
        """Encode a chunk into every track."""
        if self.first_audio is None:
            self.first_audio = time.monotonic() - self.created
        self.seconds += len(samples) / rate
        for track in self.tracks():
            data = track.encoder.feed(samples)
            if data:
                track.parts.append(data)
        self._notify()

    def finish(self, error: str = "") -> None:
        """Flush the encoders (unless it failed) and wake every reader."""
        if not error:
            for track in self.tracks():
                tail = track.encoder.close()
                if tail:
                    track.parts.append(tail)
        self.error, self.done = error, True
        self._notify()

    async def read(self, track: Track) -> AsyncIterator[bytes]:
        """Every part of ``track`` from the first, following the job live until it ends."""
        index = 0
        while True:
            while index < len(track.parts):
                index += 1
                yield track.parts[index - 1]
            if self.done:
                return
            await self.changed.wait()

    async def finished(self) -> None:
        """Wait for the end of the job."""
        while not self.done:
            await self.changed.wait()

    @property
    def filename(self) -> str:
        return f"{self.label}.{EXTENSIONS.get(self.download.fmt, self.download.fmt)}"


def streams(ctx: Any) -> OrderedDict:
    """This server's page streams, oldest first (kept in the context's ``extras``)."""
    return ctx.extras.setdefault("ui_streams", OrderedDict())


def _size(stream: SpeechStream) -> int:
    return sum(len(part) for track in stream.tracks() for part in track.parts)


def _prune(table: OrderedDict) -> None:
    """Forget finished results past :data:`KEEP`, :data:`KEEP_SECONDS` or :data:`KEEP_BYTES`, oldest first."""
    now = time.monotonic()
    for token in list(table):
        stream = table[token]
        if stream.done and (len(table) > KEEP or now - stream.created > KEEP_SECONDS):
            del table[token]
    held = sum(_size(stream) for stream in table.values())
    for token in list(table):
        if held <= KEEP_BYTES:
            break
        if table[token].done:
            held -= _size(table.pop(token))


def _player_format() -> str:
    """MP3 when PyAV is there (the serve extra brings it), else WAV (played once complete)."""
    import importlib.util

    return PLAYER_FORMAT if importlib.util.find_spec("av") is not None else "wav"


async def start_speech(ctx: Any, choice: Any, text: str, fmt: str, speed: float = 1.0, label: str = "speech") -> SpeechStream:
    """Submit ``text`` for ``choice`` (a resolved :class:`~demod_voice.serve.voices.VoiceChoice`) and start
    encoding its audio. Raises at once what the API would refuse: bad input, a full queue."""

    check_input(text, ctx.settings.limits)
    player_fmt = _player_format()
    player = Track(player_fmt, StreamEncoder(player_fmt, choice.sample_rate))
    download = player if fmt == player_fmt else Track(fmt, StreamEncoder(fmt, choice.sample_rate))
    job = read_by(ctx, choice).job(text, speed=speed, label=f"web page: {label}")
    handle = ctx.engine.submit(job, priority=Priority.INTERACTIVE, bounded=True)
    stream = SpeechStream(secrets.token_urlsafe(18), label, player, download)
    table = streams(ctx)
    table[stream.token] = stream
    _prune(table)
    task = asyncio.get_running_loop().create_task(_pump(ctx, handle, stream, choice.kind))
    tasks = ctx.extras.setdefault("ui_tasks", set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return stream


async def _pump(ctx: Any, handle: Any, stream: SpeechStream, kind: str) -> None:
    """Engine chunks -> encoded bytes; an error ends the stream with words, never a traceback."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.limits.deadline_seconds
    chunks = handle.stream()
    error = ""
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), timeout=max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                break
            stream.add(chunk.samples, chunk.sample_rate)
        _count(ctx, handle, kind)
    except asyncio.TimeoutError:
        handle.cancel()
        error = f"the speech was not finished within {ctx.settings.limits.deadline_seconds:g} s (serve.limits.deadline_seconds)"
    except DemodVoiceError as err:
        log_for_server(err)
        error = client_text(err)
    except asyncio.CancelledError:
        handle.cancel()
        error = "the server stopped before the audio was finished"
        raise
    except Exception as err:  # noqa: BLE001 - the page gets words, the log gets the details
        log.exception("web page speech failed")
        error = f"the speech could not be made ({type(err).__name__}: {err})"
    finally:
        stream.finish(error)


def _count(ctx: Any, handle: Any, kind: str) -> None:
    """The page's speech counts in ``/metrics`` like the API's."""
    if ctx.metrics is None:
        return
    result = handle.result(timeout=5)
    first = result.first_chunk_seconds if result.first_chunk_seconds is not None else 0.0
    ctx.metrics.finished(kind, first, result.seconds, result.audio_seconds)


class _Cut(StreamingResponse):
    """A live stream that ends at ``until`` (the event loop's clock) even while its client does not read: the
    server's ``send`` then waits for the socket, where nothing else would end it."""

    def __init__(self, body: AsyncIterator[bytes], until: float, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.until = until

    async def stream_response(self, send: Any) -> None:
        try:
            async with asyncio.timeout_at(self.until):
                await super().stream_response(send)
        except TimeoutError:
            log.info("web page: a player's stream was cut: its client did not take it in time (serve.limits.deadline_seconds)")
            await self.body_iterator.aclose()


def add_routes(app: Any, ctx_of: Any, prefix: str = "/ui") -> None:
    """``GET {prefix}/audio/{token}`` (live, for the player) and ``.../download`` (the file), ahead of the page's mount.
    ``ctx_of()`` returns the server's context (it exists once the app has started)."""
    from fastapi import HTTPException
    from fastapi.responses import Response

    def find(token: str) -> SpeechStream:
        stream = streams(ctx_of()).get(token)
        if stream is None:
            raise HTTPException(404, "this audio is no longer kept; speak the text again")
        return stream

    @app.get(prefix + "/audio/{token}", include_in_schema=False)
    async def page_audio(token: str) -> Any:
        stream = find(token)
        if stream.done and stream.error:
            raise HTTPException(422, stream.error)
        if stream.done:
            return Response(stream.player.whole(), media_type=stream.player.encoder.media_type)
        until = asyncio.get_running_loop().time() + ctx_of().settings.limits.deadline_seconds + READ_GRACE
        return _Cut(stream.read(stream.player), until, media_type=stream.player.encoder.media_type, headers={"Cache-Control": "no-store"})

    @app.get(prefix + "/audio/{token}/download", include_in_schema=False)
    async def page_download(token: str) -> Any:
        stream = find(token)
        await stream.finished()
        if stream.error:
            raise HTTPException(422, stream.error)
        return Response(stream.download.whole(), media_type=stream.download.encoder.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{stream.filename}"'})
