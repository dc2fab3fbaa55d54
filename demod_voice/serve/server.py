"""Running the server: options in, uvicorn on the app, SIGTERM drains, exit 0.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and gives the requests in flight
``serve.grace_seconds`` to finish; it then cancels them (their jobs are cancelled with them),
and the app's lifespan stops the engine and its workers. Workers die with the server however
it ends (the engine's executor asks the kernel to kill them when their parent goes).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.config import Config
from demod_voice.errors import RuntimeFailure
from demod_voice.logs import say
from demod_voice.serve.auth import keys_said
from demod_voice.serve.core import check_port_free, drain_signals, stop_named
from demod_voice.serve.http.connections import protocol
from demod_voice.serve.lexicons import check_configured
from demod_voice.serve.status import check_installed

log = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    """``demod-voice serve`` as typed values, built by the CLI."""

    config: Config
    """Effective configuration (flags already merged into ``config.serve``)."""
    insecure_no_auth: bool = False
    """Allow a non-loopback address without API keys."""
    preload: Optional[tuple[str, ...]] = None
    """Voices to load at start (``None``: ``serve.preload``)."""
    log_level: int = logging.WARNING
    """Log level of the server and its workers."""
    front_doors: list = field(default_factory=list)
    """Other servers started with this one on its context (Wyoming): async callables ``door(ctx, stop=event)``."""
    ui: bool = False
    """Also mount the web page at ``/ui`` (:mod:`demod_voice.serve.ui.mount`)."""
    config_file: Optional[Path] = None
    """The config file read (``None``: none): its keys (``serve.keys``) are warned about when other users can read it."""


def run(options: ServeOptions) -> int:
    """Serve until SIGTERM or Ctrl-C; return the exit code."""
    check_installed()
    import uvicorn

    from demod_voice.serve.auth import check_bind, check_config_file, load_keys, warn_exposure
    from demod_voice.serve.clients import warn_unlisted
    from demod_voice.serve.http.app import create_app

    settings = options.config.serve
    keys = load_keys(settings)
    check_config_file(options.config_file)
    check_bind(settings.host, keys, options.insecure_no_auth)
    warn_exposure(settings.host, keys)
    warn_unlisted(settings)
    check_configured(options.config)
    check_port_free(settings.host, settings.port, f"{settings.host}:{settings.port} (serve.port, --port)")
    app = create_app(options.config, keys=keys, preload=options.preload, log_level=options.log_level,
                     workers=settings.workers, front_doors=options.front_doors, insecure_no_auth=options.insecure_no_auth)
    if options.ui:
        from demod_voice.serve.ui.mount import mount_ui

        mount_ui(app, options.config)
    # proxy_headers off: the app reads X-Forwarded-For itself, from serve.trusted_proxies only, keeping the socket's peer
    # (serve/clients.py); uvicorn's own reading would replace the peer before the app saw it.
    uv_config = uvicorn.Config(app, host=settings.host, port=settings.port, lifespan="on", access_log=False, proxy_headers=False,
                               log_level=logging.getLevelName(max(options.log_level, logging.INFO)).lower(),
                               timeout_graceful_shutdown=settings.grace_seconds, log_config=None,
                               http=protocol(settings.header_timeout_seconds, settings.max_connections))
    server = _Server(uv_config, app)
    # uvicorn drains on SIGTERM/Ctrl-C (and here SIGHUP), then raises the signal again for the handler it found: for
    # the server a drained stop is a normal end (exit 0), so the handler it finds does nothing.
    previous = {sig: signal.signal(sig, _stopped) for sig in drain_signals()}
    try:
        server.run()
    except SystemExit as exit_:
        failed = getattr(app.state, "start_error", None)
        if failed is not None:  # the app's start-up refused (a --preload voice that does not exist): its own words
            raise failed from None
        raise RuntimeFailure(f"could not serve on {settings.host}:{settings.port} (is the port in use? see the message above)") from exit_
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = getattr(app.state, "door_error", None)
    if failed is not None:  # another front door (Wyoming) failed and stopped the server: its own words, not exit 0
        raise failed
    if not server.started:
        raise RuntimeFailure(f"the server did not start on {settings.host}:{settings.port} (see the message above)")
    return 0


def _stopped(sig: int, frame: Any) -> None:
    """The signal that stopped the server, raised again by uvicorn once it has drained."""


def _say_where(server: Any) -> None:
    """One line on stderr for each address the started uvicorn ``server`` listens on."""
    for listening in getattr(server, "servers", []):
        for sock in listening.sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed
            say(f"serving on http://{shown}:{port}")


@contextlib.contextmanager
def _hangup_to(handler: Any) -> Iterator[None]:
    """SIGHUP goes to ``handler`` in the block, unless it is ignored (``nohup``): uvicorn catches SIGTERM and Ctrl-C only,
    and SIGHUP's default action ended the server on the spot."""
    previous = {number: signal.signal(number, handler) for number in drain_signals() if number == signal.SIGHUP}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


class _Server:
    """uvicorn's server, which also says where it listens, and drains on a signal while it still listens.

    The first SIGTERM (or Ctrl-C) marks the app as draining: new requests get 503 ``shutting_down``
    and ``/readyz`` 503 (a load balancer sees it: the port still answers), while the requests in
    flight get ``serve.grace_seconds`` to finish. Once none is left, or the grace period is over,
    uvicorn stops listening and cancels what remains; a request still waiting for its first audio
    then gets 503 in JSON (:mod:`demod_voice.serve.http.guard`). A second signal stops at once."""

    def __new__(cls, config: Any, app: Any) -> Any:
        import uvicorn

        grace = float(config.timeout_graceful_shutdown or 0.0)

        class Server(uvicorn.Server):
            drain_started: Optional[float] = None

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                _say_where(self)
                ctx = getattr(app.state, "ctx", None)
                if ctx is not None and self.started:
                    say(keys_said(ctx.keys))

            def handle_exit(self, sig: int, frame: Any) -> None:
                ctx = getattr(app.state, "ctx", None)
                if sig == signal.SIGHUP and self.drain_started is not None:
                    return  # a closing terminal's shell and the terminal may both send one: not a second, insisting stop
                if self.drain_started is not None or ctx is None:
                    super().handle_exit(sig, frame)
                    return
                # marked first: a second signal may come while Event.set holds its lock (a signalled process group, and
                # `timeout` or a wrapper passing the signal on, send two at once); its handler then waited on that lock in
                # this same thread, for good: the server hung, listening and answering nothing
                self.drain_started = time.monotonic()
                ctx.draining.set()
                log.log(logging.WARNING if sig == signal.SIGHUP else logging.INFO,
                        "%s: draining: finishing requests in flight (up to %g s); new ones get 503", stop_named(sig), grace)

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                with super().capture_signals(), _hangup_to(self.handle_exit):
                    yield

            async def on_tick(self, counter: int) -> bool:
                if self.drain_started is not None and not self.should_exit:
                    left = grace - (time.monotonic() - self.drain_started)
                    if app.state.ctx.in_flight == 0 or left <= 0:
                        self.config.timeout_graceful_shutdown = max(0.1, left)  # what uvicorn still waits before cancelling
                        self.should_exit = True
                return await super().on_tick(counter)

        return Server(config)
