"""What ``health`` says about the serve extra."""

from __future__ import annotations

import sys

import pytest

from demod_voice.checks import OK, WARN
from demod_voice.errors import DependencyError
from demod_voice.serve.status import check_installed, check_serve


def test_serve_extra_usable_here():
    check = check_serve()
    assert check.status == OK and "mp3, opus, aac, flac" in check.detail and check.needed_by == ()


def test_missing_package_is_a_warning_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes 'import av' fail
    with pytest.raises(DependencyError, match=r"serve needs av: pip install 'demod-voice\[serve\]'"):
        check_installed()
    check = check_serve()
    assert check.status == WARN and "demod-voice[serve]" in check.fix


def test_health_says_whether_the_wyoming_extra_is_usable(monkeypatch):
    from importlib import metadata

    from demod_voice.serve.status import check_wyoming

    check = check_wyoming()
    assert check.status == OK and check.detail.startswith("wyoming ")
    real = metadata.version

    def without_wyoming(name):
        if name == "wyoming":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", without_wyoming)
    check = check_wyoming()
    assert check.status == WARN and "demod-voice[wyoming]" in check.fix
