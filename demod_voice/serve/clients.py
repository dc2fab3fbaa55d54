"""Who a request comes from: the address its wrong keys (:mod:`demod_voice.serve.throttle`) and its share of the web
page's connections are counted by.

The socket's peer decides, never a header on its own. A peer in ``serve.trusted_proxies`` (by default this machine's
own addresses, 127.0.0.1 and ::1) is a reverse proxy: the address it writes last in ``X-Forwarded-For`` is the client's
(uvicorn reads the header from those peers only: :func:`trusted_proxies` is its ``forwarded_allow_ips``). Any other
peer is the client itself, whatever it writes. So:

- behind a listed proxy that sends ``X-Forwarded-For``, each client is counted by its own address;
- behind a listed proxy that does not (nginx's common recipe sets ``X-Real-IP`` only), every client has the proxy's
  address: the request is *shared* (:attr:`Client.shared`) when a header only a proxy adds, or a name of
  ``serve.allowed_hosts``, says it came through one. Its wrong keys are counted for all such clients together, against
  :data:`SHARED` times the limit: one person's mistakes do not lock the others out, and a guesser through it is held;
- a trusted proxy's ``X-Real-IP`` is a count of its own besides (:attr:`Client.named`);
- a peer that is not listed but sends proxy headers (:attr:`Client.unlisted`) is a proxy on another machine nobody
  named (or a client writing the headers itself): it is counted as one client, and the log says what to set;
- a proxy that rewrites ``Host`` to ``127.0.0.1`` and adds no header cannot be told from a program on this machine: it is
  one client. Being on this machine grants nothing else: keys are checked the same for every peer.

An IPv6 client is counted by its network of ``serve.ipv6_prefix`` bits (a /64 by default: one machine commonly holds
all of it), so a client cannot take a new address for each request.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from demod_voice.errors import ConfigError
from demod_voice.serve.errors import quoted

log = logging.getLogger(__name__)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

LOOPBACK = ("127.0.0.1", "::1")
"""The proxies trusted when ``serve.trusted_proxies`` is not set: a proxy on this machine."""
SHARED = 10
"""The clients of a proxy that does not say whose a request is share one count of wrong keys, of this many times
``serve.limits.max_failed_keys``."""
PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-proto", "x-forwarded-host", "via")
"""Headers a reverse proxy adds (``X-Real-IP`` is nginx's common recipe); uvicorn reads only ``X-Forwarded-For``."""


@dataclass(frozen=True)
class Client:
    """Whom a request is counted as."""

    address: str
    """The client's address: the one its proxy forwarded behind a trusted proxy, else the socket's peer."""
    shared: bool = False
    """The request came through a trusted proxy that does not say whose it is: every client of that proxy has this
    address."""
    unlisted: bool = False
    """The peer sent proxy headers but is not in ``serve.trusted_proxies``: they were not believed."""
    proxied: bool = False
    """The request carries a header only a proxy adds (:data:`PROXY_HEADERS`): other machines may reach the server."""
    named: str = ""
    """The address in a trusted proxy's ``X-Real-IP`` (nginx's common recipe): wrong keys are counted against it too, in
    a count of its own (:meth:`demod_voice.serve.throttle.FailedKeys.check`). Behind a proxy that names no client
    otherwise, one person is then refused after their own ``max_failed_keys`` and cannot use up the count its clients
    share; and behind one that sets ``X-Real-IP`` but passes a client-written ``X-Forwarded-For`` on (nginx does, unless
    told to set it), a client naming a new address for each guess is still held by its ``X-Real-IP``. Counting there only
    ever refuses more, in a count no ``X-Forwarded-For`` reaches, so a client writing either header gains nothing."""


def trusted_proxies(settings: Any, env: Mapping[str, str] = os.environ) -> tuple[Network, ...]:
    """The networks of ``serve.trusted_proxies`` (not set: ``FORWARDED_ALLOW_IPS``, uvicorn's own variable, or this
    machine's own addresses); an entry that is no address or network is a :class:`ConfigError`."""
    listed = settings.trusted_proxies
    if listed is None:
        listed = [part for part in env.get("FORWARDED_ALLOW_IPS", "").split(",") if part.strip()] or list(LOOPBACK)
    return _networks(tuple(str(entry).strip() for entry in listed))


def configured(settings: Any, env: Mapping[str, str] = os.environ) -> bool:
    """Whether the administrator named the trusted proxies (``serve.trusted_proxies`` or ``FORWARDED_ALLOW_IPS``)."""
    return settings.trusted_proxies is not None or bool(env.get("FORWARDED_ALLOW_IPS", "").strip())


@functools.lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks: list[Network] = []
    for entry in entries:
        if entry == "*":  # uvicorn's word for every peer
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"serve.trusted_proxies: '{quoted(entry, 60)}' is not an address or a network: give your "
                              "proxies' addresses (10.0.0.5) or networks (10.0.0.0/24, fd00::/64)") from None
    return tuple(networks)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (a socket's peer) is in one of ``networks``, compared as it is written, as uvicorn compares it
    (``::ffff:a.b.c.d`` is no IPv4 address: the server's sockets are IPv6-only, so no peer is written so)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


PEER = "demod_voice.peer"
"""The scope key of the socket's peer (uvicorn's ``client`` before a trusted proxy's ``X-Forwarded-For`` replaces it)."""
CLIENT = "demod_voice.client"
"""The scope key of the request's :class:`Client` (set before :class:`ClientAddress` only by a call the server makes to
itself for a client: :func:`demod_voice.serve.ui.actions.call_api`; a socket's request cannot)."""


class ClientAddress:
    """The outermost middleware: keeps the socket's peer, lets uvicorn's ``ProxyHeadersMiddleware`` put a trusted
    proxy's client address in its place (the server runs uvicorn with ``proxy_headers`` off, so that this is the only
    place), and leaves the request's :class:`Client` in its scope for every check after (:func:`of`)."""

    def __init__(self, app: Any, settings: Any) -> None:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app = app
        self.settings = settings
        self.forwarded = ProxyHeadersMiddleware(self._counted, trusted_hosts=[str(net) for net in trusted_proxies(settings)])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or CLIENT in scope:  # the page's own call for its client
            await self.app(scope, receive, send)
            return
        scope[PEER] = _address(scope)
        await self.forwarded(scope, receive, send)

    async def _counted(self, scope: dict, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        scope[CLIENT] = who(scope[PEER], _address(scope), headers, self.settings)
        await self.app(scope, receive, send)


def of(scope: dict) -> Client:
    """The request's :class:`Client` (:class:`ClientAddress`); an app run without it: the peer, as it is."""
    return scope.get(CLIENT) or Client(_address(scope))


def _address(scope: dict) -> str:
    return str((scope.get("client") or ("", 0))[0] or "")


def who(peer: str, address: str, headers: Mapping[str, str], settings: Any) -> Client:
    """Whom a request is counted as (see the module docstring): ``peer`` is the socket's, ``address`` the client's as
    uvicorn's proxy middleware left it, ``headers`` by lower-case name."""
    proxied = any(name in headers for name in PROXY_HEADERS)
    if not is_trusted(peer, trusted_proxies(settings)):
        return Client(peer, unlisted=proxied, proxied=proxied)
    # an X-Forwarded-For that names no one but the proxy itself ("", "127.0.0.1": uvicorn then leaves the peer) says no
    # more than none: a client behind a proxy that passes the header on wrote it to leave its proxy's shared count for the
    # proxy machine's own, and locked out the programs on that machine
    if "x-forwarded-for" in headers and address != peer:
        return Client(address, proxied=True, named=_ip(headers.get("x-real-ip", "")))
    name = host_name(headers.get("host", ""))
    by_name = bool(name) and name != "localhost" and any(
        name == str(entry).strip().lower().rstrip(".") for entry in settings.allowed_hosts or ())
    return Client(peer, shared=proxied or by_name, proxied=proxied, named=_ip(headers.get("x-real-ip", "")))


def _ip(text: str) -> str:
    """``text`` as an IP address, or ``""`` if it is none."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return ""


def host_name(host: str) -> str:
    """The name in a ``Host`` header: no port, no brackets, lower case, no trailing dot."""
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")].lower() if "]" in host else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".").lower()


def client_id(address: str, ipv6_prefix: int = 64) -> str:
    """What an address is counted as: an IPv4 address itself, an IPv6 address's network of ``ipv6_prefix`` bits;
    anything else (a name a proxy passed on, no address at all) its first 64 printable characters."""
    text = str(address or "")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return quoted(text, 64)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False))
    return str(ip)


def warn_unlisted(settings: Any, env: Mapping[str, str] = os.environ) -> None:
    """Say at start, on an address other machines can reach, what to set for a proxy on another machine, unless the
    trusted proxies were named: its clients would otherwise all count as one, and lock each other out."""
    from demod_voice.serve.auth import is_loopback

    if is_loopback(str(settings.host)) or configured(settings, env):
        return
    log.warning("serving on %s: clients are told apart by the address they connect from; if they come through a reverse "
                "proxy on another machine, list its address in serve.trusted_proxies (its X-Forwarded-For is then "
                "believed), or every client behind it counts as that one address (one client's %d wrong keys in a minute "
                "lock the others out)", settings.host, settings.limits.max_failed_keys)
