"""Connections that cannot pile up: a deadline for a request's headers, and a cap on open connections.

uvicorn has no header-read timeout: its keep-alive timer starts only after a response and stops
at the next byte, so a client that opens connections and trickles a byte now and then (or sends
nothing at all) keeps each one, and its buffers, for as long as it likes. :func:`protocol` makes
uvicorn's HTTP/1.1 protocol (h11) close a connection whose request headers are not complete
``serve.header_timeout_seconds`` after it opened (or after its last response), and close at
once a connection that arrives while ``serve.max_connections`` are open. A request's body gets the same time, and a
second more for each :data:`MIN_BODY_RATE` bytes that arrive (as Apache's ``mod_reqtimeout``): a body trickled a byte at
a time (which held the connection for good, whatever the route answered) is closed, a slow but steady upload is not.
A connection the server has
closed but whose client takes none of what is still buffered for it (an answer cut at its deadline
for a client that does not read: asyncio's close waits for the buffer to drain) is dropped after
:data:`STUCK_SECONDS` to :data:`STUCK_SECONDS` x 2.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

STUCK_SECONDS = 5.0
"""How often a connection is looked at for being closed with a buffer its client does not take."""
MIN_BODY_RATE = 500
"""Bytes a second a request's body must average past its first ``serve.header_timeout_seconds``."""
REFUSALS_SAID_EVERY = 60.0
"""Seconds between two log lines about connections refused at ``serve.max_connections`` (one per connection let anyone
who can connect fill the log)."""


def protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol class with both bounds (pass it as ``uvicorn.Config(http=...)``)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return type("BoundedH11Protocol", (_Bounded, H11Protocol), {"header_timeout": header_timeout, "max_connections": max_connections})


def _waiting_for_headers(conn: Any) -> bool:
    """Whether an h11 connection has not yet read the headers of its current request."""
    import h11

    return conn.their_state is h11.IDLE


def _sending_body(conn: Any) -> bool:
    """Whether an h11 connection's client is still sending its current request's body."""
    import h11

    return conn.their_state is h11.SEND_BODY


class Refusals:
    """Connections refused at ``serve.max_connections``, said once and then at most every :data:`REFUSALS_SAID_EVERY`
    seconds with how many were refused since (one line per connection let anyone who can connect fill the log)."""

    def __init__(self, door: str = "") -> None:
        self.door = door
        self.said_at = float("-inf")
        self.since = 0

    def refused(self, now: float, most: int) -> None:
        self.since += 1
        if now - self.said_at >= REFUSALS_SAID_EVERY:
            more = f" ({self.since} refused since the last such line)" if self.said_at > float("-inf") else ""
            log.warning("%sclosing new connections: %d are open (serve.max_connections)%s", self.door, most, more)
            self.said_at, self.since = now, 0


HTTP_REFUSALS = Refusals()


class _Bounded:
    """The bounds, mixed in before uvicorn's ``H11Protocol`` (whose attributes it uses)."""

    header_timeout: float
    max_connections: int
    _header_timer: Any = None
    _reaper: Any = None
    _stuck = 0
    """Bytes buffered for the client of a closing connection at the last look."""

    _body_timer: Any = None
    _body_started = 0.0
    _body_bytes = 0

    def connection_made(self, transport: Any) -> None:
        crowded = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        if crowded:
            HTTP_REFUSALS.refused(self.loop.time(), self.max_connections)
            transport.close()
            return
        self._arm()
        self._reaper = self.loop.call_later(STUCK_SECONDS, self._reap)

    def connection_lost(self, exc: Any) -> None:
        self._disarm()
        self._disarm_body()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        super().connection_lost(exc)

    def _reap(self) -> None:
        """Drop a connection that was closed with data still buffered for a client that took none of it since the
        last look (uvicorn closes, rather than aborts, after an answer cut short). A client that is reading, however
        slowly, keeps it."""
        held = self.transport.get_write_buffer_size() if self.transport.is_closing() else 0
        if held and held == self._stuck:
            log.info("dropping a closed connection whose client took nothing for %g s", STUCK_SECONDS)
            self._reaper = None
            self.transport.abort()
            return
        self._stuck = held
        self._reaper = self.loop.call_later(STUCK_SECONDS, self._reap)

    def data_received(self, data: bytes) -> None:
        if self._body_timer is not None:
            self._body_bytes += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if not _waiting_for_headers(self.conn):
            self._disarm()  # the headers are in: the body has its own time (below), the response its deadline
        if _sending_body(self.conn):
            if self._body_timer is None and not self.transport.is_closing():
                self._body_started, self._body_bytes = self.loop.time(), 0
                self._body_timer = self.loop.call_later(self.header_timeout, self._body_late)
        else:
            self._disarm_body()

    def _body_late(self) -> None:
        """Close a connection whose body arrives slower than :data:`MIN_BODY_RATE` on average (past its first
        ``header_timeout`` seconds); else look again when its time, at that rate, is up."""
        self._body_timer = None
        if not _sending_body(self.conn) or self.transport.is_closing():
            return
        spent = self.loop.time() - self._body_started
        allowed = self.header_timeout + self._body_bytes / MIN_BODY_RATE
        if spent >= allowed:
            log.info("closing a connection whose request body arrived at under %d bytes a second (%d bytes in %.0f s)",
                     MIN_BODY_RATE, self._body_bytes, spent)
            self.transport.close()
            return
        self._body_timer = self.loop.call_later(allowed - spent, self._body_late)

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and _waiting_for_headers(self.conn):
            self._arm()  # the next request's headers get the same time

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if _waiting_for_headers(self.conn) and not self.transport.is_closing():
            log.info("closing a connection whose request headers did not arrive within %g s (serve.header_timeout_seconds)",
                     self.header_timeout)
            self.transport.close()
