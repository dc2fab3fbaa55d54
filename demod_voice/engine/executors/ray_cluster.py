"""Joining a Ray cluster for the Ray executor: which address, a clear one-line error when Ray is
missing or the cluster cannot be reached, and how many worker slots the cluster holds.

Ray's own ``ray.init`` retries an unreachable address for minutes; the address is tried with a
plain TCP connection first so that a typo fails in seconds. This module imports Ray only when asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

from demod_voice.checks import EVERY, FAIL, OK, Check, dist_version, probe
from demod_voice.errors import DependencyError, InputError, RuntimeFailure

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'demod-voice[ray]' (the same Ray version on every node)"
PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Cluster:
    """The cluster this process joined."""

    address: str
    """The address asked for (``auto``, ``local``, ``HOST:PORT``, ``ray://HOST:PORT``)."""
    owned: bool
    """True when this process started Ray (``local``) or joined it, and so shuts it down at the end."""
    nodes: int
    """Alive nodes when joined."""
    cpus: float
    """CPUs of the whole cluster."""
    gpus: float
    """GPUs of the whole cluster."""
    node_cpus: float = 0.0
    """CPUs of its largest node: an actor reserving more is never placed."""

    def slots(self, num_cpus: float) -> int:
        """How many actors reserving ``num_cpus`` each fit on the cluster at once (at least 1)."""
        if num_cpus <= 0:
            return max(1, int(self.cpus))
        return max(1, int(self.cpus // num_cpus))


def import_ray() -> Any:
    """The ``ray`` module, or :class:`DependencyError` saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise DependencyError(f"the Ray executor needs Ray ({err}); install it with {INSTALL_HINT}") from None
    return ray


def check_ray(executor: str, address: Optional[str]) -> Check:
    """``health``'s line on Ray: with ``engine.executor: ray``, Ray is imported in a child interpreter and every backend
    fails without it (each command's workers run on it); else its version from metadata, for ``--ray``."""
    if executor != "ray":
        version = dist_version("ray")
        found = f"Ray {version}" if version else "Ray is not installed"
        return Check("ray", OK, f"{found} (engine.executor: local; needed only by --ray)", needed_by=())
    found, why = probe("import json, ray; print(json.dumps({'version': ray.__version__}))")
    if found is None:
        return Check("ray", FAIL, f"engine.executor is ray but Ray cannot be imported ({why})", f"install it with {INSTALL_HINT}",
                     EVERY)
    return Check("ray", OK, f"Ray {found['version']}; engine.executor: ray at {resolve_address(address)}", needed_by=())


def resolve_address(address: Optional[str]) -> str:
    """The address to join: the one given; for none or ``auto``, ``$RAY_ADDRESS`` (which
    ``ray job submit`` sets for its driver) when set, else ``auto`` (the cluster `ray start` made here)."""
    given = (address or "").strip()
    if given and given != "auto":
        return given
    return os.environ.get("RAY_ADDRESS", "").strip() or "auto"


def connect(address: Optional[str] = None, log_level: int = logging.WARNING) -> Cluster:
    """Join the cluster at ``address`` (see :func:`resolve_address`); ``local`` starts a private Ray
    on this machine. Raises a one-line :class:`DemodVoiceError` when that cannot be done."""
    ray = import_ray()
    target = resolve_address(address)
    if ray.is_initialized():
        return _describe(ray, target, owned=False)
    if target != "local":
        _probe(target)
    options = _quiet_unless_verbose(log_level)
    if target == "local":
        options["include_dashboard"] = False  # only a Ray this process starts; a cluster has its own
    try:
        with _signals_kept(), _stderr_hidden(log_level > logging.INFO):
            # "local", not None: None joins a cluster `ray start` made here (or hangs on its stale address)
            ray.init(address=target, **options)
    except ConnectionError as err:  # something answers there (probed): a cluster that would not let us in
        raise RuntimeFailure(_refused(target, err)) from None
    except Exception as err:  # noqa: BLE001 - version mismatches, bad addresses: one line for the user
        raise RuntimeFailure(f"could not join the Ray cluster at '{target}': {type(err).__name__}: {_first_line(err)}") from None
    _cluster_errors_logged()
    return _describe(ray, target, owned=True)


def _cluster_errors_logged() -> None:
    """Send the errors the cluster publishes to the driver ("A worker died or was killed ...", "Task ... will be
    retried") to this module's log (stderr at -v), where the engine's own warning already says what happened. Ray's
    listener thread printed them, coloured and prefixed ``(raylet)``, on stdout whatever ``log_to_driver`` says. It looks
    its printer up at each message; the actors' log lines (-v) keep theirs, bound when Ray started."""
    from ray._private import worker as ray_worker

    if not callable(getattr(ray_worker, "print_to_stdstream", None)):
        return

    def logged(data: dict, ignore_prefix: bool = False) -> None:
        for line in data.get("lines") or ():
            log.info("Ray (%s): %s", data.get("pid") or "cluster", line)

    ray_worker.print_to_stdstream = logged


AUTH_HINT = ("set RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, or the token file `ray start` wrote) here, "
             "or run on a node of the cluster with --ray auto")


def _refused(target: str, err: ConnectionError) -> str:
    """The error for a cluster that answered but refused the driver: Ray 2.60's `ray start` asks for a token by default,
    and a driver given an address does not send it (Ray says so only in its own log line)."""
    said = _first_line(err)
    if any(word in said.lower() for word in ("auth", "token")):
        return f"the Ray cluster at {target} refused the connection: it wants its authentication token ({said}); {AUTH_HINT}"
    return (f"the Ray cluster at {target} refused the connection ({said}); if it uses token authentication "
            f"(`ray start`'s default), {AUTH_HINT}")


def _quiet_unless_verbose(log_level: int) -> dict[str, Any]:
    """``ray.init`` options (and, before Ray starts, its C++ log level) that keep Ray's own lines (the token warning,
    "Failed to determine local IP", coloured ``(raylet)`` and autoscaler lines) off stderr unless -v: they crowded out
    the command's one-line messages, even with -q. Only ``RAY_BACKEND_LOG_LEVEL`` a user set is kept."""
    verbose = log_level <= logging.INFO
    if not verbose:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    return {"namespace": "demod-voice", "log_to_driver": verbose,
            "logging_level": logging.INFO if log_level <= logging.DEBUG else logging.WARNING if verbose else logging.CRITICAL}


def _describe(ray: Any, target: str, owned: bool) -> Cluster:
    resources = ray.cluster_resources()
    alive = [node for node in ray.nodes() if node.get("Alive")]
    node_cpus = max((float(node.get("Resources", {}).get("CPU", 0)) for node in alive), default=0.0)
    cluster = Cluster(target, owned, len(alive), float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), node_cpus)
    log.info("joined Ray at %s: %d node(s), %g CPU(s), %g GPU(s)", target, cluster.nodes, cluster.cpus, cluster.gpus)
    return cluster


@contextlib.contextmanager
def _signals_kept() -> Iterator[None]:
    """Keep the command's SIGTERM and SIGINT handlers through ``ray.init``, which puts Ray's own in their place: a SIGTERM
    then exited 15 with Ray's C++ dump instead of stopping the batch as Ctrl-C does (143, each finished output recorded)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _stderr_hidden(hide: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null through ``ray.init`` when ``hide``: Ray's C++ side writes lines there before
    any log level applies ("Failed to determine local IP via external connectivity", the token-auth refusal), and
    what went wrong reaches the user as this module's one-line error."""
    if not hide:
        yield
        return
    sys.stderr.flush()
    kept = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(kept, 2)
        os.close(kept)


def _probe(target: str) -> None:
    """Fail in seconds when nothing listens where the cluster should be (``ray.init`` would retry for minutes)."""
    hostport = _bootstrap_address(target)
    if hostport is None:
        return
    host, port = _host_port(target, hostport)
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RuntimeFailure(f"cannot reach the Ray cluster at {hostport} ({reason}): is `ray start --head` running there, "
                             "and is the port open from here?") from None


def check_address(address: Optional[str]) -> None:
    """Raise, before a command makes anything, what joining ``address`` would raise at once: Ray not installed, an address
    that cannot be one (a URL's ``http://``, a port out of range), nothing listening there."""
    import_ray()
    target = resolve_address(address)
    if target != "local":
        _probe(target)


def _host_port(target: str, hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        raise InputError(f"Ray address '{target}' must be HOST:PORT, ray://HOST:PORT, auto or local "
                         "(the GCS port `ray start --head` printed, not the dashboard's http:// address)")
    if not 0 < int(port) < 65536:
        raise InputError(f"Ray address '{target}': {port} is not a valid port (1 to 65535)")
    return host.strip("[]"), int(port)


def _bootstrap_address(target: str) -> Optional[str]:
    """``HOST:PORT`` to probe for ``target``; ``None`` when it cannot be told without Ray itself."""
    if target.startswith("ray://"):
        return target[len("ray://"):].split("/", 1)[0]
    if target != "auto":
        return target
    try:  # where `ray start` on this machine recorded its address (Ray's own lookup; private, so guarded)
        from ray._private.services import canonicalize_bootstrap_address

        with _stderr_hidden(True):  # its C++ side says it cannot reach 8.8.8.8 on a machine without a route out
            return canonicalize_bootstrap_address("auto")
    except ConnectionError:
        raise RuntimeFailure("no Ray cluster was started on this machine (address auto): start one with "
                             "`ray start --head`, set RAY_ADDRESS, or pass --ray HOST:PORT") from None
    except Exception:  # noqa: BLE001 - Ray moved its internals: let ray.init look it up
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
