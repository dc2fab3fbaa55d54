"""Wrong API keys, counted by the address they come from: past ``serve.limits.max_failed_keys`` within a minute, every
key from that address is refused (429 with ``Retry-After``) until the minute is over.

Every front door that takes a key checks it through :meth:`FailedKeys.check`: the API's request guard, the page's
upload route and the page's events (whose address :mod:`demod_voice.serve.ui.actions` finds in Gradio's request).
While an address is refused, its good keys are refused too (otherwise the answer would still tell a guess that hit
from one that missed), and a good key does not clear its count (a client holding one key could otherwise guess at
another at full speed between two good requests). What is no new guess is not counted: a missing key, the same wrong
key again (a client left with an old key, a person pressing a button twice), a key shorter than every key the server
has, and one that goes on from the address's last wrong key (the page checks its key field as it is typed: where the
server's keys differ in length, the prefixes of a longer key were each a new wrong key, and a person typing it was
locked out before its end). An IPv6 client is
counted by its /64 (``serve.ipv6_prefix``), which one machine commonly holds whole; the clients of a proxy that does not
say whose a request is (:mod:`demod_voice.serve.clients`) are counted together, against :data:`SHARED` times the limit:
one person's mistakes do not lock the others out, and a guesser through the proxy is held all the same. At most
:data:`MAX_ADDRESSES` addresses are remembered, the one that failed longest ago forgotten first, so many addresses cannot
grow the server.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from demod_voice.serve.auth import AuthFailed
from demod_voice.serve.clients import SHARED, Client, client_id

log = logging.getLogger(__name__)

WINDOW = 60.0
"""Seconds over which an address's wrong keys are counted."""
MAX_ADDRESSES = 10_000
"""Addresses remembered at once (each a few hundred bytes)."""

T = TypeVar("T")


class TooManyFailedKeys(AuthFailed):
    """A key from an address that gave too many wrong ones of late (429)."""

    def __init__(self, wait: int, shared: bool = False) -> None:
        source = "through the proxy in front of this server" if shared else "from this address"
        super().__init__(429, f"too many wrong API keys came {source}: wait {wait} s, then send a key the "
                              "server's administrator gave you", "too_many_failed_keys")
        self.wait = wait
        """Seconds until this address may send keys again (``Retry-After``)."""
        self.shared = shared
        """The count refused is that of every client of a proxy that does not say whose requests are."""


class FailedKeys:
    """Wrong keys by client address (see the module docstring); ``most`` 0: no limit."""

    def __init__(self, most: int, metrics: Any = None, shortest: int = 0, window: float = WINDOW,
                 capacity: int = MAX_ADDRESSES, clock: Callable[[], float] = time.monotonic, ipv6_prefix: int = 64) -> None:
        self.most = most
        self.ipv6_prefix = ipv6_prefix
        """Leading bits of an IPv6 address that tell one client from another (``serve.ipv6_prefix``)."""
        self.shortest = shortest
        """The length of the server's shortest key: a shorter one is no guess."""
        self.metrics = metrics
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        """The page's events check keys on worker threads, the request guard on the event loop."""
        self._seen: OrderedDict[str, tuple[float, frozenset[int], tuple[int, int]]] = OrderedDict()
        """Client id (:meth:`_bucket`) -> (when its first counted wrong key came, a short hash of each wrong key since, the last one's length
        and hash), the longest quiet first."""

    def __len__(self) -> int:
        return len(self._seen)

    def _bucket(self, address: Optional[str], shared: bool, named: bool = False) -> tuple[str, str, int]:
        """Whom ``address`` is counted as, the count its keys go to and that count's limit: its own, that of every
        client of its proxy (``shared``), or that of the address a proxy's ``X-Real-IP`` gave (``named``: apart from what
        any ``X-Forwarded-For`` names)."""
        who = client_id(str(address or ""), self.ipv6_prefix)
        if shared:
            return who, f"{who} (its clients)", self.most * SHARED
        return (who, f"{who} (X-Real-IP)", self.most) if named else (who, who, self.most)

    def wait(self, address: Optional[str], shared: bool = False, named: bool = False) -> int:
        """Whole seconds until ``address`` may send keys again; 0: now."""
        if self.most <= 0:
            return 0
        _, bucket, most = self._bucket(address, shared, named)
        with self._lock:
            entry = self._seen.get(bucket)
        if entry is None or len(entry[1]) < most:
            return 0
        left = entry[0] + self.window - self.clock()
        return max(1, math.ceil(left)) if left > 0 else 0

    def failed(self, address: Optional[str], key: str, shared: bool = False, named: bool = False) -> None:
        """Count the wrong ``key`` from ``address`` (``shared``: for every client of its proxy; ``named``: as a proxy's
        ``X-Real-IP`` gave it), unless it is no new guess (see the module docstring)."""
        if self.most <= 0 or len(key) < self.shortest:
            return
        (who, bucket, most), now, guess = self._bucket(address, shared, named), self.clock(), _short_hash(key)
        with self._lock:
            start, guesses, last = self._seen.pop(bucket, (now, frozenset(), (0, 0)))
            if now - start >= self.window:
                start, guesses, last = now, frozenset(), (0, 0)
            if 0 < last[0] < len(key) and _short_hash(key[: last[0]]) == last[1]:
                guesses -= {last[1]}  # the same key typed further: it stands in for the last one
            self._seen[bucket] = (start, guesses | {guess}, (len(key), guess))
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        if guess in guesses or len(guesses) + 1 != most:
            return
        if shared:
            log.warning("the clients of the proxy at %s sent %d wrong API keys within %g s (it does not say whose requests "
                        "are, so they are counted together: %d times serve.limits.max_failed_keys): every key through it "
                        "is refused for the rest of that time; have the proxy set X-Forwarded-For to the client's address "
                        "(docs/security.md, 'Whose address')", who, most, self.window, SHARED)
        else:
            log.warning("%s sent %d wrong API keys within %g s: its keys are refused for the rest of that time "
                        "(serve.limits.max_failed_keys)", who or "a client without an address", most, self.window)

    def check(self, address: Optional[str], authorization: Optional[str], attempt: Callable[[], T],
              shared: bool = False, named: str = "") -> T:
        """``attempt()`` (a key check raising :class:`AuthFailed`), unless ``address`` is refused for now
        (:class:`TooManyFailedKeys`); a key ``attempt`` does not know is counted against ``address`` (``shared``: a
        proxy's address, for all its clients together; and against ``named`` too, the address a proxy's ``X-Real-IP``
        gave, in a count of its own: :attr:`demod_voice.serve.clients.Client.named`)."""
        own = self.wait(named, named=True) if named else 0
        wait = own or self.wait(address, shared)
        if wait:
            self._count("throttled")
            raise TooManyFailedKeys(wait, shared and not own)
        try:
            return attempt()
        except AuthFailed as err:
            kind, _, key = (authorization or "").strip().partition(" ")
            if err.code == "invalid_api_key" and kind.lower() == "bearer" and key.strip():
                self.failed(address, key.strip(), shared)
                if named:
                    self.failed(named, key.strip(), named=True)
                self._count("invalid")
            raise

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.failed_keys.labels(outcome).inc()


def check_key(failed: Optional[FailedKeys], client: Client, authorization: Optional[str], attempt: Callable[[], T]) -> T:
    """``attempt()`` through ``failed`` (:meth:`FailedKeys.check`) for ``client``, or as it is where wrong keys are not
    counted (``None``: a server without keys)."""
    return attempt() if failed is None else failed.check(client.address, authorization, attempt, client.shared, client.named)


def _short_hash(key: str) -> int:
    """Eight bytes of a wrong key's SHA-256: enough to tell one guess from another, never the key."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")
