"""API keys: ``Authorization: Bearer KEY``, each key with scopes (``speak``, ``enroll``, ``admin``).

Keys come from ``serve.keys`` (KEY -> scopes) and ``serve.keys_file`` (``KEY scope,scope`` a
line). Only their SHA-256 digests are kept in memory, and a presented key is looked up by its
digest, so neither the comparison's timing nor a memory dump gives a key away. ``admin``
includes the other two. Without any key the server is open, which :func:`check_bind` allows
only on a loopback address unless ``--insecure-no-auth`` says otherwise.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

SCOPES = ("speak", "enroll", "admin")


class AuthFailed(Exception):
    """A request without a valid key (401) or whose key lacks the scope (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(value: Any, where: str) -> frozenset[str]:
    """``"speak,enroll"`` or ``["speak", "enroll"]`` -> a set; an unknown scope is a :class:`ConfigError`."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        raise ConfigError(f"{where}: scopes must be a list or a comma-separated string of {', '.join(SCOPES)}")
    scopes = frozenset(str(item).strip() for item in items if str(item).strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(f"{where}: unknown or missing scope(s) {', '.join(unknown) or '(none)'}; use {', '.join(SCOPES)}")
    return scopes


class KeyRing:
    """The accepted keys, by digest."""

    def __init__(self, keys: Mapping[str, Iterable[str]]) -> None:
        self._scopes: dict[str, frozenset[str]] = {}
        for key, scopes in keys.items():
            if len(key) < 8:
                raise ConfigError("an API key must be at least 8 characters long (make one with: openssl rand -hex 24)")
            self._scopes[_digest(key)] = frozenset(scopes)

    def __len__(self) -> int:
        return len(self._scopes)

    def check(self, authorization: Optional[str], scope: str) -> str:
        """Raise :class:`AuthFailed` unless the header carries a key with ``scope``; return the key's short id."""
        if not authorization:
            raise AuthFailed(401, "this server needs an API key: send 'Authorization: Bearer KEY'")
        kind, _, key = authorization.strip().partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise AuthFailed(401, "malformed Authorization header: send 'Authorization: Bearer KEY'")
        digest = _digest(key.strip())
        scopes = self._scopes.get(digest)
        if scopes is None:
            raise AuthFailed(401, "the API key is not valid")
        if scope not in scopes and "admin" not in scopes:
            raise AuthFailed(403, f"this API key may not do this: it needs the '{scope}' scope")
        return digest[:8]


def load_keys(settings: Any) -> Optional[KeyRing]:
    """The key ring from ``serve.keys`` and ``serve.keys_file``; ``None`` when no key is configured."""
    keys: dict[str, frozenset[str]] = {}
    for key, scopes in (settings.keys or {}).items():
        keys[str(key)] = parse_scopes(scopes, f"serve.keys.{str(key)[:4]}...")
    if settings.keys_file:
        keys.update(read_keys_file(Path(settings.keys_file).expanduser()))
    return KeyRing(keys) if keys else None


def read_keys_file(path: Path) -> dict[str, frozenset[str]]:
    """``KEY scope,scope`` a line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the keys file {path}: {err.strerror or err}") from None
    keys = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(f"keys file {path}, line {number}: expected 'KEY scope,scope'")
        keys[parts[0]] = parse_scopes(parts[1].replace(" ", ""), f"keys file {path}, line {number}")
    return keys


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: Optional[KeyRing], insecure_no_auth: bool) -> None:
    """Refuse to open a server without keys to other machines, unless asked to in so many words."""
    if keys is None and not is_loopback(host) and not insecure_no_auth:
        raise UsageError(f"refusing to listen on {host} without API keys: anyone who can reach it could use it. Configure "
                         "serve.keys or serve.keys_file, bind to 127.0.0.1, or pass --insecure-no-auth if you mean it")
    if keys is None and not is_loopback(host):
        log.warning("serving on %s with no API keys (--insecure-no-auth): anyone who can reach it can use it", host)


def require(scope: str) -> Any:
    """A FastAPI dependency: the request must carry a key with ``scope`` (when the server has keys)."""
    from fastapi import Request

    async def dependency(request: Request) -> Optional[str]:
        keys = request.app.state.ctx.keys
        if keys is None:
            return None
        return keys.check(request.headers.get("authorization"), scope)

    dependency.__name__ = f"require_{scope}"
    # This module's annotations are strings, and Request is not one of its globals: give FastAPI the class.
    dependency.__annotations__ = {"request": Request, "return": Optional[str]}
    return dependency
