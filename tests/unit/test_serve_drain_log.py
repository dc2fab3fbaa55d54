"""What the server's log says when a drain's grace period ends with requests still in flight."""

from __future__ import annotations

import logging

from demod_voice.serve.http.streaming import quiet_uvicorn


def test_the_end_of_the_grace_period_is_one_warning_in_the_servers_words(caplog):
    # SIGTERM with serve.grace_seconds: 1 and a slow client: the log said "error: Cancel 1 running task(s), timeout
    # graceful shutdown exceeded" and "error: ASGI callable returned without completing response.", uvicorn's words
    # for what the docs promise, read by an operator as a fault of the server
    quiet_uvicorn()
    uvicorn_log = logging.getLogger("uvicorn.error")
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    uvicorn_log.error("ASGI callable returned without completing response.")  # before a drain: a real fault, kept
    uvicorn_log.error("Cancel %s running task(s), timeout graceful shutdown exceeded", 2)  # as uvicorn's server.py
    uvicorn_log.error("ASGI callable returned without completing response.")  # as its protocols, per request cut
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said[0] == ("ERROR", "ASGI callable returned without completing response.")
    assert len(said) == 2, said
    level, message = said[1]
    assert level == "WARNING" and "serve.grace_seconds" in message and "2 request(s)" in message, said


def test_a_second_signal_while_the_first_is_handled_stops_the_server_and_does_not_hang_it():
    """``timeout 900 demod-voice serve`` stopped by signalling its process group: the server got SIGTERM twice at once,
    the second while the first one's handler was inside ``Event.set`` (which holds a lock), and the second handler waited
    on that lock in the same thread: the server hung for good, listening and answering nothing (seen in a review)."""
    import signal
    import threading
    from types import SimpleNamespace

    import uvicorn

    from demod_voice.serve.server import _Server

    class SecondSignalInside(threading.Event):
        """An event whose ``set`` takes the second signal while it holds its lock, as the interpreter may run it."""

        came = False

        def set(self) -> None:
            if not self._cond.acquire(timeout=2):
                raise AssertionError("the second signal's handler waited on the lock its first holds: the server hangs")
            try:
                if not self.came:
                    self.came = True
                    server.handle_exit(signal.SIGTERM, None)
                self._flag = True  # what Event.set does under its lock
                self._cond.notify_all()
            finally:
                self._cond.release()

    ctx = SimpleNamespace(draining=SecondSignalInside())
    app = SimpleNamespace(state=SimpleNamespace(ctx=ctx))
    server = _Server(uvicorn.Config(app, timeout_graceful_shutdown=10), app)
    server.handle_exit(signal.SIGTERM, None)
    assert ctx.draining.is_set() and server.should_exit  # draining, and the second signal stops at once, as documented
