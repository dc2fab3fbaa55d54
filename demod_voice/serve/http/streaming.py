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


class StreamBroken(Exception):
    """A streamed answer cut short after its headers: its connection is closed without the last chunk."""


class QuietBroken(logging.Filter):
    """Drops uvicorn's traceback for a :class:`StreamBroken` (the reason is already in the log, in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamBroken))


def quiet_uvicorn() -> None:
    """Install :class:`QuietBroken` on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietBroken) for f in logger.filters):
        logger.addFilter(QuietBroken())
