"""API keys: ``Authorization: Bearer KEY``, each key with scopes (``speak``, ``enroll``, ``admin``).

Keys come from ``serve.keys`` (KEY -> scopes) and ``serve.keys_file`` (``KEY scope,scope`` a
line). Only their SHA-256 digests are kept in memory, and a presented key is looked up by its
digest, so neither the comparison's timing nor a memory dump gives a key away. ``admin``
includes the other two, ``enroll`` includes ``speak`` (docs/security.md). Without any key the server is open, which :func:`check_bind` allows
only on a loopback address unless ``--insecure-no-auth`` says otherwise.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

SCOPES = ("speak", "enroll", "admin")
IMPLIED = {"admin": frozenset(SCOPES), "enroll": frozenset({"speak"})}
"""What a scope brings besides itself: a key that may manage voices may also speak with them and list them."""


class AuthFailed(Exception):
    """A request without a valid key (401) or whose key lacks the scope (403)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        """The error's ``code`` for clients (OpenAI's ``invalid_api_key`` for a key it does not know): an app tells a key
        to ask the user for again from a scope to ask the administrator for, without reading the message."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(value: Any, where: str) -> frozenset[str]:
    """``"speak,enroll"`` or ``["speak", "enroll"]`` -> a set; an unknown scope is a :class:`ConfigError`."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        raise ConfigError(f"{where}: scopes must be a list or a comma-separated string of {', '.join(SCOPES)}")
    scopes = frozenset(str(item).strip() for item in items if str(item).strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes:
        raise ConfigError(f"{where}: no scope; give one or more of {', '.join(SCOPES)}")
    if unknown:
        # The unknown words are never shown: a key and its scopes swapped, or two keys on one line, put the key here
        # (and the message in the log). A near miss is named by the scope it is near.
        near = sorted({close for word in unknown for close in difflib.get_close_matches(word.lower(), SCOPES, n=1, cutoff=0.6)})
        hint = f" (did you mean {' or '.join(near)}?)" if near else " (the key comes first, then its scopes)"
        raise ConfigError(f"{where}: {len(unknown)} unknown scope(s), not shown in case one is a key{hint}; use "
                          f"{', '.join(SCOPES)}")
    return scopes


STRONG_LENGTH = 16
"""Characters a key should have at least (``openssl rand -hex 24`` makes 48)."""
STRONG_VARIETY = 8
"""Different characters a key should hold at least (``passwordpassword`` holds 7)."""


def is_weak(key: str) -> bool:
    """A key short or simple enough that a client could guess it: the server accepts keys of 8 characters, an
    8-letter word among them."""
    return len(key) < STRONG_LENGTH or len(set(key)) < STRONG_VARIETY


class KeyRing:
    """The accepted keys, by digest."""

    def __init__(self, keys: Mapping[str, Iterable[str]]) -> None:
        self._scopes: dict[str, frozenset[str]] = {}
        for key, scopes in keys.items():
            if len(key) < 8:
                raise ConfigError("an API key must be at least 8 characters long (make one with: openssl rand -hex 24)")
            if not (key.isascii() and key.isprintable()):
                # a header's bytes are read as Latin-1 and a key is compared as UTF-8: a client could never send it
                raise ConfigError("an API key must be printable ASCII (letters, digits, punctuation): one with other "
                                  "characters can never be sent in a header as written (make one with: openssl rand -hex 24)")
            self._scopes[_digest(key)] = frozenset(scopes)
        self.shortest = min((len(key) for key in keys), default=0)
        """The length of the shortest key (never a key): a shorter one sent is no guess at one."""
        self.weak = sum(1 for key in keys if is_weak(key))
        """How many keys are short or simple (:func:`is_weak`), said at start on an address others can reach."""

    def __len__(self) -> int:
        return len(self._scopes)

    def by_scope(self) -> str:
        """How many keys have each scope at most: ``1 admin, 1 enroll, 2 speak``."""
        top = [next(scope for scope in reversed(SCOPES) if Caller("", scopes).may(scope)) for scopes in self._scopes.values()]
        return ", ".join(f"{top.count(scope)} {scope}" for scope in reversed(SCOPES) if scope in top)

    def identify(self, authorization: Optional[str]) -> tuple[str, frozenset[str]]:
        """The key in an ``Authorization`` header: (its owner id, its scopes); :class:`AuthFailed` (401) without a valid one.

        The owner id is derived from the key's digest (never the key): batch jobs belong to it."""
        if not authorization:
            raise AuthFailed(401, "this server needs an API key: send 'Authorization: Bearer KEY'", "missing_api_key")
        kind, _, key = authorization.strip().partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise AuthFailed(401, "malformed Authorization header: send 'Authorization: Bearer KEY'", "invalid_api_key")
        digest = _digest(key.strip())
        scopes = self._scopes.get(digest)
        if scopes is None:
            raise AuthFailed(401, "the API key is not valid: send one the server's administrator gave you", "invalid_api_key")
        return hashlib.sha256(f"owner:{digest}".encode()).hexdigest()[:16], scopes

    def check(self, authorization: Optional[str], scope: str) -> str:
        """Raise :class:`AuthFailed` unless the header carries a key with ``scope``; return the key's owner id."""
        return authorize(self, authorization, scope).owner


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the owner id of its key (``""`` on a server without keys) and what it may do."""

    owner: str
    """Stable id derived from the key's digest; batch jobs belong to it."""
    scopes: frozenset[str]
    """The key's scopes (``admin`` includes the others, ``enroll`` includes ``speak``: :data:`IMPLIED`); all of them
    without keys."""

    def may(self, scope: str) -> bool:
        """Whether this caller has ``scope``."""
        return scope in self.scopes or any(scope in IMPLIED.get(held, ()) for held in self.scopes)


ANONYMOUS = Caller("", frozenset(SCOPES))
"""The caller on a server without keys (loopback only, unless --insecure-no-auth)."""


def authorize(keys: Optional[KeyRing], authorization: Optional[str], scope: str) -> Caller:
    """The one authorisation check of every front door: the API's routes (through :mod:`demod_voice.serve.http.deps`),
    the request guard, and the web page (``authorize(ctx.keys, bearer(key_field), scope)``).

    No keys configured: everyone may do everything. Otherwise 401 without a valid key, 403 without ``scope``."""
    if keys is None:
        return ANONYMOUS
    owner, scopes = keys.identify(authorization)
    caller = Caller(owner, scopes)
    if not caller.may(scope):
        raise AuthFailed(403, f"this API key may not do this: it needs the '{scope}' scope", "missing_scope")
    return caller


def keys_said(keys: Optional[KeyRing]) -> str:
    """What the start says of the server's keys, beside where it listens (never a key): how many of each scope, or that
    there are none. A keys file or config the server did not read (another user's ``$XDG_CONFIG_HOME`` under systemd) left
    it open to every program on the machine, and nothing said so."""
    if keys is None:
        return ("no API keys: every program that can reach the server may use it, clone voices and delete them (set "
                "serve.keys or serve.keys_file to require keys: docs/security.md)")
    return f"{len(keys)} API key(s) ({keys.by_scope()}): requests need 'Authorization: Bearer KEY'"


def bearer(key: Optional[str]) -> Optional[str]:
    """An ``Authorization`` header value for a key typed into a field (``None`` for an empty field)."""
    return f"Bearer {key.strip()}" if key and key.strip() else None


def load_keys(settings: Any) -> Optional[KeyRing]:
    """The key ring from ``serve.keys`` and ``serve.keys_file``; ``None`` when no key is configured."""
    keys: dict[str, frozenset[str]] = {}
    for number, (key, scopes) in enumerate((settings.keys or {}).items(), 1):
        keys[str(key)] = parse_scopes(scopes, f"serve.keys (key number {number}; keys are never shown)")
    if settings.keys_file:
        path = Path(settings.keys_file).expanduser()
        found = read_keys_file(path)
        if not found:  # the administrator asked for keys: a file of comments is not "no keys, no auth"
            raise ConfigError(f"the keys file {path} holds no keys: add a line 'KEY scope,scope' (a key of 8 characters or "
                              "more, scopes among speak, enroll, admin), or leave serve.keys_file unset to serve without keys")
        keys.update(found)
    return KeyRing(keys) if keys else None


def check_config_file(path: Optional[Path]) -> None:
    """Say in the log when the config file ``path`` holds API keys (``serve.keys``) and other users can read it, as
    :func:`read_keys_file` says of a keys file (``config init`` writes the file with the umask's mode, 0644 as a rule)."""
    if path is None:
        return
    import yaml

    try:
        mode = path.stat().st_mode
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # the config was read a moment ago: whatever changed since is not this check's to report
    serve = data.get("serve") if isinstance(data, dict) else None
    if isinstance(serve, dict) and serve.get("keys") and mode & 0o077:
        log.warning("other users can read the config file %s (mode %o), which holds API keys (serve.keys): anyone on this "
                    "machine could take a key; chmod 600 it, or move the keys to serve.keys_file", path, mode & 0o777)


COMMENT = re.compile(r"(?:^|\s)#.*$")
"""A comment in a keys file: from a ``#`` at the line's start or after a space (a ``#`` inside a key is the key's)."""


def read_keys_file(path: Path) -> dict[str, frozenset[str]]:
    """``KEY scope,scope`` a line; blank lines and ``#`` comments skipped; a key on two lines refused. A file others may
    read is said in the log."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as err:
        raise ConfigError(f"cannot read the keys file {path}: {err.strerror or err}") from None
    keys: dict[str, frozenset[str]] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(f"keys file {path}, line {number}: expected 'KEY scope,scope'")
        if parts[0] in lines:
            raise ConfigError(f"keys file {path}, line {number} repeats the key of line {lines[parts[0]]}: keep one line per key")
        lines[parts[0]] = number
        keys[parts[0]] = parse_scopes(parts[1].replace(" ", ""), f"keys file {path}, line {number}")
    if keys and mode & 0o077:
        log.warning("other users can read the keys file %s (mode %o): anyone on this machine could take a key; "
                    "chmod 600 it", path, mode & 0o777)
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


def warn_exposure(host: str, keys: Optional[KeyRing]) -> None:
    """Say at start what a server others can reach exposes that the administrator may not know: it speaks plain HTTP
    (keys, texts and voices cross the network as they are), and short or simple keys can be guessed. No key is shown."""
    if is_loopback(host):
        return
    log.warning("serving on %s over plain HTTP: API keys, texts, recordings and audio cross the network unencrypted; put "
                "a TLS proxy in front and keep serve.host at 127.0.0.1 "
                "(docs/security.md, 'Behind a reverse proxy with TLS')", host)
    if keys is not None and keys.weak:
        log.warning("%d of the %d API keys are short or simple (under %d characters, or under %d different ones) on %s, "
                    "which other machines can reach: a client could guess them; make keys with: openssl rand -hex 24",
                    keys.weak, len(keys), STRONG_LENGTH, STRONG_VARIETY, host)
