"""The first thing every HTTP request meets, API and web page alike: checks on its headers, before
any route or dependency reads a byte of its body.

FastAPI reads (and parses) a JSON body before it runs a route's dependencies, and a route reads a
form when it asks for it; either way a body can be read before the request is refused. So the
refusals that need only the headers happen here, in an ASGI middleware:

1. ``Host`` must name this server: an IP address (DNS rebinding needs a name), ``localhost``,
   ``serve.host``, or a name in ``serve.allowed_hosts`` (400 ``bad_host``). A web page the user
   visits cannot then drive a loopback server through a name it points at ``127.0.0.1``.
2. A state-changing request (anything but GET, HEAD, OPTIONS) whose ``Origin`` (or, without one,
   ``Referer``) is another site's is refused (403 ``cross_origin``), unless that origin is in
   ``serve.cors_origins`` or ``serve.trusted_origins``. A cross-site form post needs no CORS
   preflight, so CORS alone would not stop it. Clients that are not browsers send neither header.
3. While the server drains, everything but the probes gets 503 ``shutting_down``; a request still
   without a response when its task is cancelled at the end of the grace period gets the same,
   in JSON, not a bare 500.
4. A server without keys refuses everything but the probes that carries a reverse proxy's headers (403
   ``keys_needed_behind_proxy``): it listens on loopback so that no other machine may use it, and a proxy on the same
   machine let every machine in (``--insecure-no-auth`` serves them). API routes (``/v1/``) need a valid key when the
   server has keys (401, before the body); the
   scope a route needs is checked by its router (:mod:`demod_voice.serve.http.deps`). An address that sent too many
   wrong keys of late gets 429 (:mod:`demod_voice.serve.throttle`).
5. A route that reads a form (:data:`FORM_ROUTES`) sent anything else larger than a JSON body may be is refused
   (415 ``not_a_form``): a recording posted as the raw body was answered 413 "JSON bodies with up to 4096 characters
   of text" (a smaller one gets its 415 from the route, after the key's scope: 403 first).
6. A body announced longer than the request may be (``Content-Length``) is refused (413), and a
   body without a length (chunked) is counted as it is read and cut off at the same size.

Body sizes: a multipart upload (the page's under ``/ui`` among them) may be
``serve.limits.max_upload_mb`` + 1 MB; a lexicon (``PUT /v1/lexicons/NAME``) 1 MiB; any other body 64 KiB + 12 bytes
per character of ``serve.limits.max_input_chars`` (JSON escapes a character in at most 12 bytes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any, Optional
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException

from demod_voice.errors import ConfigError
from demod_voice.serve import clients
from demod_voice.serve.auth import AuthFailed
from demod_voice.serve.clients import host_name
from demod_voice.serve.errors import ApiError, quoted
from demod_voice.serve.http.streaming import StreamBroken
from demod_voice.serve.limits import FORM_ROUTES, FORM_TYPES, media_type, not_a_form, upload_limit
from demod_voice.serve.throttle import TooManyFailedKeys, check_key

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/v1/"
LEXICONS = "/v1/lexicons/"
LEXICON_BYTES = 1 << 20
"""A lexicon's body (``PUT /v1/lexicons/NAME``), as ``serve.http.lexicons.MAX_BODY``."""
JSON_BASE = 64 << 10
JSON_PER_CHAR = 12


class BodyTooLarge(HTTPException):
    """A body that grew past its limit while it was read (an HTTPException, so that FastAPI's body
    parsing lets it through instead of calling it a malformed body)."""

    def __init__(self, problem: ApiError) -> None:
        super().__init__(413, str(problem))
        self.problem = problem

    def api_error(self) -> ApiError:
        """The JSON answer."""
        return self.problem


def too_large(path: str, content_type: str, limits: Any, declared: Optional[int] = None) -> ApiError:
    """The 413 for a body over :func:`body_limit`: the limit in the setting's own terms (an upload's megabytes, a text's
    characters), and the body's size when it was announced."""
    size = f"the request body is {declared / 1e6:.1f} MB" if declared is not None else "the request body is too large"
    if path.startswith(LEXICONS):
        return ApiError(413, f"{size}; a lexicon may be at most {LEXICON_BYTES // 1024} KiB: split it", code="too_large")
    if is_upload(path, content_type):
        return ApiError(413, f"{size}; this server takes uploads of up to {limits.max_upload_mb:g} MB "
                             "(serve.limits.max_upload_mb)", code="upload_too_large")
    return ApiError(413, f"{size}; this server takes JSON bodies with up to {limits.max_input_chars} characters of text "
                         "(serve.limits.max_input_chars)", code="body_too_large")


def check_exposure(settings: Any, keyed: bool) -> None:
    """``*`` in ``serve.allowed_hosts``, ``serve.trusted_origins`` or ``serve.cors_origins`` opens the server to every web
    page: only with keys. (``cors_origins`` was not checked, though its ``*`` trusts every origin and lets every page read
    the answers too.)"""
    for name in ("allowed_hosts", "trusted_origins", "cors_origins"):
        if "*" in (getattr(settings, name) or ()) and not keyed:
            raise ConfigError(f"serve.{name} holds '*', which lets any web page drive this server; that needs API keys "
                              "(serve.keys or serve.keys_file): list the names instead, or configure keys")


def host_allowed(host: str, settings: Any) -> bool:
    """Whether a request's ``Host`` names this server (see the module docstring)."""
    name = host_name(host)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost" or name == host_name(str(settings.host)):
        return True
    for entry in settings.allowed_hosts or ():
        entry = str(entry).strip().lower().rstrip(".")
        if entry == "*" or name == entry or (entry.startswith(".") and (name == entry[1:] or name.endswith(entry))):
            return True
    return False


def origin_allowed(origin: str, host: str, settings: Any) -> bool:
    """Whether a state-changing request from a page at ``origin`` may reach a server it addressed as ``host``."""
    origin = origin.strip().rstrip("/")
    trusted = [str(o).strip().rstrip("/") for o in (settings.trusted_origins or ())] + \
              [str(o).strip().rstrip("/") for o in (settings.cors_origins or ())]
    if "*" in trusted or origin in trusted:
        return True
    if origin in ("", "null"):
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:  # "http://[::1": no page's origin (it was a 500 and a traceback in the log, keyless)
        return False
    # Same site: the page came from this server (by the same name and port it is addressed by now). The scheme
    # is not compared: behind a TLS proxy the page is https and the request reaches us as http.
    return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()


def is_upload(path: str, content_type: str) -> bool:
    """A multipart body (the page's uploads among them): limited by ``serve.limits.max_upload_mb``. The page's event
    calls are JSON and get a JSON body's limit: Gradio keeps every input a session sent for as long as it keeps the
    session (up to 10,000 of them, none ever closed), so a keyless call of 26 MB of text was 26 MB of the server's memory."""
    return media_type(content_type).startswith("multipart/")


def body_limit(path: str, content_type: str, limits: Any) -> int:
    """Bytes the body of a request may hold (see the module docstring)."""
    if is_upload(path, content_type):
        return upload_limit(limits) + 1_000_000
    if path.startswith(LEXICONS):  # its own cap (1 MiB, the route's): 10,000 entries; a speech text's made it ~113 KB
        return LEXICON_BYTES
    return JSON_BASE + JSON_PER_CHAR * limits.max_input_chars


STALL_GRACE = 35.0
"""Seconds past ``serve.limits.deadline_seconds`` that one piece of any answer may wait on a client that takes none of it:
past every answer's own bound (a speech stream's ``SEND_GRACE``, the page player's ``READ_GRACE``), for the answers that
have none. A file answer (a batch's or a book's zip, a voice's download) sent to a client that never read held its
connection for as long as the client kept it open."""
KEY_SHARE = 4
"""One API key may have at most ``serve.max_connections`` // this many requests open at once (a quarter)."""


class Guard:
    """The ASGI middleware (outermost but for the request counter, CORS where configured, and Starlette's own error handler)."""

    def __init__(self, app: Any, settings: Any, keys: Any = None, insecure_no_auth: bool = False) -> None:
        self.app = app
        self.settings = settings
        self.keys = keys
        self.insecure_no_auth = insecure_no_auth
        """Whether a server without keys was opened to other machines in so many words (``--insecure-no-auth``)."""
        self.open: dict[str, int] = {}
        """Requests being answered, by the owner id of their key (:meth:`_per_key`)."""
        self.told_shared = False
        """Whether the log has said that clients come through a proxy that hides their addresses."""
        self.told_unlisted = False
        """Whether the log has said that a peer not in ``serve.trusted_proxies`` sent proxy headers."""
        self.told_open = False
        """Whether the log has said that a server without keys refuses what comes through a proxy."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        self._say_proxy(clients.of(scope))  # before any refusal: a guesser through a proxy may get nothing else
        problem = self._refusal(scope, headers)
        if problem is not None:
            if scope["type"] == "http":
                await _answer(send, problem)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path, kind = scope.get("path", ""), headers.get("content-type", "")
        limit = body_limit(path, kind, self.settings.limits)
        owner = self._owner(scope, headers)
        if owner is not None:
            most = max(2, self.settings.max_connections // KEY_SHARE)
            if self.open.get(owner, 0) >= most:
                await _answer(send, ApiError(429, f"this API key has {most} requests open at once, as many as one key may "
                                                  f"(a quarter of serve.max_connections): wait for some to finish",
                                             "rate_limit_error", "too_many_open", {"Retry-After": "5"}))
                return
            self.open[owner] = self.open.get(owner, 0) + 1
        try:
            await self._run(scope, _capped(receive, limit, lambda: too_large(path, kind, self.settings.limits)), send)
        finally:
            if owner is not None:
                self.open[owner] -= 1
                if not self.open[owner]:
                    del self.open[owner]

    def _owner(self, scope: dict, headers: dict[str, str]) -> Optional[str]:
        """The owner id of an API request's key (already found valid by :meth:`_refusal`), to bound what one key holds
        open: one ``speak`` key's event streams of a running batch, or result downloads it never read, held every one
        of ``serve.max_connections`` and locked every other key out. ``None`` for anything else (the page's streams have
        their own bound; a server without keys listens on loopback only)."""
        if self.keys is None or not scope.get("path", "").startswith(API_PREFIX) or scope.get("method") == "OPTIONS":
            return None
        return self.keys.identify(headers.get("authorization"))[0]

    def _refusal(self, scope: dict, headers: dict[str, str]) -> Optional[ApiError]:
        """The refusal the headers alone call for, or ``None``."""
        path = scope.get("path", "")
        method = scope.get("method", "GET").upper()
        problem = self._foreign(method, headers)
        if problem is not None:
            return problem
        if self.keys is None and not self.insecure_no_auth and path not in PROBES and clients.of(scope).proxied:
            return ApiError(403, "this server has no API keys, and this request came through a reverse proxy, which lets "
                                 "other machines in: its administrator must configure serve.keys_file (docs/security.md), or "
                                 "start it with --insecure-no-auth to serve whoever the proxy lets through",
                            "permission_error", "keys_needed_behind_proxy")
        ctx = _context(scope)
        if ctx is not None and ctx.draining.is_set() and path not in PROBES:
            return ApiError(503, "the server is shutting down; retry on another instance", "server_error", "shutting_down")
        if path.startswith(API_PREFIX) and self.keys is not None and method != "OPTIONS":  # CORS preflights carry no key
            try:
                self._identify(scope, headers)
            except TooManyFailedKeys as err:
                return ApiError(429, str(err), "rate_limit_error", err.code, {"Retry-After": str(err.wait)})
            except AuthFailed as err:
                return ApiError(err.status, str(err), "authentication_error", err.code, {"WWW-Authenticate": "Bearer"})
        return self._oversized(path, headers)

    def _identify(self, scope: dict, headers: dict[str, str]) -> tuple[str, frozenset[str]]:
        """The request's key, checked through the server's count of wrong keys by address (a client could try keys as
        fast as it liked: serve.limits.max_failed_keys)."""
        authorization = headers.get("authorization")
        failed = getattr(_context(scope), "failed_keys", None)
        return check_key(failed, clients.of(scope), authorization, lambda: self.keys.identify(authorization))

    def _say_proxy(self, client: clients.Client) -> None:
        """Say once that a server without keys refuses what comes through a proxy, once that clients come through a
        proxy that does not say who they are, and once that a peer not trusted as a proxy sent proxy headers
        (:mod:`demod_voice.serve.clients`)."""
        if client.proxied and self.keys is None and not self.insecure_no_auth:
            if not self.told_open:  # (it refuses them all: how it would count them does not matter)
                self.told_open = True
                log.warning("a request came through a reverse proxy (it carries proxy headers), and this server has no "
                            "API keys: requests through a proxy are refused (403), as other machines reach the server "
                            "through it; configure serve.keys_file (docs/security.md), or pass --insecure-no-auth to "
                            "serve them without keys")
            return
        if client.shared and not self.told_shared:
            self.told_shared = True
            log.warning("requests come through a proxy at %s that does not say whose they are (no X-Forwarded-For): every "
                        "client behind it has one address, so their wrong keys are counted together (%d times "
                        "serve.limits.max_failed_keys) and the web page's share of connections is not split per client; "
                        "have the proxy set it to the client's address (nginx: proxy_set_header X-Forwarded-For "
                        "$remote_addr;)", client.address, clients.SHARED)
        if client.unlisted and not self.told_unlisted:
            self.told_unlisted = True
            log.warning("requests from %s carry proxy headers (X-Forwarded-For, X-Real-IP, Forwarded, Via), but it is not in "
                        "serve.trusted_proxies: they are not believed, and every client behind it counts as that one "
                        "address (one client's %d wrong keys in a minute lock the others out); if it is your reverse "
                        "proxy, add its address to serve.trusted_proxies", client.address,
                        self.settings.limits.max_failed_keys)

    def _foreign(self, method: str, headers: dict[str, str]) -> Optional[ApiError]:
        """A request addressed to another name (DNS rebinding), or a state change asked by another site's page."""
        host = headers.get("host", "")
        if "host" in headers and not host_allowed(host, self.settings):
            return ApiError(400, f"this server is not '{quoted(host_name(host))}': add the name to serve.allowed_hosts if "
                                 "clients reach it by that name", code="bad_host")
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None and headers.get("referer"):
            try:
                parts = urlsplit(headers["referer"])
                origin = f"{parts.scheme}://{parts.netloc}"
            except ValueError:  # unreadable: judged as it is (no page of ours), not a 500
                origin = headers["referer"]
        if origin is not None and not origin_allowed(origin, host, self.settings):
            return ApiError(403, f"requests from pages at '{quoted(origin)}' are not accepted here: add the origin to "
                                 "serve.trusted_origins to allow it", "permission_error", "cross_origin")
        return None

    def _oversized(self, path: str, headers: dict[str, str]) -> Optional[ApiError]:
        """A body announced longer than this request may be."""
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.strip().isdigit():
            return ApiError(400, "the Content-Length header is not a number", code="bad_length")
        kind = headers.get("content-type", "")
        if int(declared) > body_limit(path, kind, self.settings.limits):
            if path.rstrip("/") in FORM_ROUTES and media_type(kind) not in FORM_TYPES:  # a recording as the raw body
                return not_a_form(path)  # not "JSON bodies with up to ..." (a smaller one gets its 415 from the route)
            return too_large(path, kind, self.settings.limits, int(declared))
        return None

    async def _run(self, scope: dict, receive: Any, send: Any) -> None:
        """Run the app; answer in JSON for a body cut off at its limit, or a request cancelled by the end of a drain."""
        started = False

        bounded = _stall_bounded(send, scope, self.settings.limits.deadline_seconds + STALL_GRACE)

        async def tracked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await bounded(message)

        ctx = _context(scope)
        counted = ctx is not None and scope.get("path") not in PROBES
        if counted:
            ctx.in_flight += 1
        try:
            await self.app(scope, receive, tracked)
        except BodyTooLarge as err:
            if not started:
                await _answer(send, err.api_error())
        except asyncio.CancelledError:
            if ctx is None or not ctx.draining.is_set():
                raise
            # uvicorn cancels what is left at the end of the grace period: an answer, not a traceback and a bare 500.
            log.info("%s %s cancelled at the end of the grace period", scope.get("method"), quoted(scope.get("path", ""), 200))
            if not started:
                await _answer(send, ApiError(503, "the server shut down before this request finished; retry on another "
                                                  "instance", "server_error", "shutting_down"))
        finally:
            if counted:
                ctx.in_flight -= 1


def _headers(scope: dict) -> dict[str, str]:
    """Request headers by lower-case name (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _context(scope: dict) -> Any:
    return getattr(getattr(scope.get("app"), "state", None), "ctx", None)


def _stall_bounded(send: Any, scope: dict, stall: float) -> Any:
    """``send`` whose each piece of a body waits at most ``stall`` seconds on its client (:data:`STALL_GRACE`); past it the
    answer is cut (:class:`StreamBroken`: uvicorn closes the connection, the reason said here in one line)."""

    async def bounded(message: dict) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        try:
            async with asyncio.timeout(stall):
                await send(message)
        except TimeoutError:
            log.warning("%s %s: its client took nothing for %g s; the answer was cut", scope.get("method"),
                        quoted(scope.get("path", ""), 200), stall)  # a client's path, escapes decoded: its printable part
            raise StreamBroken(f"the client took nothing for {stall:g} s") from None

    return bounded


def _capped(receive: Any, limit: int, problem: Any) -> Any:
    """``receive`` that raises :class:`BodyTooLarge` (``problem()``'s answer) once the body passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(problem())
        return message

    return wrapped


async def _answer(send: Any, problem: ApiError) -> None:
    """Send ``problem`` as the whole JSON response (the connection closes after it: its body is never read)."""
    body = json.dumps(problem.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
