"""Streamed answers that end broken when they cannot finish.

Once a streamed answer's status and headers are sent, a failure (a worker killed, the deadline passed, the voice
removed) can no longer become an error status. Ending the body normally then delivers a short file as a complete one:
a WAV's header gives no length, so nothing tells the client (the OpenAI SDK, curl) that its audio was cut. A body that
cannot finish raises :class:`StreamBroken` instead: the answer's last chunk is never sent and uvicorn closes the
connection, which every HTTP client reports as a broken transfer. The server logs the reason once, in its own words;
uvicorn's "Exception in ASGI application" traceback for it is filtered out (:class:`QuietBroken`).
"""

from __future__ import annotations

import logging


class AlreadySaid(Exception):
    """An exception raised to uvicorn for its effect (a connection closed, a start abandoned) whose reason the server
    says itself, in one line: uvicorn's traceback for it is filtered out (:class:`QuietBroken`)."""


class StreamBroken(AlreadySaid):
    """A streamed answer cut short after its headers: its connection is closed without the last chunk."""


class StartFailed(AlreadySaid):
    """The server could not start (a ``--preload`` voice that does not exist, ...): said by ``serve`` as its error."""


class QuietBroken(logging.Filter):
    """Drops uvicorn's traceback for an :class:`AlreadySaid` (the reason is said in one line elsewhere)."""

    start_failed = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AlreadySaid):
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
