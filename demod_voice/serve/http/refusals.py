"""Refused requests in the log, one line each, at ``-v``: what was asked, from which address, the status and the error's
``code``, so that an administrator whose client is refused (a mistyped key, a missing scope, a name not in
``serve.allowed_hosts``) can see why on the server. Until 2026-12-07 a refusal went nowhere but ``/metrics``' counts,
at any log level.

Nothing of the request's headers is written (no key, no part of one); the path is cut to its printable characters.
Pure ASGI, outside the request guard, so that the guard's own refusals are seen; an answer passes through untouched.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from demod_voice.serve.clients import of
from demod_voice.serve.errors import quoted

log = logging.getLogger(__name__)

MAX_BODY = 8192
"""Bytes of a refusal's body read for its ``code`` (an error body is a few hundred)."""


def error_code(body: bytes) -> str:
    """The ``code`` of an error body (the API's ``{"error": {"code": ...}}``), or "" for any other body."""
    try:
        error = json.loads(body[:MAX_BODY].decode("utf-8")).get("error")
    except (ValueError, AttributeError):
        return ""
    code = error.get("code") if isinstance(error, dict) else None
    return quoted(code, 40) if isinstance(code, str) else ""


class RefusalLog:
    """Say each answer with a 4xx status in the log at ``info`` (``serve -v``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 0
        said = False

        async def noting_send(message: dict) -> None:
            nonlocal status, said
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and 400 <= status < 500 and not said:
                said = True
                self._say(scope, status, error_code(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, noting_send)

    @staticmethod
    def _say(scope: dict, status: int, code: str) -> None:
        log.info("refused %s %s from %s: %d%s", quoted(scope.get("method", ""), 10), quoted(scope.get("path", ""), 200),
                 of(scope).address or "an unknown address", status, f" {code}" if code else "")
