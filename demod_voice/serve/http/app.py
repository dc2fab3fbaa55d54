"""The FastAPI application: routers, error answers, CORS, metrics, and a lifespan that owns the engine.

``create_app`` builds the app around a config; the lifespan starts the
:class:`~demod_voice.engine.service.EngineService` (or uses the one given, for tests), preloads
voices, and on shutdown drains: new requests get 503, running ones get ``serve.grace_seconds``,
then the engine stops its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from demod_voice import __version__
from demod_voice.audio.writer import FULL_ERRNOS
from demod_voice.config import Config
from demod_voice.engine.service import EngineService
from demod_voice.errors import DemodVoiceError
from demod_voice.serve.auth import AuthFailed
from demod_voice.serve.clients import ClientAddress, trusted_proxies
from demod_voice.serve.core import build_context
from demod_voice.serve.errors import ApiError, from_engine, quoted
from demod_voice.serve.http import batch as jobs_api
from demod_voice.serve.http import books as books_api
from demod_voice.serve.http import conversions, job_store
from demod_voice.serve.http import lexicons as lexicons_api
from demod_voice.serve.http import speech as openai
from demod_voice.serve.http import voices as voices_api
from demod_voice.serve.http.api_docs import add_docs
from demod_voice.serve.http.batch import resume_jobs, stop_jobs
from demod_voice.serve.http.batch_jobs import BATCH
from demod_voice.serve.http.book_jobs import BOOK, resume_books
from demod_voice.serve.http.deps import Context
from demod_voice.serve.http.guard import BodyTooLarge, Guard, check_exposure
from demod_voice.serve.http.refusals import RefusalLog
from demod_voice.serve.http.streaming import StartFailed, quiet_uvicorn
from demod_voice.serve.limits import media_type
from demod_voice.serve.metrics import Metrics, RequestCounter
from demod_voice.serve.voices import piper_voices, resolve_voice, say_missing_default

log = logging.getLogger(__name__)

EXPOSED_HEADERS = ("Retry-After", "X-Sample-Rate", "Content-Disposition")
"""Response headers a listed origin's page may read besides the safelisted ones: a 429's wait, a stream's rate, a
download's file name (a browser hides every other header from the page)."""
OPENAI_VOICES = "/v1/audio/voices"
"""Where OpenAI's client creates and deletes custom voices (``client.audio.voices.create``); here it only lists voices."""
SDK_HEADERS = ("X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch", "X-Stainless-Runtime",
               "X-Stainless-Runtime-Version", "X-Stainless-Retry-Count", "X-Stainless-Timeout", "X-Stainless-Read-Timeout",
               "X-Stainless-Async", "X-Stainless-Helper-Method", "OpenAI-Organization", "OpenAI-Project")
"""Headers the official OpenAI clients send on every request (JavaScript's in a browser too): a CORS preflight that
refused them kept every browser app using the SDK from the server. Named one by one rather than ``*``: a page may not
set a header a proxy is trusted for (uvicorn believes ``X-Forwarded-*`` from loopback)."""


def create_app(config: Config, engine: Any = None, keys: Any = None, preload: Optional[tuple[str, ...]] = None,
               log_level: int = logging.WARNING, workers: Optional[int] = None,
               front_doors: Sequence[Callable[..., Awaitable[None]]] = (), insecure_no_auth: bool = False) -> FastAPI:
    """The app. ``engine``: an engine to use (left running at exit); ``None``: one is started and stopped here.
    ``front_doors``: other servers sharing the context (Wyoming), each awaited as ``door(ctx, stop=event)``
    in a task from start-up until ``event`` is set at shutdown. ``insecure_no_auth``: without keys, serve requests that
    came through a reverse proxy too (otherwise 403: the proxy lets other machines in)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            ctx = await asyncio.to_thread(_start, config, engine, keys, preload, log_level, workers)
        except DemodVoiceError as err:  # said by ``serve`` as its one-line error (uvicorn would print a traceback)
            app.state.start_error = err
            raise StartFailed(str(err)) from None
        app.state.ctx = ctx
        stop = asyncio.Event()
        tasks = [asyncio.create_task(door(ctx, stop=stop)) for door in front_doors]
        for task in tasks:
            task.add_done_callback(partial(_door_ended, app))
        tasks.append(asyncio.create_task(job_store.expire_while_running(ctx, (BATCH, BOOK), stop)))
        try:
            yield
        finally:
            ctx.draining.set()
            stop.set()
            if tasks:
                await asyncio.wait(tasks, timeout=config.serve.grace_seconds + 5)
            await asyncio.to_thread(_stop, ctx, engine is None)

    quiet_uvicorn()  # a streamed answer cut short ends broken, said in one line, not uvicorn's traceback
    app = FastAPI(title="demod-voice", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Text to speech (Piper, XTTS-v2) with an OpenAI-compatible speech API and voice enrollment.")
    add_docs(app)  # Swagger UI's files pinned and checked (api_docs.py)
    app.include_router(openai.router)
    app.include_router(voices_api.router)
    app.include_router(voices_api.manage)
    app.include_router(jobs_api.router)
    app.include_router(books_api.router)
    app.include_router(lexicons_api.router)
    app.include_router(conversions.router)
    _health_routes(app)
    _error_handlers(app)
    check_exposure(config.serve, keys is not None)
    trusted_proxies(config.serve)  # an entry that is no address stops the start in words, not at the first request
    app.add_middleware(Guard, settings=config.serve, keys=keys, insecure_no_auth=insecure_no_auth)
    if config.serve.cors_origins:
        # Outside the guard: its refusals (a bad key, a body too large) went out without CORS headers, and the browser
        # hid them from the page ("Failed to fetch"). A preflight it answers itself carries no key and reaches nothing.
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.serve.cors_origins), allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", *SDK_HEADERS], expose_headers=EXPOSED_HEADERS)
    # Outside the guard: its refusals (a bad key, a foreign host or origin, a body too large) are counted too, and said
    # in the log at -v (refusals.py).
    app.add_middleware(RequestCounter)
    app.add_middleware(RefusalLog)
    # Outermost: who the request is from (a trusted proxy's client, the socket's peer otherwise), for every check after.
    app.add_middleware(ClientAddress, settings=config.serve)
    return app


def _door_ended(app: FastAPI, task: asyncio.Task) -> None:
    """A front door that failed (Wyoming could not be announced) stops the whole server, which then exits with
    its error (``app.state.door_error``): a supervisor must see a failure, not a clean stop."""
    if task.cancelled() or task.exception() is None:
        return
    app.state.door_error = task.exception()
    log.info("a front door failed (%s); stopping the server", app.state.door_error)
    signal.raise_signal(signal.SIGTERM)  # drains what HTTP is answering, as any stop does


def _start(config: Config, engine: Any, keys: Any, preload: Optional[tuple[str, ...]], log_level: int, workers: Optional[int]) -> Any:
    """Engine, context, metrics, preloading, batch jobs left unfinished by the last run (on a thread: it may block)."""
    if engine is None:
        engine = EngineService(config.engine, workers=workers or config.serve.workers, log_level=log_level)
    ctx = build_context(config, engine, log_level, keys, Metrics(engine), preload)
    say_missing_default(ctx)
    for name in ctx.preload:
        choice = resolve_voice(ctx, name, name) if name in _piper_names(ctx) else resolve_voice(ctx, "", name)
        ctx.preload_specs.append(choice.spec)
        engine.preload(choice.spec)
        log.info("preloading %s", name)
    resume_jobs(ctx)
    resume_books(ctx)
    return ctx


def _piper_names(ctx: Any) -> set[str]:
    return set(piper_voices(ctx))


def _stop(ctx: Any, owned: bool) -> None:
    if owned:
        ctx.engine.shutdown(grace=0.0)  # uvicorn has already given requests their grace period
    stop_jobs(ctx)


def _health_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        """Alive."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(ctx: Context) -> JSONResponse:
        """Ready once the preloaded voices are loaded (and not draining)."""
        # each voice as --preload names it: their models' file names said 'xtts-v2' twice for 'alloy' and 'nova'
        preloaded = list(zip(ctx.preload, ctx.preload_specs, strict=False))
        waiting = [name for name, spec in preloaded if not ctx.engine.is_ready(spec)]
        if ctx.draining.is_set():
            return JSONResponse({"status": "draining"}, status_code=503)
        failed = [name for name, spec in preloaded if ctx.engine.load_failed(spec)]
        if failed:  # not 'loading': nothing is, and the server's log says why
            return JSONResponse({"status": "failed", "failed": failed, "waiting_for": waiting}, status_code=503)
        looping = [name for name, spec in preloaded if ctx.engine.crash_looping(spec)]
        if looping:  # not 'loading' nor 'ready' (a worker may be up for a moment): its workers keep dying, the log says why
            return JSONResponse({"status": "crash_loop", "crash_loop": looping, "waiting_for": waiting}, status_code=503)
        if waiting:
            return JSONResponse({"status": "loading", "waiting_for": waiting}, status_code=503)
        capped = [name for name, spec in preloaded if ctx.engine.over_memory_cap(spec)]
        if capped:  # loaded, but each request for it ends for engine.worker_memory_cap_mb: the log says to raise it
            return JSONResponse({"status": "over_memory_cap", "over_memory_cap": capped}, status_code=503)
        return JSONResponse({"status": "ready", "models": [p.spec.model.rsplit("/", 1)[-1] for p in ctx.engine.pools() if p.ready]})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(ctx: Context) -> Response:
        """Prometheus text format."""
        body, kind = ctx.metrics.render()
        return Response(body, media_type=kind)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, err: BodyTooLarge) -> JSONResponse:
        problem = err.api_error()
        return JSONResponse(problem.body(), status_code=problem.status, headers={"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (no such route, a body it could not parse) in the API's error shape.
        kind = "invalid_request_error" if err.status_code < 500 else "server_error"
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        headers = dict(err.headers or {})
        body = ApiError(err.status_code, _starlette_message(request, err.status_code, str(err.detail), headers), kind, code).body()
        return JSONResponse(body, status_code=err.status_code, headers=headers)

    @app.exception_handler(AuthFailed)
    async def auth_failed(request: Request, err: AuthFailed) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
        body = ApiError(err.status, str(err), "authentication_error" if err.status == 401 else "permission_error", err.code).body()
        return JSONResponse(body, status_code=err.status, headers=headers)

    @app.exception_handler(DemodVoiceError)
    async def engine_error(request: Request, err: DemodVoiceError) -> JSONResponse:
        problem = from_engine(err)
        return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(ApiError(400, _validation_message(err), code="invalid_request").body(), status_code=400)

    @app.exception_handler(OSError)
    async def disk_full(request: Request, err: OSError) -> JSONResponse:
        # a full data folder (a book's job.json, its result.zip, an upload) was a bare 500 "Internal Server Error" with a
        # traceback per request; anything else stays the internal error it is
        if err.errno not in FULL_ERRNOS:
            raise err
        log.warning("%s %s: the server's disk is full (%s); free some space in its data folder", request.method,
                    quoted(request.url.path), err.strerror)
        problem = ApiError(507, "the server has no disk space left for this request; try again later (its administrator "
                                "must free some)", "server_error", "disk_full")
        return JSONResponse(problem.body(), status_code=problem.status)


def _starlette_message(request: Request, status: int, detail: str, headers: dict[str, str]) -> str:
    """Starlette's refusal in words that say what to do: its own were "Not Found" and "Method Not Allowed" (an app
    that guessed ``PATCH /v1/voices/ID`` or a path with a typo learnt nothing from them)."""
    asked = f"{request.method} {quoted(request.url.path)}"
    if status == 400:
        return _unreadable(request, detail)
    if status in (404, 405) and request.method in ("POST", "DELETE") and request.url.path.rstrip("/").startswith(OPENAI_VOICES):
        # the OpenAI client's audio.voices.create / delete: "it takes GET" left the app to find the enrollment routes
        return (f"{asked} is OpenAI's custom-voice route, which this server does not offer: enroll a voice with POST "
                "/v1/voices (multipart 'name' and 'files') and delete it with DELETE /v1/voices/ID (see /docs)")
    if status == 404 and detail == "Not Found":
        if _under_v1(request):
            return (f"there is no {asked} here: the API is under /v1 ({request.method} /v1{quoted(request.url.path)}); "
                    "an OpenAI client's base_url ends in /v1")
        return f"there is no {asked} here: the routes are listed at /docs (OpenAPI: /openapi.json)"
    if status == 405 and detail == "Method Not Allowed":
        allowed = _methods_of(request)
        if allowed:  # Starlette's Allow names the first route of the path only (one route per method here)
            headers["Allow"] = ", ".join(allowed)
        return f"{asked} is not a method this route takes" + (f": it takes {', '.join(allowed)}" if allowed else "") + " (see /docs)"
    return detail


def _methods_of(request: Request) -> list[str]:
    """Every method some route of the request's path takes (each asked of the routes as the same request would be)."""
    from starlette.routing import Match

    return [method for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)]


def _under_v1(request: Request) -> bool:
    """Whether the path names a route once ``/v1`` is put before it: the mistake of an OpenAI client whose ``base_url``
    is the server's address alone."""
    from starlette.routing import Match

    path = request.url.path
    if path.startswith("/v1/"):
        return False
    scope = {**request.scope, "path": "/v1" + path}
    return any(route.matches(scope)[0] != Match.NONE for route in request.app.routes)


def _unreadable(request: Request, detail: str) -> str:
    """Starlette's words for a body it could not parse, as what to send instead."""
    if media_type(request.headers.get("content-type")).startswith("multipart/"):
        return "the upload is not a valid multipart/form-data body: send the files as a form (curl -F 'files=@ref.wav')"
    if detail.startswith("There was an error parsing the body"):
        return "the request body could not be read: send a JSON object in UTF-8 (Content-Type: application/json)"
    return detail


_KINDS = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false", "dict": "an object",
          "list": "a list", "none": "null"}


def _union_message(problems: list) -> Optional[str]:
    """For a field that takes several types, pydantic names each member in the location ('lexicon.dict[any,any]: Input
    should be a valid dictionary (and 2 more problem(s))'): one line naming the field and the types it takes."""
    first = [str(part) for part in problems[0].get("loc", ()) if part != "body"]
    if not first or not _is_type_tag(first[-1]):
        return None
    field = first[:-1]
    kinds = []
    for problem in problems:
        loc = [str(part) for part in problem.get("loc", ()) if part != "body"]
        if loc[:-1] == field and _is_type_tag(loc[-1]):
            kind = _KINDS.get(loc[-1].split("[", 1)[0].lower())
            if kind and kind not in kinds:
                kinds.append(kind)
    takes = f": it takes {', '.join(kinds[:-1])} or {kinds[-1]}" if len(kinds) > 1 else ""
    return f"'{'.'.join(field)}' is not of a type it takes{takes}"


def _is_type_tag(part: str) -> bool:
    return part.split("[", 1)[0].lower() in _KINDS or part.startswith(("function-", "json-or-python", "union["))


def _not_json(problem: dict) -> str:
    """Where a body stopped being JSON, and what to send (an object left to ``fetch`` unstringified arrives as "[object
    Object]", a Python dict sent as its ``str`` has single quotes)."""
    loc = problem.get("loc", ())
    at = f" at character {loc[-1]}" if len(loc) > 1 and isinstance(loc[-1], int) else ""
    why = str((problem.get("ctx") or {}).get("error", ""))[:80]
    return (f"the request body is not valid JSON{at}" + (f" ({why})" if why else "") +
            ": send a JSON object in UTF-8 (JSON.stringify in JavaScript, json.dumps in Python)")


def _validation_message(err: RequestValidationError) -> str:
    """One line from pydantic's list of problems."""
    problems = err.errors()
    if not problems:
        return "the request is not valid"
    first = problems[0]
    if first.get("type") == "json_invalid":
        return _not_json(first)
    if first.get("type") == openai.MISNAMED:
        return str(first.get("msg"))
    if tuple(first.get("loc", ())) == ("body",):  # not a JSON object at all (a string, a list, text/plain)
        return "the request body must be a JSON object (Content-Type: application/json)"
    union = _union_message(problems)
    if union is not None:
        return union
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"'{where}': {first.get('msg', 'invalid')}{more}"
