"""The Wyoming front door (Home Assistant's protocol for local speech): one handler per connection,
speaking through the same resident engine as the HTTP server.

A connection reads events and answers them in order. Each request becomes engine jobs at once
(a whole ``synthesize`` text is one job; in the streaming flow each sentence is one job, submitted
the moment it is complete), and a per-connection sender turns the jobs' audio into ``audio-chunk``
events as the engine makes it. Reading never waits for audio, so a client that goes away is seen
at once and its jobs are cancelled.

What a client may send is bounded (:func:`read_event`): a line of at most :data:`MAX_LINE` bytes,
JSON with a ``type``, ``data_length`` and ``payload_length`` whole numbers under their caps.
Anything else is answered with an ``error`` event and the connection is closed (its place in the
stream of bytes is lost). A connection holds at most ``engine.max_queued`` requests not yet sent,
and a client that stops reading is not waited for past its deadline: its jobs pause (their audio
buffered up to the engine's bound), then are cancelled and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Optional

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from demod_voice.audio.chunks import to_int16
from demod_voice.audio.text import SentenceStream
from demod_voice.engine.service import Priority
from demod_voice.errors import DemodVoiceError, InputError, NothingToSpeak, QueueFull, RuntimeFailure
from demod_voice.serve.errors import client_text, printable, sendable, servers_to_fix
from demod_voice.serve.lexicons import read_by
from demod_voice.serve.wyoming.voices import choose, info_event, wyoming_voices
from demod_voice.speech_text.markdown import unmarked
from demod_voice.speech_text.ssml import SSML_END, SSML_STARTS, is_ssml

log = logging.getLogger(__name__)

WIDTH, CHANNELS = 2, 1  # 16-bit mono, what every backend gives
MAX_LINE = 64 * 1024
"""Bytes of one event line (the reader's own limit: asyncio's default for a stream)."""
MAX_PAYLOAD = 64 * 1024
"""Bytes of one event's binary payload: a speech server is sent text, never audio."""
JSON_CHAR = 12
"""Bytes one character of text may take in an event's JSON (a character outside the BMP escaped: two ``\\uXXXX``)."""
WRITE_TIMEOUT = 10.0
"""Seconds one event (other than audio, which has the request's deadline) may wait for a client that does not read."""

CUT_TIMEOUT = 1.0
"""Seconds the ``error`` event telling that an answer was cut at shutdown may wait for the client to read it."""
IDLE_SECONDS = 300.0
"""Seconds a connection with nothing to send may wait for its next event before it is closed (Home Assistant opens one
per request)."""
MIN_EVENT_RATE = 500
"""Bytes a second an event must average once its first byte is in, past ``serve.header_timeout_seconds`` (as HTTP's
request bodies: :data:`demod_voice.serve.http.connections.MIN_BODY_RATE`); half an event line held its connection for
good, and a thousand of them every file the server could open."""


class Draining(DemodVoiceError):
    """The server stopped taking requests (SIGTERM)."""


class Timeout(DemodVoiceError):
    """A request ran past ``serve.limits.deadline_seconds``."""


class BadEvent(DemodVoiceError):
    """An event the server cannot read (a field missing or of the wrong type)."""


def max_data(ctx: Any) -> int:
    """Bytes of an event's JSON data: room for the longest text a request may hold (4 bytes a character)."""
    return max(MAX_LINE, 4 * ctx.settings.limits.max_input_chars + 4096)


async def read_event(reader: asyncio.StreamReader, data_limit: int, seconds: float = 10.0, first: bytes = b"",
                     repeat: int = 0) -> Optional[Event]:
    """The next event, read within the caps (``first``: its first byte, already read); ``None`` when the client has
    finished. :class:`BadEvent` for anything that is not a Wyoming event this server takes (what follows it can no longer
    be read), or that is not in within ``seconds`` and a second more for each :data:`MIN_EVENT_RATE` bytes of it.
    ``repeat``: bytes of a ``synthesize`` event's data, over the cap, that are read past and not kept (a stream's text
    sent whole again, as Home Assistant does for older servers): it comes back with an empty text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        async with asyncio.timeout_at(deadline):
            line = first + (await reader.readuntil(b"\n") if first != b"\n" else b"")
    except asyncio.IncompleteReadError as err:
        if (first + err.partial).strip():
            raise BadEvent("the connection ended in the middle of an event") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadEvent(f"an event line is longer than {MAX_LINE} bytes; send the text in the event's data (data_length)") from None
    except TimeoutError:
        raise BadEvent(f"an event line did not arrive within {seconds:g} s (serve.header_timeout_seconds)") from None
    header = _json(line, "an event line")
    kind = header.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise BadEvent("an event has no 'type': each event is one line of JSON such as {\"type\": \"synthesize\", ...}")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise BadEvent(f"the 'data' of a '{kind[:40]}' event is not a JSON object")
    passed = Synthesize.is_type(kind) and isinstance(header.get("data_length"), int) and data_limit < header["data_length"] <= repeat
    data_length = _length(header, "data_length", repeat if passed else data_limit)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD)
    try:
        async with asyncio.timeout_at(deadline + (data_length + payload_length) / MIN_EVENT_RATE):
            if data_length:
                data = {**data, **await _read_data(reader, data_length, kind, passed)}
            payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise BadEvent("the connection ended in the middle of an event") from None
    except TimeoutError:
        raise BadEvent(f"an event's data arrived at under {MIN_EVENT_RATE} bytes a second") from None
    return Event(type=kind, data=data, payload=payload)


async def _read_data(reader: asyncio.StreamReader, length: int, kind: str, passed: bool) -> dict:
    """An event's JSON data; ``passed``: a text sent again, read in pieces and dropped (``text`` empty)."""
    if not passed:
        return _json(await reader.readexactly(length), f"the data of a '{kind[:40]}' event")
    for left in range(length, 0, -MAX_LINE):
        await reader.readexactly(min(left, MAX_LINE))
    return {"text": ""}


def _json(raw: bytes, what: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:  # UnicodeDecodeError too
        raise BadEvent(f"{what} is not JSON: each event is one line of JSON with a 'type'") from None
    except RecursionError:  # [[[...]]] 60 KB deep: the connection was dropped with a traceback in the log, no error event
        raise BadEvent(f"{what} is nested too deeply: each event is one line of JSON with a 'type'") from None
    if not isinstance(value, dict):
        raise BadEvent(f"{what} is not a JSON object")
    return value


def _length(header: dict, key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadEvent(f"'{key}' must be a whole number of bytes, not {json.dumps(value)[:40]}")
    if value > limit:
        raise BadEvent(f"'{key}' is {value} bytes; this server takes at most {limit}{_TOO_LONG.get(key, '')}")
    return value


_TOO_LONG = {"data_length": ": send a longer text in pieces, as a stream (synthesize-start, synthesize-chunk events, synthesize-stop)",
             "payload_length": ": a speech server is sent text, in the event's data"}
"""What to do about an event over a cap (a long text got only its size in bytes)."""


STREAM_AHEAD = 8
"""Sentences of a stream handed to the engine ahead of the one being sent (made while it plays); the next ones wait here,
as text. A long reply comes in faster than it is spoken: past ``engine.max_queued`` sentences the whole stream was
refused (``QueueFull``), and Home Assistant, which reads past ``error`` events, played nothing of it."""
STREAM_WAITING = 4096
"""Sentences of one stream that may wait for their turn (a client streaming text for ever is stopped there)."""


MAX_NAME = 200
"""Characters a voice's name, language or speaker may have in a request (the longest here are a few dozen)."""


def _shape(event: Event) -> Optional[str]:
    """What is wrong with the fields of a synthesis event (``text`` a string, ``voice`` an object of strings), or ``None``."""
    if not (Synthesize.is_type(event.type) or SynthesizeChunk.is_type(event.type) or SynthesizeStart.is_type(event.type)):
        return None
    data = event.data or {}
    if not SynthesizeStart.is_type(event.type) and not isinstance(data.get("text"), str):
        return "'text' must be a string"
    voice = data.get("voice")
    if voice is not None and not (isinstance(voice, dict) and all(isinstance(voice.get(k), (str, type(None))) for k in
                                                                   ("name", "language", "speaker"))):
        return "'voice' must be an object whose 'name', 'language' and 'speaker' are strings"
    for key in ("name", "language", "speaker"):
        if voice and len(voice.get(key) or "") > MAX_NAME:  # quoted back whole: a 50,000-character name in the error and the log
            return f"the voice's '{key}' is {len(voice[key])} characters; names are at most {MAX_NAME} ('describe' lists them)"
    return None


def _answerable(err: Exception) -> DemodVoiceError:
    """``err`` as the client may read it: our own errors as they are; anything else logged here, named there."""
    if isinstance(err, DemodVoiceError):
        return err
    log.error("Wyoming: internal error", exc_info=err)
    return RuntimeFailure(f"internal error ({type(err).__name__}); the server log has the details")


@dataclass(frozen=True)
class WyomingOptions:
    """How the Wyoming server listens and speaks."""
    uri: str = "tcp://127.0.0.1:10200"
    """``tcp://HOST:PORT`` (or ``unix://PATH``); loopback by default: Wyoming has no authentication."""
    zeroconf: Optional[str] = None
    """Name to advertise over mDNS for Home Assistant's discovery; ``None``: not advertised."""
    samples_per_chunk: int = 1024
    """Audio samples per ``audio-chunk`` event."""
    default_voice: Optional[str] = None
    """Voice for requests that name none and give no language (``None``: the first listed)."""


@dataclass
class _Request:
    """One answer being sent: a ``synthesize``, or a whole streaming session."""
    voice: Any = None
    """The :class:`~demod_voice.serve.voices.VoiceChoice`."""
    streaming: bool = False
    """A streaming session (ends with ``synthesize-stopped``)."""
    failed: bool = False
    """An error was sent: the rest of this answer is skipped."""
    rate: int = 0
    """Sample rate once ``audio-start`` was sent."""
    samples: int = 0
    """Samples sent so far (for timestamps)."""
    waiting: deque = field(default_factory=deque)
    """A stream's sentences (:class:`_Sentence`) not yet handed to the engine: :data:`STREAM_AHEAD` are ahead already."""
    unspoken: Optional[DemodVoiceError] = None
    """In a stream: why a sentence had nothing to say (``...`` alone, a markdown rule). It is skipped and the rest spoken:
    Home Assistant reads past an ``error`` event, and a reply went silent from there on. Told only if nothing was spoken."""


@dataclass(eq=False)
class _Sentence:
    """The text of one job, and its engine handle once handed over."""
    text: str
    handle: Any = None


class WyomingHandler(AsyncEventHandler):
    """One client connection."""
    def __init__(self, ctx: Any, options: WyomingOptions, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.ctx = ctx
        self.options = options
        self.outbox: asyncio.Queue[Optional[Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self.handles: set[Any] = set()
        self.stream: Optional[tuple[_Request, SentenceStream]] = None
        self.streamed = 0
        """Characters of text the stream under way has received."""
        self._sending = False
        self.refused = False
        """An event could not be read: what is answered is sent, nothing more is handed to the engine."""
        self.ended = False
        """The connection is over (a handler may outlive it until the garbage collector's next pass)."""
        self.sender = asyncio.create_task(self._send_loop(), name="wyoming sender")

    # --- reading: every event is answered later, in order, by the sender -------------------------

    async def run(self) -> None:
        """Read events until the client leaves; a connection reset is a client leaving, not an error. An event that
        cannot be read is answered with an ``error`` event, then the connection is closed. Nothing escapes: this runs
        as a task nobody awaits."""
        limit, seconds = max_data(self.ctx), self.ctx.settings.header_timeout_seconds
        try:
            while (first := await self._first_byte()) and (event := await read_event(self.reader, limit, seconds, first,
                                                                                       self._repeat())):
                await self.handle_event(event)
            await self._finish()
        except BadEvent as err:
            await self._refuse(err)
        except (ConnectionError, OSError) as err:
            log.debug("Wyoming: connection ended (%s)", err)
        except Exception:  # noqa: BLE001 - a bug must end this connection, not surface as an unretrieved task error
            log.exception("Wyoming: internal error; closing the connection")
        finally:
            self.ended = True
            await self.disconnect()
            self.writer.close()

    def _repeat(self) -> int:
        """Bytes the whole text of the stream under way may take in one ``synthesize`` event (Home Assistant sends it
        after the chunks): :data:`JSON_CHAR` a character, and room for the voice. A reply longer than one event holds
        (an LLM's long story) was cut where that event came: refused, its sentences not yet spoken were cancelled."""
        return JSON_CHAR * self.streamed + MAX_LINE if self.stream is not None and self.stream[1].seen else 0

    async def _finish(self) -> None:
        """The client sent its last event: send the answers it asked for. It may have shut only its sending side (as
        ``nc -N`` does: a describe got nothing back); one that has gone fails the next write, which cancels its jobs.
        A stream left open (no ``synthesize-stop``) is a client gone in the middle of its request (Home Assistant
        cancelling a reply): its jobs are cancelled now; waiting for a write to fail kept the engine making the audio
        of sentences nobody would hear, and the household's next announcement waited behind them."""
        if self.stream is not None:
            log.info("Wyoming: the client left in the middle of a stream; its answer is cancelled")
            self._abort()
            return
        self.outbox.put_nowait(None)
        await asyncio.wait({self.sender})

    async def _first_byte(self) -> bytes:
        """The next event's first byte, however long the client waits while this connection has audio to send or
        :data:`IDLE_SECONDS` while it has none (then the connection is closed); ``b""`` when the client has finished."""
        while True:
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    return await self.reader.readexactly(1)
            except asyncio.IncompleteReadError:
                return b""
            except TimeoutError:
                if not self.busy():
                    log.info("Wyoming: closing a connection idle for %g s", IDLE_SECONDS)
                    return b""

    async def _refuse(self, err: BadEvent) -> None:
        """Stop this connection's jobs; send what is already answered, then the ``error`` event saying why (the
        caller closes the connection). A client that does not read them is not waited for long."""
        self.refused = True
        for handle in list(self.handles):
            handle.cancel()
        self._later(partial(self._error, err))
        self.outbox.put_nowait(None)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.sender
        except TimeoutError:
            log.info("Wyoming: the client did not read the error; closing")

    async def handle_event(self, event: Event) -> bool:
        problem = _shape(event)
        if problem is None:
            try:
                await self._dispatch(event)
                return True
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                log.debug("Wyoming: malformed %r event: %s: %s", event.type, type(err).__name__, err)
                problem = "its fields are not the Wyoming protocol's"
        await self._malformed(event, BadEvent(f"malformed '{event.type}' event: {problem}"))
        return True

    async def _malformed(self, event: Event, err: BadEvent) -> None:
        """Refuse an event whose fields are wrong with ``err``; the answer it opens still ends as any answer does
        (``audio-stop`` after a ``synthesize``, ``synthesize-stopped`` after a stream it starts)."""
        if Synthesize.is_type(event.type) and self.stream is None:
            await self._synthesize(None, "", refused=err)
        elif SynthesizeStart.is_type(event.type):
            await self._start_stream(None, refused=err)
        else:
            self._later(partial(self._error, err))

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            self._later(self._describe)
        elif SynthesizeStart.is_type(event.type):
            await self._start_stream(SynthesizeStart.from_event(event).voice)
        elif SynthesizeChunk.is_type(event.type):
            self._stream_text(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            self._stop_stream()
        elif Synthesize.is_type(event.type):
            synthesize = Synthesize.from_event(event)
            if self.stream is None:
                await self._synthesize(synthesize.voice, synthesize.text)
            elif not self.stream[1].seen:
                # Inside a stream Home Assistant repeats the whole text for older servers (ignored, it came in
                # chunks); a client that sends no chunks at all gets this text spoken.
                self._stream_text(synthesize.text)

    async def _synthesize(self, voice: Any, text: str, refused: Optional[DemodVoiceError] = None) -> None:
        if refused is None and not text.strip():  # as HTTP's empty_input: a silent empty answer says nothing
            refused = InputError("'text' is empty: give the text to speak")
        request = await self._open(voice, streaming=False, refused=refused)
        if not request.failed:
            self._speak(request, text.strip())
        self._later(partial(self._audio_stop, request))

    async def _start_stream(self, voice: Any, refused: Optional[DemodVoiceError] = None) -> None:
        if self.stream is not None:  # a new session without a stop: end the old one first
            self._stop_stream()
        self.stream = (await self._open(voice, streaming=True, refused=refused), SentenceStream(SSML_STARTS, SSML_END))
        self.streamed = 0

    def _stream_text(self, text: str) -> None:
        if self.stream is None:
            self._later(partial(self._error, InputError("synthesize-chunk outside a stream: send synthesize-start "
                                                           "first (and synthesize-stop at the end)")))
            return
        request, sentences = self.stream
        self.streamed += len(text)
        for sentence in sentences.add(text, self.ctx.settings.limits.max_input_chars):
            if not request.failed:
                self._speak(request, sentence)

    def _stop_stream(self) -> None:
        if self.stream is None:
            self._later(self._stopped)
            return
        request, sentences = self.stream
        self.stream = None
        rest = sentences.finish()
        if rest and not request.failed:
            self._speak(request, rest)
        self._later(partial(self._audio_stop, request))
        self._later(self._stopped)

    async def _open(self, voice: Any, streaming: bool, refused: Optional[DemodVoiceError] = None) -> _Request:
        """A new answer with its voice chosen; an unknown voice (or ``refused``: the request itself is wrong) queues
        an ``error`` event and fails it. The voice is chosen off the event loop: the list it is chosen from is read from
        disk (an app's 300 enrolled voices: 0.1 s a request, while every other connection's audio waited)."""
        request = _Request(streaming=streaming)
        try:
            if refused is not None:
                raise refused
            if self.ctx.draining.is_set():
                raise Draining("the server is shutting down; try again in a moment")
            request.voice = await asyncio.to_thread(self._choose, voice)
        except Exception as err:  # noqa: BLE001 - every failure is answered with an error event
            request.failed = True
            self._later(partial(self._error, _answerable(err)))
        return request

    def _choose(self, voice: Any) -> Any:
        return choose(self.ctx, wyoming_voices(self.ctx), getattr(voice, "name", None), getattr(voice, "language", None),
                      getattr(voice, "speaker", None), self.options.default_voice)

    def _speak(self, request: _Request, text: str) -> None:
        """Hand the job to the engine now (it starts while earlier audio is still being sent), or, in a stream already
        :data:`STREAM_AHEAD` jobs ahead, when the sentences before it are sent (:meth:`_top_up`); send its audio in turn."""
        limit = self.ctx.settings.limits.max_input_chars
        text = text if is_ssml(text) else unmarked(text)  # an LLM's **bold** was read "asterisk asterisk"
        sentence, waits = _Sentence(text), False
        if len(text) > limit:
            advice = ": send SSML documents of fewer characters, one after another" if request.streaming else _TOO_LONG["data_length"]
            refused: Optional[DemodVoiceError] = InputError(f"the text has {len(text)} characters; this server takes at most {limit} "
                                                            f"per request (serve.limits.max_input_chars){advice}")
        elif request.streaming and (request.waiting or len(self.handles) >= self._ahead()):
            refused = QueueFull(f"this stream has {len(request.waiting)} sentences waiting for their turn; read their audio "
                                "first", retry_after=1.0) if len(request.waiting) >= STREAM_WAITING else None
            waits = refused is None
            if waits:
                request.waiting.append(sentence)
        else:
            refused = self._submit(request, sentence)
        if refused is not None:
            request.failed = True
            self._later(partial(self._error, refused))
        elif waits or sentence.handle is not None:
            self._later(partial(self._audio, request, sentence))

    def _submit(self, request: _Request, sentence: _Sentence) -> Optional[DemodVoiceError]:
        """Hand ``sentence`` to the engine; the error to tell when it cannot be (``None``: handed, or skipped)."""
        try:
            if len(self.handles) >= self.ctx.engine.settings.max_queued:
                raise QueueFull(f"this connection has {len(self.handles)} requests not yet answered (engine.max_queued); "
                                "read their audio first", retry_after=1.0)
            job = read_by(self.ctx, request.voice).job(sentence.text, label="wyoming")
            sentence.handle = self.ctx.engine.submit(job, priority=Priority.INTERACTIVE, bounded=True)
        except Exception as err:  # noqa: BLE001 - every failure is answered with an error event
            return None if self._skipped(request, err) else _answerable(err)
        self.handles.add(sentence.handle)
        return None

    def _ahead(self) -> int:
        """Jobs a stream hands to the engine ahead of the one being sent (a connection holds ``engine.max_queued``)."""
        return min(STREAM_AHEAD, self.ctx.engine.settings.max_queued)

    async def _top_up(self, request: _Request, turn: _Sentence) -> None:
        """Hand a stream's waiting sentences to the engine, up to :data:`STREAM_AHEAD` ahead of the one being sent, and
        ``turn``, the one to send now, whatever else the connection holds (requests sent after the stream may hold
        those places: each sentence found none at its turn and was dropped)."""
        while request.waiting and (len(self.handles) < self._ahead() or request.waiting[0] is turn) \
                and not (request.failed or self.refused):
            refused = self._submit(request, request.waiting.popleft())
            if refused is not None:
                request.failed = True
                await self._error(refused)

    def _later(self, send: Callable[[], Awaitable[None]]) -> None:
        self.outbox.put_nowait(send)

    # --- sending ----------------------------------------------------------------------------------

    async def write_event(self, event: Event, timeout: Optional[float] = WRITE_TIMEOUT) -> None:
        """Send one event; a client that reads none of it for ``timeout`` seconds is taken as gone (``None``: the
        caller bounds the wait, as audio is bounded by its request's deadline)."""
        try:
            async with asyncio.timeout(timeout):
                await super().write_event(event)
        except TimeoutError:
            raise ConnectionAbortedError(f"the client read nothing for {timeout:g} s") from None

    async def _send_loop(self) -> None:
        while (send := await self.outbox.get()) is not None:
            self._sending = True
            try:
                await send()
            except (ConnectionError, OSError) as err:  # the client went away (or stopped reading) while we wrote
                log.info("Wyoming: closing the connection: %s", err)
                self._abort()
                return
            except Exception:  # noqa: BLE001 - a bug must end this connection, not leave it hanging
                log.exception("Wyoming: internal error; closing the connection")
                self._abort()
                return
            finally:
                self._sending = False

    def _abort(self) -> None:
        """End the connection from the sending side: its jobs are cancelled and what is buffered for it is dropped
        (a close would wait for a client that does not read to take it); the reader sees the connection end."""
        for handle in list(self.handles):
            handle.cancel()
        self.writer.transport.abort()

    async def _describe(self) -> None:
        voices = await asyncio.to_thread(wyoming_voices, self.ctx)
        await self.write_event(info_event(voices))

    async def _error(self, err: Exception, timeout: float = WRITE_TIMEOUT) -> None:
        # a client's words in the log, its control characters escaped (a newline in a voice name forged a log line);
        # what the server's administrator must fix at the default level (a damaged voice failed every request unlogged)
        log.log(logging.WARNING if servers_to_fix(err) else logging.INFO, "Wyoming: %s", printable(str(err)))
        text = client_text(err)
        if getattr(err, "retry_after", None):
            text += f" (retry after {err.retry_after:.1f} s)"
        await self.write_event(Error(text=sendable(text), code=type(err).__name__).event(), timeout)

    async def _audio(self, request: _Request, sentence: _Sentence) -> None:
        """Send one job's audio as the engine makes it; past its deadline the job is cancelled. The deadline counts
        from the job's turn to be sent: an LLM's reply streamed in a slow voice came in all at once, and a sentence
        whose deadline counted from then ran out of time behind the sentences before it (the reply was cut)."""
        await self._top_up(request, sentence)
        handle = sentence.handle
        if handle is None:  # never handed to the engine: skipped, or its answer failed before its turn
            return
        try:
            if request.failed:
                handle.cancel()
                return
            async with asyncio.timeout(self.ctx.settings.limits.deadline_seconds):
                async for chunk in handle.stream():
                    await self._send_samples(request, chunk)
        except TimeoutError:
            handle.cancel()
            request.failed = True
            seconds = self.ctx.settings.limits.deadline_seconds
            await self._error(Timeout(f"the speech was not done within {seconds:g} s (serve.limits.deadline_seconds); it was cancelled"))
        except DemodVoiceError as err:
            if not self._skipped(request, err):
                request.failed = True
                await self._error(err)
        finally:
            if not handle.done():  # the client went away while its audio was being sent
                handle.cancel()
            self.handles.discard(handle)

    async def _send_samples(self, request: _Request, chunk: Any) -> None:

        if not request.rate:
            request.rate = chunk.sample_rate
            await self.write_event(AudioStart(rate=request.rate, width=WIDTH, channels=CHANNELS, timestamp=0).event(), None)
        pcm = to_int16(chunk.samples).tobytes()
        step = self.options.samples_per_chunk * WIDTH * CHANNELS
        for offset in range(0, len(pcm), step):
            piece = pcm[offset: offset + step]
            timestamp = request.samples * 1000 // request.rate
            request.samples += len(piece) // (WIDTH * CHANNELS)
            await self.write_event(AudioChunk(rate=request.rate, width=WIDTH, channels=CHANNELS, audio=piece,
                                              timestamp=timestamp).event(), None)

    @staticmethod
    def _skipped(request: _Request, err: Exception) -> bool:
        """Whether ``err`` only says that one sentence of a stream had nothing to say: kept for the end, not sent."""
        if not (request.streaming and isinstance(err, NothingToSpeak)):
            return False
        log.debug("Wyoming: a sentence of a stream is skipped: %s", err)
        request.unspoken = request.unspoken or err
        return True

    async def _audio_stop(self, request: _Request) -> None:
        """End an answer. A ``synthesize`` always ends with ``audio-stop`` (after an error too, so that
        clients reading until it finish); a streaming session only when audio was started, else with an ``error``
        saying why there was none (as an empty ``synthesize`` gets: wyoming-piper said nothing)."""
        if request.streaming and not request.rate:
            if not request.failed:
                await self._error(request.unspoken or InputError(
                    "the stream held no text: send the text to speak in synthesize-chunk events before synthesize-stop"))
            return
        event = AudioStop(timestamp=request.samples * 1000 // request.rate if request.rate else 0).event()
        if request.rate:
            event.data.update(rate=request.rate, width=WIDTH, channels=CHANNELS)
        await self.write_event(event)

    async def _stopped(self) -> None:
        await self.write_event(SynthesizeStopped().event())

    def busy(self) -> bool:
        """True while this connection has audio to send."""
        return bool(self.handles) or not self.outbox.empty() or self._sending

    async def disconnect(self, cut: Optional[DemodVoiceError] = None) -> None:
        """The client went away (or the server stops): cancel its jobs, stop sending. ``cut``: why an answer still
        in progress ends here (the server stops), told to a client that still reads, so that it can tell a
        shutdown from a network failure."""
        answering = self.busy()
        for handle in list(self.handles):
            handle.cancel()
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)
        if cut is not None and answering and not self.writer.is_closing():
            try:
                await self._error(cut, timeout=CUT_TIMEOUT)
            except (ConnectionError, OSError) as err:
                log.debug("Wyoming: could not say why the answer was cut (%s)", err)
