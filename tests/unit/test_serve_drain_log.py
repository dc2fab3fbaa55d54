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
