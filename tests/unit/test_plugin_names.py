"""A plugin that takes a name already registered (a built-in's, or another plugin's) is refused and reported by
``health`` without costing the backend that holds the name: that one stays usable, and the report says which name
clashed with whom and how to fix it."""

from __future__ import annotations

import textwrap

import pytest

from demod_voice.backends import registry
from demod_voice.checks import FAIL, OK, Check
from demod_voice.health import Report, check_plugins

PLUGIN = textwrap.dedent('''
    from demod_voice.backends.plugin import RequestSide

    class Tone(RequestSide):
        name = "tone"
        engine = "tone_side:Engine"

    class Piper(Tone):
        name = "piper"
''')


@pytest.fixture
def declared(tmp_path, monkeypatch):
    """Built-ins, then two packages that both declare ``tone`` and one that declares ``piper``."""
    (tmp_path / "tone_side.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    builtins = [(name, "built-in", target) for name, target in registry.BUILTIN.items()]
    plugins = [("piper", "demod-voice-piper2", "tone_side:Piper"), ("tone", "tone-a", "tone_side:Tone"),
               ("tone", "tone-b", "tone_side:Tone")]
    monkeypatch.setattr(registry, "_declared", lambda: builtins + plugins)
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


def test_a_taken_name_costs_the_holder_nothing(declared):
    assert registry.names() == [*registry.BUILTIN, "tone"]
    checks = check_plugins()
    assert [(c.name, c.status) for c in checks] == [("backend piper", FAIL), ("backend tone", FAIL)]
    report = Report(checks=[Check("python", OK, ""), *checks], backends=registry.names())
    assert report.usable == registry.names()  # piper (the built-in) and tone (the first) work on


def test_a_taken_name_is_reported_with_its_holder_and_the_fix(declared):
    failed = {(f.name, f.source): f.error for f in registry.failures()}
    assert failed == {("piper", "demod-voice-piper2"): "the name 'piper' is already taken by a built-in backend",
                      ("tone", "tone-b"): "the name 'tone' is already taken by the backend from tone-a"}
    assert all(c.fix.startswith("give it a name of its own, in its entry point and its RequestSide's 'name'")
               for c in check_plugins())


def test_the_report_names_each_backend_once(declared, monkeypatch):
    from demod_voice import health
    from demod_voice.config import Config

    monkeypatch.setattr(health, "check_recogniser", lambda: Check("recogniser", OK, ""))
    monkeypatch.setattr(health, "check_ffmpeg", lambda: Check("ffmpeg", OK, ""))
    for side in registry.request_sides():
        monkeypatch.setattr(side, "checks", lambda config: [])
    report = health.run_checks(None, Config())
    assert report.backends == registry.names()
