"""Whom a request is counted as, behind proxies and with many addresses (serve/clients.py), on one live server.

The server has keys, the web page, ``serve.limits.max_failed_keys`` 2 and two trusted proxies: this machine (127.0.0.1) and
127.0.0.2, which stands for a proxy on another machine. 127.0.0.3 is a peer nobody
listed. Connections are made from those addresses (all loopback). Every test is bounded in time.
"""

from __future__ import annotations

import signal

import httpx
import pytest
from conftest import run_cli
from live_server import start_server

SPEAK = "speak-key-0001-abcdefgh"
ENROLL = "enroll-key-0002-abcdefgh"
FAILED = 2
SHARED_LIMIT = 10 * FAILED
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice):
    folder = tmp_path_factory.mktemp("client-addresses")
    config = {"serve": {"keys": {SPEAK: "speak", ENROLL: "speak,enroll"}, "grace_seconds": 1.0, "piper_voices": [str(piper_voice)],
                        "trusted_proxies": ["127.0.0.1", "::1", "127.0.0.2"], "ipv6_prefix": 56,
                        "limits": {"max_failed_keys": FAILED}}}
    from demod_voice.config import ServeSettings  # (a key this version lacks is left out: the module runs on older code too)

    config["serve"] = {k: v for k, v in config["serve"].items() if k in ServeSettings.__dataclass_fields__}
    live = start_server(folder, config, "--ui", timeout=120)
    yield live
    live.stop(signal.SIGKILL)


def models(server, key: str, headers: dict, source: str = "127.0.0.1") -> httpx.Response:
    """``GET /v1/models`` with ``key``, from the local address ``source``."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=TIMEOUT) as client:
        return client.get(f"{server.url}/v1/models", headers={**headers, "Authorization": f"Bearer {key}"})


def test_wrong_keys_through_a_proxy_that_hides_its_clients_are_still_limited(server):
    """Behind a proxy on this machine that sends no X-Forwarded-For (nginx's common recipe sets X-Real-IP only), wrong
    keys were not counted at all (so that one person's would not lock the others out): a guesser through it had no
    limit. Its clients now share one count, of 10 times the limit: past it every key through that proxy gets 429 in
    words, while a program on this machine that is no proxy, and a client the proxy names, still pass."""
    statuses = [models(server, f"hidden-guess-{i:04d}-abcdefgh", {"X-Real-IP": f"203.0.113.{i}"}).status_code
                for i in range(SHARED_LIMIT + 1)]
    assert statuses == [401] * SHARED_LIMIT + [429], statuses
    refused = models(server, SPEAK, {"X-Real-IP": "203.0.113.200", "Via": "1.1 nginx"})
    assert refused.status_code == 429 and refused.headers["retry-after"].isdigit(), refused.text
    error = refused.json()["error"]
    assert error["code"] == "too_many_failed_keys" and "through the proxy" in error["message"], error
    assert "\n" not in error["message"], error
    assert models(server, SPEAK, {}).status_code == 200
    assert models(server, SPEAK, {"X-Forwarded-For": "198.51.100.77"}).status_code == 200
    log = server.log_text()
    said = [line for line in log.splitlines() if "does not say whose they are" in line]
    assert len(said) == 1 and "X-Forwarded-For $remote_addr" in said[0], said
    assert "the clients of the proxy at 127.0.0.1 sent 20 wrong API keys" in log, log
    assert "hidden-guess" not in log


def test_behind_a_proxy_that_names_clients_in_x_real_ip_one_person_locks_out_only_themselves(server):
    """nginx's common recipe names the client in X-Real-IP only. Counted together, one person could use up the count
    all the proxy's clients share (20 wrong keys here, 100 by default) and lock every other out for a minute; the
    address in X-Real-IP now has its own count as well, so they are refused after their own max_failed_keys and the
    shared count keeps room for the others. (From 127.0.0.2, a listed proxy: the module's other test of such a proxy
    fills 127.0.0.1's shared count.)"""
    guesser = {"X-Real-IP": "203.0.113.50"}
    statuses = [models(server, f"named-guess-{i:04d}-abcdefgh", guesser, "127.0.0.2").status_code
                for i in range(SHARED_LIMIT + 1)]
    assert statuses == [401] * FAILED + [429] * (SHARED_LIMIT + 1 - FAILED), statuses
    refused = models(server, SPEAK, guesser, "127.0.0.2")
    assert refused.status_code == 429 and "from this address" in refused.json()["error"]["message"], refused.text
    assert models(server, SPEAK, {"X-Real-IP": "203.0.113.51"}, "127.0.0.2").status_code == 200


def test_a_client_that_writes_its_own_x_forwarded_for_through_an_x_real_ip_proxy_is_still_held(server):
    """nginx's X-Real-IP recipe passes a client-written X-Forwarded-For on, which the server believes from the proxy: a
    guesser naming a new address for each guess escaped every count (40 wrong keys: 401 each, then a good key 200). Its
    X-Real-IP, which the proxy writes, is now a count of its own: it is held after max_failed_keys. A guesser that names
    another person's address in X-Forwarded-For does not lock that person out (their X-Real-IP count is apart)."""
    statuses = [models(server, f"xff-guess-{i:04d}-abcdefgh", {"X-Real-IP": "203.0.113.60",
                                                               "X-Forwarded-For": f"198.51.100.{100 + i}"}, "127.0.0.2").status_code
                for i in range(FAILED + 3)]
    assert statuses == [401] * FAILED + [429] * 3, statuses
    assert models(server, SPEAK, {"X-Real-IP": "203.0.113.61", "X-Forwarded-For": "198.51.100.200"}, "127.0.0.2").status_code == 200
    for i in range(FAILED + 1):
        models(server, f"framing-guess-{i:04d}-abcdefgh", {"X-Real-IP": "203.0.113.62", "X-Forwarded-For": "203.0.113.63"},
               "127.0.0.2")
    assert models(server, SPEAK, {"X-Real-IP": "203.0.113.63"}, "127.0.0.2").status_code == 200


def test_a_listed_proxy_on_another_machine_gives_each_clients_own_address(server):
    """Behind a proxy on another machine every client had the proxy's address: one person's wrong keys locked every
    other out for a minute. Listed in serve.trusted_proxies, its X-Forwarded-For is believed: the guesser alone is
    refused."""
    guesser, other = {"X-Forwarded-For": "198.51.100.10"}, {"X-Forwarded-For": "198.51.100.11"}
    statuses = [models(server, f"far-guess-{i:04d}-abcdefgh", guesser, "127.0.0.2").status_code for i in range(FAILED + 1)]
    assert statuses == [401] * FAILED + [429], statuses
    assert models(server, SPEAK, other, "127.0.0.2").status_code == 200
    assert models(server, SPEAK, guesser, "127.0.0.2").status_code == 429


def test_an_unlisted_proxy_is_one_client_and_the_log_says_what_to_set(server):
    """A peer not in serve.trusted_proxies is the client, whatever address it writes (or a client could name a new one
    for each guess); when it sends proxy headers the log says once which setting would believe them."""
    statuses = [models(server, f"unlisted-guess-{i:04d}-abcdefgh", {"X-Forwarded-For": f"198.51.100.{20 + i}"},
                       "127.0.0.3").status_code for i in range(FAILED + 1)]
    assert statuses == [401] * FAILED + [429], statuses
    models(server, SPEAK, {"X-Real-IP": "198.51.100.99"}, "127.0.0.3")
    said = [line for line in server.log_text().splitlines() if "not in serve.trusted_proxies" in line]
    assert len(said) == 1 and "127.0.0.3" in said[0] and "add its address to serve.trusted_proxies" in said[0], said


def test_a_client_with_many_ipv6_addresses_is_one_client(server):
    """An IPv6 client is counted by its network of serve.ipv6_prefix bits (here 56: an ISP that gives each customer a
    /56 gives it 256 /64s, each of which had its own count): a new address in it is no new client; another network is."""
    statuses = [models(server, f"ipv6-guess-{i:04d}-abcdefgh", {"X-Forwarded-For": f"2001:db8:0:{i:x}::{i + 1:x}"}).status_code
                for i in range(FAILED + 1)]
    assert statuses == [401] * FAILED + [429], statuses
    assert models(server, SPEAK, {"X-Forwarded-For": "2001:db8:0:ff::1"}).status_code == 429
    assert models(server, SPEAK, {"X-Forwarded-For": "2001:db8:0:100::1"}).status_code == 200


def test_a_server_others_can_reach_says_what_to_set_for_a_proxy_elsewhere(tmp_path):
    """On an address other machines reach, nothing said that a proxy there must be listed for its clients to be told
    apart (each one's wrong keys locked all out); now one line at start says it, unless the proxies are listed. (A
    TEST-NET address is none of this machine's: the server stops at its listen check, after the warnings.)"""
    config = tmp_path / "config.yaml"
    config.write_text(f"serve:\n  keys:\n    {SPEAK}: speak\n", encoding="utf-8")
    config.chmod(0o600)
    done = run_cli("serve", "--config", str(config), "--host", "192.0.2.1", "--port", "5999", cwd=tmp_path,
                   env={"FORWARDED_ALLOW_IPS": ""})
    err = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in err, err
    assert "list its address in serve.trusted_proxies" in err, err
    config.write_text(f"serve:\n  keys:\n    {SPEAK}: speak\n  trusted_proxies: [192.0.2.9]\n", encoding="utf-8")
    done = run_cli("serve", "--config", str(config), "--host", "192.0.2.1", "--port", "5999", cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode != 0 and "trusted_proxies" not in err, err


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start_in_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"serve:\n  keys:\n    {SPEAK}: speak\n  trusted_proxies: [proxy.example.org]\n", encoding="utf-8")
    config.chmod(0o600)
    done = run_cli("serve", "--config", str(config), "--port", "5999", cwd=tmp_path)
    err = done.stderr.decode().strip()
    assert done.returncode != 0 and "Traceback" not in err, err
    assert err.count("\n") == 0 and "serve.trusted_proxies: 'proxy.example.org' is not an address" in err, err


def test_a_page_user_whose_address_is_refused_is_told_why_when_the_voices_do_not_come(server):
    """The page lists the voices a key may use when the key is typed; while the address was refused for its wrong keys
    the list stayed empty without a word (only a button said why). It now says why in a notice."""
    from test_security_page_wyoming import Page

    page, person = Page(server.url), {"X-Forwarded-For": "198.51.100.90"}
    statuses = [models(server, f"typo-guess-{i:04d}-abcdefgh", person).status_code for i in range(FAILED + 1)]
    assert statuses == [401] * FAILED + [429], statuses
    page.call("dv-key", "change", {"dv-key": SPEAK}, headers=person, which=-1)  # the voice pickers' refresh
    said = [m.get("log", "") for m in page.messages if m.get("msg") == "log"]
    assert len(said) == 1 and "Too many wrong API keys came from your address" in said[0] and "wait" in said[0], page.messages


def test_zz_a_program_on_this_machine_cannot_lock_the_pages_users_out_of_its_actions(server):
    """The page's actions that call the server's own API (import, delete, rename, convert, batch) made those calls from
    127.0.0.1: after wrong keys from a program on this machine (or through a proxy that names no client) every page user,
    whatever their own address and key, got "too many wrong API keys came from this address" for a minute. The calls are
    now the event's client's. (Last in the module: it locks 127.0.0.1 out for a minute.)"""
    from test_security_page_wyoming import Page, file_data

    page, proxied = Page(server.url), {"X-Forwarded-For": "198.51.100.61"}

    def imported() -> str:
        sent = httpx.post(f"{server.url}/ui/gradio_api/upload", files=[("files", ("x.npz", b"not a profile"))],
                          headers={**proxied, "Authorization": f"Bearer {SPEAK}"}, timeout=TIMEOUT)
        assert sent.status_code == 200, sent.text
        values = {"dv-key": ENROLL, "dv-import-file": file_data(sent.json()[0], "x.npz"), "dv-import-name": ""}
        return page.call("dv-import", "click", values, headers=proxied)["output"]["data"][0]

    assert "is not a demod-voice profile" in imported()
    assert [models(server, f"local-guess-{i:04d}-abcdefgh", {}).status_code for i in range(FAILED + 1)] == [401] * FAILED + [429]
    words = imported()
    assert "is not a demod-voice profile" in words and "too many" not in words, words
