"""Streamed answers that end broken when they cannot finish.

Once a streamed answer's status and headers are sent, a failure (a worker killed, the deadline passed, the voice
removed) can no longer become an error status. Ending the body normally then delivers a short file as a complete one:
a WAV's header gives no length, so nothing tells the client (the OpenAI SDK, curl) that its audio was cut. A body that
cannot finish raises :class:`StreamBroken` instead: the answer's last chunk is never sent and uvicorn closes the
connection, which every HTTP client reports as a broken transfer. The server logs the reason once, in its own words;
uvicorn's "Exception in ASGI application" traceback for it is filtered out (:class:`QuietBroken`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

SEND_GRACE = 2.0
"""Seconds past its deadline a response may stay blocked on a client that does not read before it is cut."""


class AlreadySaid(Exception):
    """An exception raised to uvicorn for its effect (a connection closed, a start abandoned) whose reason the server
    says itself, in one line: uvicorn's traceback for it is filtered out (:class:`QuietBroken`)."""


class StreamBroken(AlreadySaid):
    """A streamed answer cut short after its headers: its connection is closed without the last chunk."""


class StartFailed(AlreadySaid):
    """The server could not start (a ``--preload`` voice that does not exist, ...): said by ``serve`` as its error."""


class CutAtDeadline(StreamingResponse):
    """A streamed answer (speech, a conversion) that ends at its deadline even while its client does not read: the
    server's ``send`` then waits for the socket to drain, where the body's own deadline checks never run, so the job
    and the connection were held for as long as the client kept the socket open. At ``deadline`` + :data:`SEND_GRACE`,
    ``cut`` is called (it cancels the job, paused by then: its reader is behind), the body is closed and the answer
    ends broken."""

    def __init__(self, body: AsyncIterator[bytes], deadline: float, cut: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.deadline = deadline
        self.cut = cut

    async def stream_response(self, send: Any) -> None:
        try:
            async with asyncio.timeout_at(self.deadline + SEND_GRACE):
                await super().stream_response(send)
        except TimeoutError:
            self.cut()
            await self.body_iterator.aclose()
            raise StreamBroken("the deadline passed while the client was not reading") from None


UVICORN_CANCEL = "Cancel %s running task(s), timeout graceful shutdown exceeded"
UVICORN_CUT = "ASGI callable returned without completing response."


class QuietBroken(logging.Filter):
    """Drops uvicorn's traceback for an :class:`AlreadySaid` (the reason is said in one line elsewhere), and says the
    end of a drain's grace period in the server's words: uvicorn's two error lines for it (its cancel, then one per
    request cut) read as a fault of the server, when a cut is what ``serve.grace_seconds`` promises."""

    start_failed = False
    cancelling = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AlreadySaid):
            return False
        if record.msg == UVICORN_CANCEL:
            self.cancelling = True
            record.msg = ("serve.grace_seconds is over: cancelling %s request(s) still in flight (a client still waiting "
                          "for audio gets 503 shutting_down, one being answered a cut transfer)")
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if self.cancelling and record.msg == UVICORN_CUT:
            return False
        # a failed start-up reaches uvicorn as Starlette's traceback text, not as an exception, then as its own line
        message = record.getMessage() if isinstance(record.msg, str) else ""
        if message.startswith("Traceback") and f"{__name__}.StartFailed: " in message:
            self.start_failed = True
            return False
        return not (self.start_failed and message == "Application startup failed. Exiting.")


def quiet_uvicorn() -> None:
    """Install :class:`QuietBroken` on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietBroken) for f in logger.filters):
        logger.addFilter(QuietBroken())


async def client_gone(request: Any) -> None:
    """Returns when the client has closed the connection (the body was read already): raced against a job's first
    audio, so that a client that gave up does not keep a worker busy until the deadline."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
