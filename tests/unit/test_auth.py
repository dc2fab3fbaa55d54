"""API keys and binding rules, without a server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from demod_voice.errors import ConfigError, UsageError
from demod_voice.serve.auth import AuthFailed, KeyRing, check_bind, is_loopback, load_keys, parse_scopes, read_keys_file


def settings(keys=None, keys_file=None):
    return SimpleNamespace(keys=keys, keys_file=keys_file)


def test_no_keys_means_no_ring():
    assert load_keys(settings()) is None


def test_scopes_from_config_and_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# comment\n\nfile-key-123456 enroll, speak  # trailing comment\n", encoding="utf-8")
    ring = load_keys(settings({"config-key-1234": "speak", "admin-key-12345": ["admin"]}, str(path)))
    assert len(ring) == 3
    ring.check("Bearer config-key-1234", "speak")
    ring.check("Bearer file-key-123456", "enroll")
    ring.check("bearer  admin-key-12345 ", "enroll")  # admin includes every scope; scheme case-insensitive
    with pytest.raises(AuthFailed) as err:
        ring.check("Bearer config-key-1234", "enroll")
    assert err.value.status == 403 and "'enroll'" in str(err.value)


def test_an_enroll_key_may_speak_and_list_what_it_manages():
    """docs/security.md: an ``enroll`` key may do what a ``speak`` key may, plus manage voices. An enroll-only key could
    delete a voice but got 403 listing voices or speaking with them."""
    ring = KeyRing({"enroll-key-1234": frozenset({"enroll"}), "speak-key-12345": frozenset({"speak"})})
    for scope in ("speak", "enroll"):
        ring.check("Bearer enroll-key-1234", scope)
    for key, scope in (("enroll-key-1234", "admin"), ("speak-key-12345", "enroll"), ("speak-key-12345", "admin")):
        with pytest.raises(AuthFailed) as err:
            ring.check(f"Bearer {key}", scope)
        assert err.value.status == 403


@pytest.mark.parametrize("header,status", [(None, 401), ("", 401), ("Basic abc", 401), ("Bearer", 401),
                                           ("Bearer wrong-key-0000", 401), ("Bearer config-key-12345", 401)])
def test_missing_malformed_or_wrong_keys_are_401(header, status):
    ring = KeyRing({"config-key-1234": frozenset({"speak"})})
    with pytest.raises(AuthFailed) as err:
        ring.check(header, "speak")
    assert err.value.status == status


def test_keys_are_kept_as_digests_only():
    ring = KeyRing({"very-secret-key-1": frozenset({"speak"})})
    assert "very-secret-key-1" not in repr(vars(ring))


@pytest.mark.parametrize("value", ["speak,shout", [], "", 5])
def test_bad_scopes_fail_loudly(value):
    with pytest.raises(ConfigError):
        parse_scopes(value, "serve.keys.x")


def test_short_keys_and_bad_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 8"):
        KeyRing({"short": frozenset({"speak"})})
    bad = tmp_path / "keys"
    bad.write_text("onlyakey\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1"):
        read_keys_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_keys_file(tmp_path / "missing")


@pytest.mark.parametrize("key", ["clé-secrète-2026", "tab\there-and-more", "ключ-доступа-123"])
def test_a_key_no_client_could_send_is_refused_at_start_without_showing_it(key, tmp_path):
    """A header's bytes are read as Latin-1 and a key was compared as UTF-8, so a key with a character outside printable
    ASCII, accepted at start, matched nothing a client sent (hkeys, s21): every request with it was a wrong key."""
    with pytest.raises(ConfigError, match="printable ASCII") as refused:
        load_keys(SimpleNamespace(keys={key: "speak"}, keys_file=None))
    assert key not in str(refused.value)
    listed = tmp_path / "keys"
    listed.write_text(f"{key.replace(chr(9), '-')} speak\n", encoding="utf-8")
    listed.chmod(0o600)
    if key.isascii():
        return
    with pytest.raises(ConfigError, match="printable ASCII"):
        load_keys(SimpleNamespace(keys=None, keys_file=str(listed)))


def test_a_keys_file_with_no_keys_is_refused_not_taken_for_no_auth(tmp_path, caplog):
    """A keys file of comments only gave a server with no keys at all (every scope open to any local program), and on
    0.0.0.0 a refusal telling the administrator to configure the keys file they had configured."""
    empty = tmp_path / "keys"
    empty.write_text("# keys: KEY scope,scope\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds no keys") as err:
        load_keys(settings(None, str(empty)))
    assert "KEY scope" in str(err.value)
    # a key repeated on two lines is refused (the last line's scopes won, silently), naming lines, never the key
    twice = tmp_path / "twice"
    twice.write_text("same-key-123456 admin\nsame-key-123456 speak\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2 repeats the key of line 1") as err:
        read_keys_file(twice)
    assert "same-key" not in str(err.value)
    # a '#' inside a key is part of it; a comment starts at a '#' after a space or at the line's start
    hashed = tmp_path / "hashed"
    hashed.write_text("abc#def-123456 speak # the kitchen tablet\n", encoding="utf-8")
    load_keys(settings(None, str(hashed))).check("Bearer abc#def-123456", "speak")
    # a keys file others may read is said in the log (anyone on the machine could take a key)
    hashed.chmod(0o644)
    with caplog.at_level("WARNING"):
        load_keys(settings(None, str(hashed)))
    assert "other users can read" in caplog.text and "chmod 600" in caplog.text
    hashed.chmod(0o600)
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_keys(settings(None, str(hashed)))
    assert "other users can read" not in caplog.text


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
                                           ("127.8.9.10", True), ("0.0.0.0", False), ("192.168.1.2", False), ("::", False),
                                           ("example.org", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_without_keys():
    check_bind("127.0.0.1", None, False)
    with pytest.raises(UsageError, match="--insecure-no-auth"):
        check_bind("0.0.0.0", None, False)
    check_bind("0.0.0.0", None, True)
    check_bind("0.0.0.0", KeyRing({"config-key-1234": frozenset({"speak"})}), False)


def test_the_start_says_how_many_keys_of_each_scope_or_that_there_are_none():
    """A server whose keys were not read (a config file it never saw) said only where it listened: nothing told its
    administrator that every program could use it. The start says the keys' count by scope, never a key."""
    from demod_voice.serve.auth import keys_said

    assert keys_said(None).startswith("no API keys: every program that can reach the server may use it")
    keys = {"speak-key-000001": "speak", "speak-key-000002": "speak", "enroll-key-00003": "speak,enroll",
            "admin-key-000004": "admin"}
    said = keys_said(load_keys(settings(keys)))
    assert said.startswith("4 API key(s) (1 admin, 1 enroll, 2 speak)"), said
    assert not any(key in said for key in keys)
    assert keys_said(load_keys(settings({"speak-key-000001": "speak"}))).startswith("1 API key(s) (1 speak)")
