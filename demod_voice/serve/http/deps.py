"""What a route gets from FastAPI: the server's context, typed, and the caller, authorised.

Each router declares its scope once (``APIRouter(dependencies=[Depends(require("speak"))])``);
a route that needs more adds ``Depends(require("enroll"))``, or asks for the :data:`Speaker`
and checks ``caller.may(...)`` when the scope depends on what the request holds (a batch with
reference recordings clones voices: ``enroll``). The check itself is
:func:`demod_voice.serve.auth.authorize`, the one every front door calls (the page too).
Authentication already happened on the headers in :mod:`demod_voice.serve.http.guard`, before
any body was read; this is where the scope of the route is known.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from demod_voice.serve.auth import Caller, authorize
from demod_voice.serve.core import ServeContext
from demod_voice.serve.errors import ApiError


def get_context(request: Request) -> ServeContext:
    """The server's context (503 while the server is still starting)."""
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise ApiError(503, "the server is still starting; retry in a moment", "server_error", "starting")
    return ctx


Context = Annotated[ServeContext, Depends(get_context)]
"""A route's parameter ``ctx: Context`` is the server's :class:`~demod_voice.serve.core.ServeContext`."""


@functools.cache
def require(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the request's key must have ``scope`` (anyone may, on a server without keys). One function per
    scope, so FastAPI checks it once per request however many times a route's dependencies name it."""

    async def dependency(request: Request) -> Caller:
        return authorize(get_context(request).keys, request.headers.get("authorization"), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


Speaker = Annotated[Caller, Depends(require("speak"))]
"""The caller of a route every ``speak`` key may use (FastAPI caches it per request: checked once)."""

Enroller = Annotated[Caller, Depends(require("enroll"))]
"""The caller of a route that makes or changes voices (``enroll`` keys); enrolled voices count against its key."""
