"""What the page's routes check before Gradio sees a request: a key for uploads, and no file input outside the uploads.

Gradio's API (``{page}/gradio_api/queue/join``, ``call/...``, ``run/...``) takes an event's inputs
as JSON, and a file input there is a ``FileData`` object whose ``path`` the client writes. Gradio
copies whatever that path names into its cache (and serves the copy) unless its own check is on;
:class:`FileInputGuard` refuses such a request outright, before Gradio parses it, so a named
server path never reaches Gradio at all. The events check each file again
(:func:`demod_voice.serve.ui.actions.uploaded`), and Gradio's own check is on as well
(:func:`demod_voice.serve.ui.mount.mount_ui`): three layers, each enough on its own.

Gradio's file route (``file=``) also takes an ``http(s)://`` URL instead of a path, and then fetches it from the server
and streams it back, to anyone, without a key; :class:`FileInputGuard` refuses that too: the page shows only its own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

from fastapi.responses import JSONResponse

from demod_voice.audio.writer import free_bytes
from demod_voice.serve import auth, clients
from demod_voice.serve.errors import quoted
from demod_voice.serve.http.guard import body_limit
from demod_voice.serve.limits import media_type
from demod_voice.serve.throttle import TooManyFailedKeys, check_key
from demod_voice.serve.ui import scratch

log = logging.getLogger(__name__)

MAX_JSON = 2_000_000
"""Bytes of a JSON call to the page's API this guard reads (an event's inputs are text and file references)."""


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


QUEUE_SHARE = 8
"""One client may have at most this part of the places in Gradio's queue (``engine.max_queued``) waiting at once."""


def _ipv6_prefix(scope: dict) -> int:
    ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
    return getattr(getattr(ctx, "settings", None), "ipv6_prefix", 64)


EVENT_CALLS = ("queue/join", "run/", "api/", "call/", "reset", "cancel")
"""The page's event calls (after ``gradio_api/``): each event checks the key its inputs carry, as the API would."""


class KeyGuard:
    """With API keys, every other POST to the page's Gradio API needs a key with the ``speak`` scope, as the API's
    uploads do (the page's script sends the key field as ``Authorization`` with its uploads): file uploads, and
    Gradio's other routes that take a body (``process_recording`` re-encoded any upload with ffmpeg, keyless, and
    left the result in the page's folder). Without keys the server is loopback-only."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        path = scope.get("path", "")
        if scope["type"] == "http" and scope.get("method") == "POST" and path.startswith(self.prefix) \
                and not path[len(self.prefix):].startswith(EVENT_CALLS) and ctx is not None and ctx.keys is not None:
            headers = _headers(scope)
            authorization = headers.get("authorization")
            try:
                check_key(getattr(ctx, "failed_keys", None), clients.of(scope), authorization,
                          lambda: auth.authorize(ctx.keys, authorization, "speak"))
            except TooManyFailedKeys as err:
                await JSONResponse({"detail": str(err)}, status_code=429, headers={"Retry-After": str(err.wait)})(scope, receive, send)
                return
            except auth.AuthFailed as err:
                answer = JSONResponse({"detail": f"{err}; enter your key in the page's 'API key' field first"}, status_code=err.status)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UploadSpace:
    """The page's uploads (every POST to its Gradio API but an event call, as :class:`KeyGuard`) may fill its folder up to
    ``serve.limits.max_page_storage_mb``, counting the bodies still arriving; past it, 507 until older files go
    (:func:`demod_voice.serve.ui.scratch.used_bytes` removes them an hour after they were made). Gradio removes uploads
    after an hour but bounds nothing within it: a ``speak`` key (any client, on a server without keys) could fill the disk
    26 MB a request, as fast as the network carries them."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.arriving = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith(self.prefix) \
                or path[len(self.prefix):].startswith(EVENT_CALLS) or ctx is None:
            await self.app(scope, receive, send)
            return
        limits = ctx.settings.limits
        declared = _headers(scope).get("content-length", "")
        size = int(declared) if declared.isdigit() else body_limit(path, _headers(scope).get("content-type", ""), limits)
        used = await asyncio.to_thread(scratch.used_bytes)
        free = await asyncio.to_thread(free_bytes, scratch.folder())
        room = int(limits.max_page_storage_mb * 1_000_000)
        if used + self.arriving + size > room:  # no await between this check and the count: requests at once add up
            log.warning("web page: refused an upload, the page's files take %.0f MB of %g (serve.limits.max_page_storage_mb)",
                        (used + self.arriving) / 1e6, limits.max_page_storage_mb)
            await _full(scope, receive, send, "the page's upload space is full: try again in a while (its files are removed an "
                                              "hour after they were made), or ask the administrator to raise "
                                              "serve.limits.max_page_storage_mb")
            return
        if self.arriving + size > free:  # the disk itself: Gradio answered a bare 500 and left the upload half-written
            log.warning("web page: refused an upload, the disk of the page's files has %.1f MB free", free / 1e6)
            await _full(scope, receive, send, "the server's disk is full: try again later (its administrator must free some "
                                              "space)")
            return
        self.arriving += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.arriving -= size


async def _full(scope: dict, receive: Any, send: Any, detail: str) -> None:
    """507 with ``detail``, to try again in ten minutes."""
    await JSONResponse({"detail": detail}, status_code=507, headers={"Retry-After": "600"})(scope, receive, send)


UNUSED_ROUTES = ("gradio_api/custom_component/", "monitoring/", "gradio_api/deep_link/")
"""Gradio's routes (after the page's path) the page never asks for: ``custom_component/`` printed what a client wrote in
its path (up to the request line's limit, terminal escapes and all) on the server's standard output, keyless;
``monitoring/summary`` told any client, keyless, how often each of the page's actions ran, failed and how long it took;
``deep_link`` wrote a session's every input (its API key field among them, and whatever a keyless event call sent, up to
the page's body cap a call) to a new file in the page's folder for each new content, keyless and outside
``serve.limits.max_page_storage_mb``."""


class UnusedRoutes:
    """Answer 404 for :data:`UNUSED_ROUTES` before Gradio sees them (the page has no custom component)."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self.prefix) and (path[len(self.prefix):] + "/").startswith(UNUSED_ROUTES):
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class StreamGuard:
    """The page's requests (under ``prefix``, the page's path) may hold at most half of ``serve.max_connections``, and one
    client at most an eighth; over either, 503 with Retry-After. None needs a key: Gradio's streams (``heartbeat``,
    ``queue/data``) never end, and the page's files (31 MB of Gradio's own scripts among them) wait as long as a client
    takes nothing of them (``serve.limits.deadline_seconds`` + 35 s a piece, :data:`demod_voice.serve.http.guard.STALL_GRACE`).
    256 heartbeats, or 256 downloads of a large script never read (until 2026-12-07: only the streams were counted), held
    every connection and locked every keyed client out. Clients of a proxy that hides their addresses
    (:mod:`demod_voice.serve.clients`) have only the half: as one client they shared an eighth, which
    three busy tabs filled."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.open: dict[str, int] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")) or ctx is None:
            await self.app(scope, receive, send)
            return
        # behind a proxy that hides its clients' addresses all of them are one client: only the page's half holds
        who = clients.of(scope)
        shared = who.shared
        client = "(clients of a proxy)" if shared else clients.client_id(who.address, ctx.settings.ipv6_prefix)
        most = ctx.settings.max_connections
        if sum(self.open.values()) >= max(1, most // 2) or (not shared and self.open.get(client, 0) >= max(1, most // 8)):
            answer = JSONResponse({"detail": "too many of this page's requests are open; close some of its tabs, or try again "
                                             "in a minute"}, status_code=503, headers={"Retry-After": "60", "Connection": "close"})
            await answer(scope, receive, send)
            return
        self.open[client] = self.open.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1
            if not self.open[client]:
                del self.open[client]


def is_file_input(value: Any) -> bool:
    """A ``FileData`` as Gradio recognises one (a ``path`` and Gradio's type tag), or anything shaped like it."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return False
    meta = value.get("meta")
    return (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData") or "orig_name" in value or "url" in value


def foreign_files(value: Any, uploads: Path) -> int:
    """How many file inputs in ``value`` (a JSON document) point outside the folder ``uploads``."""
    if is_file_input(value):
        real = Path(os.path.realpath(value["path"]))
        return 0 if real.is_relative_to(uploads) else 1
    if isinstance(value, dict):
        return sum(foreign_files(item, uploads) for item in value.values())
    if isinstance(value, list):
        return sum(foreign_files(item, uploads) for item in value)
    return 0


def may_be_json(content_type: str) -> bool:
    """Whether FastAPI may read a body of ``content_type`` as JSON: when there is none, and for any spelling of a JSON
    type (it compares without regard to case, and takes ``application/...+json``). Only forms are left out: a form is
    never read as JSON, and the page's uploads (multipart) go to the upload route."""
    return media_type(content_type) not in ("multipart/form-data", "application/x-www-form-urlencoded")


FILE_ROUTES = ("file=", "file/")
"""Gradio's routes that serve a file (after ``gradio_api/``)."""
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")
"""What Gradio would fetch rather than read: a target that starts with a scheme (it fetches ``http://`` and ``https://``)."""


def names_a_url(rest: str) -> bool:
    """Whether a GET of ``gradio_api/`` + ``rest`` asks Gradio's file route for a URL."""
    return rest.startswith(FILE_ROUTES) and URL.match(rest[5:].lstrip()) is not None  # after "file=" or "file/"


class FileInputGuard:
    """Refuse (403) a JSON call to the page's API that names a file outside Gradio's upload folder, and a request for
    a URL from Gradio's file route: given one, Gradio fetched any public address from the server and streamed the
    answer back, to a client without a key (an open proxy; for a name that resolves to no public address it asked
    dns.google, naming the name). The page never asks for one."""

    def __init__(self, app: Any, prefix: str, uploads: Path) -> None:
        self.app = app
        self.prefix = prefix
        self.uploads = Path(os.path.realpath(uploads))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self.prefix) and names_a_url(path[len(self.prefix):]):
            refusal = JSONResponse({"detail": "the page serves only its own files: it fetches no URL"}, status_code=403)
            await refusal(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith(self.prefix) \
                or not may_be_json(_headers(scope).get("content-type", "")):
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive)
        refusal = self._check(body)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    def _check(self, body: bytes) -> Any:
        if len(body) > MAX_JSON:
            return JSONResponse({"detail": f"a call to the page is limited to {MAX_JSON // 1_000_000} MB"}, status_code=413)
        try:
            document = json.loads(body)
            foreign = foreign_files(document, self.uploads)
        except (ValueError, RecursionError):
            return None  # not JSON Gradio can read either: it answers for itself
        if foreign:
            log.warning("web page: refused a call naming %d file(s) outside the upload folder", foreign)
            return JSONResponse({"detail": "a file input must be a file uploaded through this page; upload it again"}, status_code=403)
        return None


def _replay(messages: list[dict], receive: Any) -> Any:
    """A ``receive`` that gives ``messages`` (read already) again, then what is left of the request."""
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


CALLED = re.compile(r"(call/v2|call|run|api)/([^/]+)/?")
"""Gradio's routes (after ``gradio_api/``) that call one of the page's events by its name."""


class EventCalls:
    """A script's call to an event the page does not have, or with arguments the event does not take, answered 404 or 400
    with a line that says what to send. Gradio answered each with a bare 500 "Internal Server Error" (and nothing in the
    log): an unknown name (``call/v2/NAME``, ``call/NAME``, ``run/NAME``), an unknown ``fn_index``, an argument
    ``call/v2`` does not take, or one it needs left out. ``blocks`` is the page, built already."""

    def __init__(self, app: Any, prefix: str, blocks: Any) -> None:
        self.app = app
        self.prefix = prefix
        self.blocks = blocks
        self.parameters: dict[str, list[dict]] = {}
        """``call/v2``'s events (Gradio's API description's names, without their ``/``) and their parameters."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        rest = path[len(self.prefix):] if path.startswith(self.prefix) else ""
        called = CALLED.fullmatch(rest)
        if scope["type"] != "http" or scope.get("method") != "POST" or not (called or rest == "queue/join"):
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive)
        try:
            document = json.loads(body) if len(body) <= MAX_JSON else None
        except (ValueError, RecursionError):
            document = None  # not JSON: Gradio answers 422 for itself
        problem = self._problem(called.groups() if called else ("queue", ""), document) or self._crowded(scope)
        if problem is not None:
            headers = {"Retry-After": "5"} if problem[0] == 503 else None
            await JSONResponse({"detail": problem[1]}, status_code=problem[0], headers=headers)(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    def _crowded(self, scope: dict) -> Optional[tuple[int, str]]:
        """503 for a client that has its share (an eighth) of the places in Gradio's queue waiting already: one client's
        flood of calls filled the whole queue, and every other person's click was refused as "busy". Clients of a proxy
        that hides their addresses are one client: only the queue's own bound holds them."""
        queue = getattr(self.blocks, "_queue", None)
        size = getattr(queue, "max_size", None)
        who = clients.of(scope)
        if not size or who.shared:
            return None
        prefix = _ipv6_prefix(scope)
        me = clients.client_id(who.address, prefix)
        waiting = sum(1 for events in queue.event_queue_per_concurrency_id.values() for event in events.queue
                      if getattr(event, "request", None) is not None
                      and clients.client_id(clients.of(event.request.scope).address, prefix) == me)
        if waiting < max(1, size // QUEUE_SHARE):
            return None
        return 503, (f"this client has {waiting} calls waiting for the page already, its share of the server's queue: wait "
                     "for them to finish, then try again")

    def _problem(self, route: tuple[str, str], document: Any) -> Optional[tuple[int, str]]:
        """(status, what to do) for a call Gradio would fail on, ``None`` for one it can take."""
        kind, name = route
        listed = f"the events a script may call are listed at {self.prefix}info"
        index = document.get("fn_index") if isinstance(document, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and index not in self.blocks.fns:
            return 404, f"the page has no event number {index} (fn_index): {listed}"
        if kind == "call/v2":
            return self._arguments(name, document, listed)
        if kind != "queue" and index is None and name not in {fn.api_name for fn in self.blocks.fns.values()}:
            return 404, f"the page has no event '{quoted(name, 60)}': {listed}"
        return None

    def _arguments(self, name: str, document: Any, listed: str) -> Optional[tuple[int, str]]:
        if not self.parameters:
            self.parameters = {key.lstrip("/"): info["parameters"] for key, info in self.blocks.get_api_info()["named_endpoints"].items()}
        if name not in self.parameters:
            return 404, f"the page has no event '{quoted(name, 60)}' to call by call/v2: {listed}"
        if not isinstance(document, dict):
            return None  # not an object: Gradio answers 422 for itself
        takes = [p.get("parameter_name") or "" for p in self.parameters[name]]
        extra = [key for key in document if key not in takes and key != "oauth_token"]
        needed = [p.get("parameter_name") or "" for p in self.parameters[name] if not p.get("parameter_has_default")]
        missing = [key for key in needed if key not in document]
        if not extra and not missing:
            return None
        takes_what = f"it takes {', '.join(takes)}" if takes else "it takes none"
        if extra:
            return 400, f"the event '{name}' takes no argument '{quoted(extra[0], 60)}': {takes_what}, as a JSON object of those names"
        return 400, f"the event '{name}' needs '{missing[0]}': {takes_what}, as a JSON object of those names"


async def _read(receive: Any) -> tuple[list[dict], bytes]:
    """The request's body messages (to replay) and its bytes, reading no more than :data:`MAX_JSON` + 1."""
    messages, size, parts = [], 0, []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > MAX_JSON or not message.get("more_body"):
            break
    return messages, b"".join(parts)


class PageHeaders:
    """The page's answers (under ``prefix``): not to be framed by another site's page (``frame-ancestors``: this
    server and ``serve.trusted_origins``, for a dashboard that embeds the page; ``X-Frame-Options: SAMEORIGIN`` too
    when none is trusted), and no cross-origin reads unless ``serve.cors_origins`` names the origin (Gradio allows
    any ``localhost`` page by itself; its ``Access-Control-*`` headers are dropped for other origins).

    An error Gradio raises after its answer began (its event stream for a session it does not know raises 404 once
    the stream has started) ends that answer with one line in the log (the traceback at ``-vv``), not a traceback that
    any client without a key could fill the log with."""

    def __init__(self, app: Any, prefix: str, settings: Any) -> None:
        self.app = app
        self.prefix = prefix
        trusted = [str(o).strip().rstrip("/") for o in (settings.trusted_origins or ())]
        self.cors = {str(o).strip().rstrip("/") for o in (settings.cors_origins or ())}
        self.frames = " ".join(["'self'", *(o for o in trusted if o and o != "*")])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin", "").strip().rstrip("/")
        shared = "*" in self.cors or origin in self.cors
        started = False
        if origin == f"https://{headers.get('host', '')}" and "x-forwarded-proto" not in headers and scope.get("scheme") == "http":
            # The page was loaded over https (a TLS proxy in front) that did not say so: Gradio wrote the links of the
            # files an event hands out (a profile, a batch's zip, a conversion) as http://, which the browser could not
            # fetch (the proxy's port speaks TLS; a plain port is mixed content). The page's own origin says it.
            scope = {**scope, "headers": [*scope.get("headers", []), (b"x-forwarded-proto", b"https")]}

        async def headed(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [(k, v) for k, v in message.get("headers", [])
                        if shared or not k.lower().startswith(b"access-control-")]
                kept = [(k, v) for k, v in kept
                        if k.lower() not in (b"x-frame-options", b"content-security-policy", b"x-content-type-options")]
                kept.append((b"content-security-policy", f"frame-ancestors {self.frames}".encode("latin-1")))
                if self.frames == "'self'":
                    kept.append((b"x-frame-options", b"SAMEORIGIN"))
                kept.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": kept}
            await send(message)

        try:
            await self.app(scope, receive, headed)
        except Exception as err:  # noqa: BLE001 - only once the answer began: before that, the server's error handler answers
            if not started:
                raise
            log.info("web page: %s %s failed after its answer began (%s)", scope.get("method"), quoted(path, 200),
                     type(err).__name__)  # the path as a client wrote it, escapes decoded: its printable part only
            log.debug("the page's error:", exc_info=True)
            with contextlib.suppress(Exception):  # end the answer (a finished one refuses this)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
