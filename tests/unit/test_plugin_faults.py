"""A plugin's request side whose own code raises (a bug, a file it reads gone) costs only that plugin: listings every
backend shares leave its entries out, a request it serves fails with one line naming it, ``health`` reports it as
that backend's failed check. Before, its ``voices()`` raising made ``/v1/models``, ``/v1/audio/voices``, Wyoming's
``describe`` and speech with the built-in voices answer 500 "Internal Server Error"; its ``checks()`` raising ended
``health`` with "internal error"."""

from __future__ import annotations

import textwrap

import pytest

from demod_voice.backends import registry
from demod_voice.checks import FAIL, OK, Check
from demod_voice.config import Config
from demod_voice.errors import RuntimeFailure
from demod_voice.serve.errors import from_engine

PLUGIN = textwrap.dedent('''
    from demod_voice.backends.plugin import RequestSide, Voice

    class Buggy(RequestSide):
        name = "buggy"
        engine = "buggy_side:Engine"

        def voices(self, scope):
            raise KeyError("voices.json")

        def models(self, scope):
            raise KeyError("models.json")

        def checks(self, config):
            raise KeyError("checks")

        def resolve(self, scope, voice, speaker, language):
            raise KeyError("resolve")

        def row_job(self, row):
            raise KeyError("row")
''')


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A server's context with the built-ins and the buggy plugin registered."""
    from demod_voice.serve.core import build_context

    (tmp_path / "buggy_side.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = [(name, "built-in", target) for name, target in registry.BUILTIN.items()]
    monkeypatch.setattr(registry, "_declared", lambda: [*declared, ("buggy", "buggy-tts", "buggy_side:Buggy")])
    registry.reload()
    yield build_context(Config(cache_dir=str(tmp_path / "cache")), engine=None)
    monkeypatch.undo()
    registry.reload()


def test_shared_listings_leave_out_only_the_failing_plugin(ctx):
    from demod_voice.backends.plugin import Scope
    from demod_voice.serve.voices import find_voice, list_models, list_voices

    assert "buggy" in registry.names()
    assert list_voices(ctx) and {voice.kind for voice in list_voices(ctx)} <= set(registry.BUILTIN)
    assert "xtts" in list_models(ctx) and find_voice(ctx, "nobody") is None
    scope = Scope(ctx.config, ctx.cache, ctx.cache / "profiles")
    assert registry.request_side("buggy").models(scope) == []


@pytest.mark.parametrize(("module", "given", "said"), [("none_side", "None", "gave a NoneType, not a list of Voice"),
                                                       ("names_side", "['b']", "gave a list holding a str, not only Voices")])
def test_a_listing_of_the_wrong_kind_is_left_out(module, given, said, ctx, tmp_path, monkeypatch, caplog):
    """``voices()`` giving ``None`` or names made ``/v1/models`` and Wyoming's ``describe`` fail for every backend."""
    from demod_voice.serve.voices import list_models, list_voices

    (tmp_path / f"{module}.py").write_text(PLUGIN.replace('raise KeyError("voices.json")', f"return {given}"), encoding="utf-8")
    declared = registry._declared()
    monkeypatch.setattr(registry, "_declared", lambda: [*declared[:-1], ("buggy", "buggy-tts", f"{module}:Buggy")])
    monkeypatch.setattr(registry, "_warned", set())
    registry.reload()
    assert list_voices(ctx) and "xtts" in list_models(ctx)
    assert f"the buggy backend's voices() failed (TypeError: {said})" in caplog.text


def test_a_request_it_serves_fails_in_one_line_naming_it(ctx):
    from demod_voice.backends.plugin import Scope, Voice

    scope = Scope(ctx.config, ctx.cache, ctx.cache / "profiles")
    with pytest.raises(RuntimeFailure) as failed:
        registry.request_side("buggy").resolve(scope, Voice("b", "b", "buggy"), None, None)
    assert str(failed.value) == "the buggy backend's resolve() failed: KeyError: 'resolve'"
    assert from_engine(failed.value).status == 500


def test_health_reports_its_failing_checks_as_its_own(ctx, monkeypatch):
    from demod_voice import health

    monkeypatch.setattr(health, "check_recogniser", lambda: Check("recogniser", OK, ""))
    monkeypatch.setattr(health, "check_ffmpeg", lambda: Check("ffmpeg", OK, ""))
    for side in registry.request_sides():
        if side.name != "buggy":
            monkeypatch.setattr(side, "checks", lambda config: [])
    report = health.run_checks(None, Config())
    failed = [(c.name, c.detail, c.needed_by) for c in report.checks if c.status == FAIL]
    assert failed == [("backend buggy", "its checks() failed: KeyError: 'checks'", ("buggy",))]
    assert report.usable == [name for name in registry.names() if name != "buggy"]


def test_a_plugin_that_exits_or_prints_while_imported_breaks_nothing(tmp_path, monkeypatch, capsys):
    """``sys.exit("needs torch")`` in a plugin's module ended every command (``models list`` printed that and exit 1);
    a ``print`` there went to stdout ahead of ``health --json``'s JSON and ``-o -``'s raw audio."""
    (tmp_path / "exits_side.py").write_text('import sys\nsys.exit("exits_side needs torch")\n', encoding="utf-8")
    (tmp_path / "chatty_side.py").write_text(textwrap.dedent('''
        from demod_voice.backends.plugin import RequestSide
        print("chatty loaded")

        class Chatty(RequestSide):
            name = "chatty"
            engine = "chatty_side:Engine"
    '''), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = [(name, "built-in", target) for name, target in registry.BUILTIN.items()]
    monkeypatch.setattr(registry, "_declared", lambda: [*declared, ("chatty", "chatty-tts", "chatty_side:Chatty"),
                                                        ("exits", "exits-tts", "exits_side:Side")])
    try:
        registry.reload()
        assert registry.names() == [*registry.BUILTIN, "chatty"]
        assert [(f.name, f.error) for f in registry.failures()] == [("exits", "SystemExit: exits_side needs torch")]
        said = capsys.readouterr()
        assert said.out == "" and "chatty loaded" in said.err
    finally:
        monkeypatch.undo()
        registry.reload()


def test_the_traceback_of_a_plugin_that_fails_to_load_is_there_at_debug(tmp_path, monkeypatch, caplog):
    """``-v`` says which plugin failed and why in a line; ``-vv`` showed nothing more, so its author could not see where."""
    import logging

    (tmp_path / "broken_side.py").write_text("import json\n\n\ndef helper():\n    return json.nope\n\n\nhelper()\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_declared", lambda: [("broken", "broken-tts", "broken_side:Side")])
    caplog.set_level(logging.DEBUG, logger=registry.__name__)
    try:
        registry.reload()
        lines = [record.getMessage() for record in caplog.records]
        assert "backend broken (broken-tts) could not be loaded: AttributeError: module 'json' has no attribute 'nope'" in lines
        debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
        assert any("Traceback" in line and "broken_side.py\", line 5, in helper" in line for line in debug), debug
    finally:
        monkeypatch.undo()
        registry.reload()
