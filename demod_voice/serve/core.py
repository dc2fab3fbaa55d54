"""What every front door of ``serve`` shares: the engine, the config, where voices and jobs live.

HTTP routes, the Wyoming server and the web UI are all built on one :class:`ServeContext`,
made once at start-up by :func:`build_context` and closed once at shutdown.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.config import Config, ServeSettings, cache_root
from demod_voice.errors import InputError
from demod_voice.serve.auth import KeyRing
from demod_voice.serve.throttle import FailedKeys

log = logging.getLogger(__name__)


@dataclass
class ServeContext:
    """The server's state; one per process, built before the first request."""

    config: Config
    """Effective configuration (``config.serve`` is the server's own section)."""
    engine: Any
    """The :class:`~demod_voice.engine.service.EngineService` every request is submitted to."""
    cache: Path
    """The cache folder: installed Piper voices, voice profiles (``profiles/``), latents."""
    data_dir: Path
    """The server's own files: batch jobs (``batch/``), voice side-cars (``voices/``)."""
    log_level: int = logging.WARNING
    """Log level handed to workers."""
    keys: Optional[KeyRing] = None
    """The accepted API keys; ``None`` when the server runs without keys."""
    metrics: Any = None
    """The :class:`~demod_voice.serve.metrics.Metrics` of this server."""
    started: float = field(default_factory=time.time)
    """Start time (UNIX seconds)."""
    draining: threading.Event = field(default_factory=threading.Event)
    """Set on SIGTERM: new requests get 503 while the ones in flight finish."""
    preload: tuple[str, ...] = ()
    """Voices loaded at start (as named in requests); ``/readyz`` waits for them."""
    preload_specs: list = field(default_factory=list)
    """Their :class:`~demod_voice.engine.jobs.LoadSpec` (filled at start-up)."""
    in_flight: int = 0
    """HTTP requests being answered, probes aside (counted by :mod:`demod_voice.serve.http.guard`; a drain waits for them)."""
    profile_cache: dict = field(default_factory=dict)
    """Voice profiles read by this server, by file, with the (mtime, size) they were read at."""
    enrolling: set = field(default_factory=set)
    """Names of cloned voices whose enrollment or import is under way (a second one of the same name is refused)."""
    enrolling_owners: dict = field(default_factory=dict)
    """The same names -> the owner id of the key whose request holds each (counted in that key's voices)."""
    failed_keys: Optional[FailedKeys] = None
    """Wrong API keys by client address (:mod:`demod_voice.serve.throttle`); ``None`` without keys."""
    extras: dict = field(default_factory=dict)
    """Room for other front doors (Wyoming, web UI) to keep their own state."""

    @property
    def settings(self) -> ServeSettings:
        """The ``serve`` section of the config."""
        return self.config.serve

    @property
    def profiles(self) -> Path:
        """Where voice profiles live (the same folder ``voices add`` uses)."""
        from demod_voice.voices.profiles import profiles_dir

        return profiles_dir(self.cache)


def check_port_free(host: str, port: int, shown: str) -> None:
    """Fail with one line before anything starts when a TCP port cannot be listened on (taken, or privileged)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise cannot_listen(shown, err) from None


_LISTEN_HINTS = {errno.EADDRINUSE: "is another server on that port?",
                 errno.EADDRNOTAVAIL: "that address is not one of this machine's: give one it has, or 0.0.0.0 for all",
                 errno.EACCES: "a port below 1024 needs privileges: give a higher one"}


def cannot_listen(shown: str, err: OSError) -> InputError:
    """One line for a socket that cannot listen on ``shown``, with the hint that fits why."""
    hint = _LISTEN_HINTS.get(err.errno, "give another address or port")
    return InputError(f"cannot listen on {shown} ({err.strerror or err}); {hint}")


def data_dir_for(config: Config) -> Path:
    """``serve.data_dir`` or the cache folder's ``serve``."""
    if config.serve.data_dir:
        return Path(config.serve.data_dir).expanduser().absolute()
    return cache_root(config) / "serve"


PRIVATE_DIR = 0o700
"""The mode of the folders the server keeps people's files in (its data folder, each job's folder)."""


def make_private(folder: Path) -> None:
    """Make the server's data folder, readable by the server's user alone; say so in the log when one that exists lets
    other users in (it holds clients' texts, recordings and audio: under the usual umask every local user could read
    them). Its jobs' folders are private whatever its mode."""
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    mode = folder.stat().st_mode
    if mode & 0o077:
        log.warning("other users can open the server's data folder %s (mode %o): it holds clients' texts, recordings and "
                    "audio; chmod 700 it", folder, mode & 0o777)


def build_context(config: Config, engine: Any, log_level: int = logging.WARNING, keys: Any = None,
                  metrics: Any = None, preload: Optional[tuple[str, ...]] = None) -> ServeContext:
    """A context for ``config`` around a started engine."""
    data = data_dir_for(config)
    make_private(data)
    chosen = tuple(preload if preload is not None else (config.serve.preload or ()))
    failed = FailedKeys(config.serve.limits.max_failed_keys, metrics, keys.shortest,
                        ipv6_prefix=config.serve.ipv6_prefix) if keys is not None else None
    return ServeContext(config=config, engine=engine, cache=cache_root(config), data_dir=data, log_level=log_level,
                        keys=keys, metrics=metrics, preload=chosen, failed_keys=failed)


def drain_signals() -> tuple[int, ...]:
    """The signals that drain the server: SIGTERM, Ctrl-C, and SIGHUP unless it was ignored when the server started
    (``nohup``). A closed terminal or ssh session (SIGHUP) ended the server at once, as uvicorn leaves it, with the
    requests in flight cut; it drains as on SIGTERM now. SIGHUP does not reload the config: restart the server."""
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGTERM, signal.SIGINT, *hangup)


def stop_named(sig: int) -> str:
    """How the drain's log line names the signal that began it."""
    if sig == signal.SIGHUP:
        return "SIGHUP (its terminal or ssh session closed; SIGHUP does not reload: restart to read the config again)"
    return "Ctrl-C" if sig == signal.SIGINT else signal.Signals(sig).name
