"""Backends by name, both halves: the request side (parent) and the engine side (workers).

Built-in backends (:data:`BUILTIN`) and third-party ones, which a package declares in the
entry-point group ``demod_voice.backends`` (name -> ``package.module:RequestSideClass``),
register the same way: each names a :class:`~demod_voice.backends.plugin.RequestSide`, whose
``engine`` attribute names the worker half. Loading the registry imports request sides only;
an engine side is imported inside a worker, by :func:`create_backend`.

A plugin that fails to load (an import error, a wrong type, a name taken) is recorded in
:func:`failures` and reported by ``health``; the others work on.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import sys
import threading
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Optional

from demod_voice.backends.base import Backend
from demod_voice.backends.plugin import ModelEntry, RequestSide, Voice
from demod_voice.errors import DemodVoiceError, RuntimeFailure, UsageError

log = logging.getLogger(__name__)

GROUP = "demod_voice.backends"
"""The entry-point group third-party backends are declared in."""

BUILTIN: dict[str, str] = {
    "piper": "demod_voice.backends.piper.plugin:PiperSide",
    "xtts": "demod_voice.backends.xtts.plugin:XttsSide",
    "tinygrad": "demod_voice.backends.tinygrad.plugin:TinygradSide",
    "openvoice": "demod_voice.backends.openvoice.plugin:ConvertSide",  # claims rows with a 'source' first (claim_priority)
}
"""Built-in request sides, in registry order (``health``, listings); third-party ones follow."""

BACKENDS: dict[str, str] = {
    "piper": "demod_voice.backends.piper.engine:PiperBackend",
    "xtts": "demod_voice.backends.xtts.engine:XttsBackend",
    "tinygrad": "demod_voice.backends.tinygrad.engine:TinygradBackend",
    "whisper": "demod_voice.backends.whisper.engine:WhisperBackend",  # the speech recogniser (jobs built by backends.whisper.request)
    "openvoice": "demod_voice.backends.openvoice.engine:OpenVoiceBackend",  # voice conversion (no voices to list)
}
"""Engine sides by name, for backends that have no request side (jobs built by their own code);
a registered request side's ``engine`` wins over an entry here."""


@dataclass(frozen=True)
class PluginFailure:
    """A backend that could not be registered."""

    name: str
    """The name it was declared under."""
    source: str
    """Where it was declared: ``built-in`` or the distribution that declares the entry point."""
    target: str
    """What was loaded (``package.module:Class``)."""
    error: str
    """Why it failed, in one line."""


@dataclass
class Registry:
    """Request sides by name, in lookup order, and the plugins that failed."""

    sides: dict[str, RequestSide]
    failures: list[PluginFailure]


_lock = threading.RLock()
_loaded: Optional[Registry] = None


_LISTINGS: dict[str, type] = {"voices": Voice, "models": ModelEntry, "find": Voice}
"""A plugin's request-side methods that feed listings shared by every backend (``/v1/models``, Wyoming's ``describe``,
``models list``, a voice looked up by name), and what they give (a list of it; ``find``: one or ``None``): when its own
code raises, or gives something else, its entries are left out and the others listed."""
_CALLS = ("resolve", "job", "adjust", "claims_row", "row_job", "enroll_language", "enroll_job", "conversion_jobs",
          "download", "model_path", "forget_cache", "quantize")
"""A plugin's request-side methods that serve one request: when its own code raises, that request fails with one line
naming the backend (:class:`RuntimeFailure`), as an engine side's error does."""
_warned: set[tuple[str, str]] = set()


def _given(method: str, found: Any, kind: type) -> Any:
    """``found`` when it is what ``method`` must give (see :data:`_LISTINGS`); else :class:`TypeError` saying what it is."""
    if method == "find":
        if found is not None and not isinstance(found, kind):
            raise TypeError(f"gave a {type(found).__name__}, not a {kind.__name__} or None")
    elif not isinstance(found, (list, tuple)):
        raise TypeError(f"gave a {type(found).__name__}, not a list of {kind.__name__}")
    elif odd := [item for item in found if not isinstance(item, kind)]:
        raise TypeError(f"gave a list holding a {type(odd[0]).__name__}, not only {kind.__name__}s")
    return found


def _listing(name: str, method: str, call: Any, kind: type) -> Any:
    empty = (lambda: None) if method == "find" else list

    @functools.wraps(call)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return _given(method, call(*args, **kwargs), kind)
        except DemodVoiceError:
            raise
        except Exception as err:  # noqa: BLE001 - one plugin's bug must not empty every backend's listing
            log.debug("the %s backend's %s() failed:\n%s", name, method, traceback.format_exc())
            if (name, method) not in _warned:
                _warned.add((name, method))
                log.warning("the %s backend's %s() failed (%s: %s); its entries are left out (-vv: the traceback)",
                            name, method, type(err).__name__, err)
            return empty()
    return guarded


def _call(name: str, method: str, call: Any) -> Any:
    @functools.wraps(call)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except DemodVoiceError:
            raise
        except Exception as err:  # noqa: BLE001 - a plugin's bug fails its request, in one line naming it
            log.debug("the %s backend's %s() failed:\n%s", name, method, traceback.format_exc())
            raise RuntimeFailure(f"the {name} backend's {method}() failed: {type(err).__name__}: {err}") from None
    return guarded


def _guard(side: RequestSide) -> None:
    """Wrap a third-party request side's methods (:data:`_LISTINGS`, :data:`_CALLS`) on the instance."""
    for method, kind in _LISTINGS.items():
        setattr(side, method, _listing(side.name, method, getattr(side, method), kind))
    for method in _CALLS:
        setattr(side, method, _call(side.name, method, getattr(side, method)))


def _load_side(name: str, target: str) -> RequestSide:
    """Import ``package.module:attr`` and return the request side it names (a subclass, instantiated, or an instance)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise TypeError(f"'{target}' is not package.module:Class")
    found: Any = getattr(importlib.import_module(module_name), attr)
    side = found() if isinstance(found, type) and issubclass(found, RequestSide) else found
    if not isinstance(side, RequestSide):
        raise TypeError(f"{target} is not a demod_voice.backends.plugin.RequestSide")
    if side.name != name:
        raise TypeError(f"{target} calls itself '{side.name}', but is registered as '{name}'")
    if not side.engine or ":" not in side.engine:
        raise TypeError(f"{target} names no engine side (its 'engine' must be package.module:Class)")
    return side


def _declared() -> list[tuple[str, str, str]]:
    """(name, source, target) of every backend: built-ins first, then entry points."""
    found = [(name, "built-in", target) for name, target in BUILTIN.items()]
    for point in sorted(metadata.entry_points(group=GROUP), key=lambda p: p.name):
        source = point.dist.name if getattr(point, "dist", None) is not None else "an installed package"
        found.append((point.name, source, point.value))
    return found


def load() -> Registry:
    """Load every backend's request side (once per process; :func:`reload` starts over)."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        registry = Registry({}, [])
        sources: dict[str, str] = {}
        for name, source, target in _declared():
            if name in registry.sides:
                holder = "a built-in backend" if sources[name] == "built-in" else f"the backend from {sources[name]}"
                registry.failures.append(PluginFailure(name, source, target, f"the name '{name}' is already taken by {holder}"))
                continue
            sources[name] = source
            try:
                # stdout carries data (raw audio, JSON): a plugin that prints while it is imported writes to stderr.
                with contextlib.redirect_stdout(sys.stderr):
                    side = _load_side(name, target)
                if source != "built-in":
                    _guard(side)
                registry.sides[name] = side
            except (Exception, SystemExit) as err:  # noqa: BLE001 - a broken plugin (even one calling sys.exit) must never break the others
                log.info("backend %s (%s) could not be loaded: %s: %s", name, source, type(err).__name__, err)
                log.debug("backend %s (%s) could not be loaded:\n%s", name, source, traceback.format_exc())
                registry.failures.append(PluginFailure(name, source, target, f"{type(err).__name__}: {err}"))
        _loaded = registry
        return registry


def reload() -> Registry:
    """Forget what was loaded and load again (after installing a plugin; tests)."""
    global _loaded
    with _lock:
        _loaded = None
    return load()


def request_sides() -> list[RequestSide]:
    """Every registered request side, in lookup order."""
    return list(load().sides.values())


def request_side(name: str) -> RequestSide:
    """The request side called ``name``; :class:`UsageError` naming the others when there is none."""
    side = load().sides.get(name)
    if side is None:
        raise UsageError(missing(name))
    return side


def missing(name: str) -> str:
    """Why there is no backend called ``name``, in one line: its plugin failed to load (and why), or the names there are."""
    registry = load()
    failed = next((f for f in registry.failures if f.name == name), None)
    if failed is not None:
        return f"backend '{name}' is installed but could not be loaded ({failed.error}); 'demod-voice health' says more"
    return f"unknown backend '{name}'; choose one of {', '.join(registry.sides)}"


def cloner() -> RequestSide:
    """The backend that makes voices from recordings (the first whose ``clones`` is set): ``voices add``, ``POST /v1/voices``,
    the page's Clone and Voices tabs; :class:`UsageError` when none is registered."""
    side = next((side for side in load().sides.values() if side.clones), None)
    if side is None:
        raise UsageError("no backend here makes voices from recordings; 'demod-voice health' lists the backends")
    return side


def converter() -> RequestSide:
    """The backend that re-speaks recordings in another voice (the first whose ``converts`` is set): ``convert``,
    ``POST /v1/audio/conversions``, the page's Convert tab; :class:`UsageError` when none is registered."""
    side = next((side for side in load().sides.values() if side.converts), None)
    if side is None:
        raise UsageError("no backend here converts recordings; 'demod-voice health' lists the backends")
    return side


def names() -> list[str]:
    """Registered backend names, in lookup order."""
    return list(load().sides)


def failures() -> list[PluginFailure]:
    """Backends that were declared but could not be loaded."""
    return list(load().failures)


def engine_target(name: str) -> str:
    """``package.module:Class`` of backend ``name``'s engine side (``name`` itself when it is such a path: tests)."""
    side = load().sides.get(name)
    if side is not None:
        return side.engine
    target = BACKENDS.get(name, name)
    if ":" not in target:
        raise UsageError(f"unknown backend '{name}'; choose one of {', '.join(sorted({*names(), *BACKENDS}))}")
    return target


def create_backend(name: str) -> Backend:
    """Instantiate backend ``name``'s engine side (in a worker), or a class named by a ``module:Class`` path (tests)."""
    module_name, _, class_name = engine_target(name).partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()
