"""Running the Wyoming front door: the listening socket, mDNS discovery, and its two ways to run.

Beside HTTP it is one of the app's front doors (started and stopped by the app's lifespan, on the
same context and engine); with ``--no-http`` it runs alone with an engine of its own. Either way
SIGTERM drains: no new connections, answers in progress get ``serve.grace_seconds``, then the
rest are cancelled and the workers stopped. Nothing here imports the ``wyoming`` package before
:func:`check_installed` has said whether it is there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Optional
from urllib.parse import urlparse

from demod_voice.errors import DependencyError, InputError
from demod_voice.logs import say
from demod_voice.serve.core import cannot_listen, check_port_free, drain_signals, stop_named
from demod_voice.serve.http.connections import Refusals

log = logging.getLogger(__name__)

DEFAULT_URI = "tcp://127.0.0.1:10200"


def check_installed() -> None:
    """The ``wyoming`` extra."""
    import importlib.util

    if importlib.util.find_spec("wyoming") is None:
        raise DependencyError("serve --wyoming needs the wyoming package: pip install 'demod-voice[wyoming]'")


def wyoming_status() -> tuple[bool, str, str]:
    """For ``health``: (usable, what was found, how to fix it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = f"wyoming {version('wyoming')}"
    except PackageNotFoundError:
        return False, "wyoming is not installed (serve --wyoming needs it)", "pip install 'demod-voice[wyoming]'"
    try:
        found += f", zeroconf {version('zeroconf')}"
    except PackageNotFoundError:
        found += "; zeroconf missing (only --zeroconf needs it)"
    return True, found, ""


def is_loopback(uri: str) -> bool:
    """True for ``tcp://`` on a loopback address, and for ``unix://`` (local by nature)."""
    import ipaddress

    parsed = urlparse(uri)
    if parsed.scheme != "tcp":
        return True
    host = parsed.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_uri(uri: str) -> str:
    """``uri`` if the wyoming package can serve it; else :class:`InputError` saying what to give."""
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("tcp", "unix") or (parsed.scheme == "tcp" and (not parsed.hostname or port is None)):
        raise InputError(f"--wyoming {uri}: give tcp://HOST:PORT (such as {DEFAULT_URI}) or unix://PATH")
    return uri


class _Refused:
    """A connection over ``serve.max_connections``: closed at once (said as HTTP's are, :class:`Refusals`)."""

    said = Refusals("Wyoming: ")

    def __init__(self, writer: asyncio.StreamWriter, most: int) -> None:
        self.writer, self.most = writer, most

    async def run(self) -> None:
        _Refused.said.refused(time.monotonic(), self.most)
        self.writer.transport.abort()

    async def stop(self) -> None:
        self.writer.transport.abort()


class WyomingServer:
    """The listening socket and its connections."""

    def __init__(self, ctx: Any, options: Any) -> None:
        self.ctx = ctx
        self.options = options
        self.server: Any = None
        self.handlers: weakref.WeakSet = weakref.WeakSet()
        self._zeroconf: Any = None

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        from demod_voice.serve.wyoming.handler import WyomingHandler

        live = sum(1 for handler in list(self.handlers) if not handler.ended)
        if live >= self.ctx.settings.max_connections:  # each one held a file: a thousand took them all
            return _Refused(writer, self.ctx.settings.max_connections)
        handler = WyomingHandler(self.ctx, self.options, reader, writer)
        self.handlers.add(handler)
        return handler

    async def start(self) -> None:
        """Listen (and advertise when asked)."""
        from wyoming.server import AsyncServer

        uri = check_uri(self.options.uri)
        if self.options.zeroconf and is_loopback(uri):
            raise InputError(f"--zeroconf with {uri}: Home Assistant on another machine could not connect to a loopback "
                             "address; listen on tcp://0.0.0.0:PORT (no authentication: see docs/wyoming.md) or drop --zeroconf")
        if not is_loopback(uri):
            log.warning("Wyoming listens on %s: anyone who can reach it may use the voices (Wyoming has no authentication)", uri)
        self.server = AsyncServer.from_uri(uri)
        try:
            await self.server.start(self._handler)
        except OSError as err:
            raise cannot_listen(uri, err) from None
        if self.options.zeroconf:
            try:
                self._zeroconf = await advertise(uri, self.options.zeroconf)
            except BaseException:
                await self.server.stop()  # not announced: not serving either
                raise
        say(f"Wyoming on {uri}")

    def busy(self) -> int:
        """Connections with audio still to send."""
        return sum(1 for handler in list(self.handlers) if handler.busy())

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; let answers in progress finish for up to ``grace`` seconds; close every connection
        (cancelling the jobs left)."""
        if self.server is None:
            return
        listener = getattr(self.server, "_server", None)
        if listener is not None:
            listener.close()  # no new connections
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.busy() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        from demod_voice.serve.wyoming.handler import Draining

        cut = Draining("the server is shutting down and cut this answer short; try again in a moment")
        await asyncio.gather(*(handler.disconnect(cut) for handler in list(self.handlers)))
        await self.server.stop()
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
        log.info("Wyoming server stopped")


async def advertise(uri: str, name: str) -> Any:
    """Announce the server over mDNS as Home Assistant's Wyoming discovery expects; the handle to close it."""
    try:
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
    except ImportError:
        raise DependencyError("--zeroconf needs the zeroconf package: pip install 'demod-voice[wyoming]'") from None
    parsed = urlparse(uri)
    host = parsed.hostname or ""
    zeroconf = None
    try:
        if host in ("0.0.0.0", "::", ""):
            # Advertise the address other machines reach us on: the one on the route to the mDNS group.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect(("224.0.0.251", 5353))
                host = probe.getsockname()[0]
        zeroconf = AsyncZeroconf()
        info = AsyncServiceInfo("_wyoming._tcp.local.", f"{name}._wyoming._tcp.local.",
                                addresses=[socket.inet_aton(host)], port=parsed.port)
        await zeroconf.async_register_service(info)
    except OSError as err:  # no route to the mDNS group yet: a server started before the network is up
        if zeroconf is not None:
            await zeroconf.async_close()
        raise InputError(f"--zeroconf: could not announce the Wyoming server over mDNS ({err.strerror or err}); start it once "
                         "the network is up, or drop --zeroconf and add it in Home Assistant by host and port") from err
    log.info("Wyoming: advertised as %s on %s:%s", name, host, parsed.port)
    return zeroconf


async def run_wyoming(uri: str, ctx: Any, zeroconf: Optional[str] = None, stop: Optional[asyncio.Event] = None,
                      grace: Optional[float] = None, options: Any = None) -> None:
    """Serve Wyoming on ``uri`` with ``ctx`` (a :class:`~demod_voice.serve.core.ServeContext`) until ``stop`` is
    set or the task is cancelled; then drain for ``grace`` seconds (default ``serve.grace_seconds``)."""
    from demod_voice.serve.wyoming.handler import WyomingOptions

    options = replace(options or WyomingOptions(), uri=uri, zeroconf=zeroconf or getattr(options, "zeroconf", None))
    server = WyomingServer(ctx, options)
    await server.start()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop(ctx.settings.grace_seconds if grace is None else grace)


def _check_port_free(uri: str) -> None:
    """Fail before anything starts when the TCP port is taken (beside HTTP, a late failure would go unseen), or the
    ``unix://`` path is not free to take."""
    parsed = urlparse(uri)
    if parsed.scheme == "unix":
        _check_socket_path(parsed.path, uri)
        return
    if parsed.scheme != "tcp":
        return
    check_port_free(parsed.hostname or "", parsed.port or 0, uri)


def _check_socket_path(path: str, uri: str) -> None:
    """The wyoming package removes whatever is at a socket's path before it listens: a file given by mistake was
    deleted, and a second server took a live socket from the first. Only a socket nobody listens on is replaced."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise InputError(f"cannot listen on {uri} ({err.strerror or err}); give another path") from None
    if not stat.S_ISSOCK(mode):
        raise InputError(f"cannot listen on {uri}: that path is a file, not a socket; give a path where nothing is yet")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return  # left by a server that has stopped: taken over
    raise InputError(f"cannot listen on {uri}: another server is listening on it; stop it or give another path")


def wyoming_door(uri: str, zeroconf: Optional[str] = None) -> Callable[..., Any]:
    """The Wyoming server as a front door of the HTTP app (``door(ctx, stop=event)``), checked before start."""
    check_installed()
    check_uri(uri)
    _check_port_free(uri)
    if zeroconf and is_loopback(uri):
        raise InputError(f"--zeroconf with {uri}: Home Assistant on another machine could not connect to a loopback "
                         "address; listen on tcp://0.0.0.0:PORT (no authentication: see docs/wyoming.md) or drop --zeroconf")

    return partial(run_wyoming, uri, zeroconf=zeroconf)  # a failure stops the app, which exits with it


def serve_alone(uri: str, zeroconf: Optional[str], config: Any, preload: Optional[tuple[str, ...]], log_level: int) -> int:
    """``serve --wyoming URI --no-http``: an engine and a context of its own; SIGTERM or Ctrl-C drain, exit 0."""
    wyoming_door(uri, zeroconf)  # the same checks
    return asyncio.run(_alone(uri, zeroconf, config, preload, log_level))


async def _alone(uri: str, zeroconf: Optional[str], config: Any, preload: Optional[tuple[str, ...]], log_level: int) -> int:
    from demod_voice.engine.service import EngineService
    from demod_voice.serve.core import build_context
    from demod_voice.serve.voices import say_missing_default

    engine = EngineService(config.engine, workers=config.serve.workers, log_level=log_level)
    try:
        ctx = build_context(config, engine, log_level, preload=preload)
        say_missing_default(ctx)
        _preload(ctx)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in drain_signals():
            loop.add_signal_handler(sig, partial(_drain, ctx, stop, sig))
        await run_wyoming(uri, ctx, zeroconf, stop=stop)
    finally:
        await asyncio.to_thread(engine.shutdown, 0.0)
    return 0


def _drain(ctx: Any, stop: asyncio.Event, sig: int) -> None:
    if ctx.draining.is_set():
        return  # a closing terminal's shell and the terminal may both send SIGHUP
    log.log(logging.WARNING if sig == signal.SIGHUP else logging.INFO, "%s: draining: finishing answers in flight (up to %s s)",
            stop_named(sig), ctx.settings.grace_seconds)
    ctx.draining.set()
    stop.set()


def _preload(ctx: Any) -> None:
    from demod_voice.serve.voices import piper_voices, resolve_voice

    names = set(piper_voices(ctx))
    for name in ctx.preload:
        choice = resolve_voice(ctx, name, name) if name in names else resolve_voice(ctx, "", name)
        ctx.preload_specs.append(choice.spec)
        ctx.engine.preload(choice.spec)
        log.info("preloading %s", name)
