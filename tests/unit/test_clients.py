"""Whom a request is counted as (serve/clients.py), without a server."""

from __future__ import annotations

import asyncio

import pytest

from demod_voice.config import ServeSettings
from demod_voice.errors import ConfigError
from demod_voice.serve.clients import CLIENT, PEER, Client, ClientAddress, client_id, trusted_proxies, who
from demod_voice.serve.throttle import FailedKeys


def settings(**fields) -> ServeSettings:
    return ServeSettings(**fields)


def test_only_a_trusted_peer_is_believed_and_a_proxy_that_names_no_client_is_said_to():
    """The socket's peer decides: a listed proxy's X-Forwarded-For names the client; a peer nobody listed is the client
    whatever it writes (and is marked, for the log to say what to set); a listed proxy that names no client but adds a
    proxy's header, or is addressed by a name of serve.allowed_hosts, stands for all its clients."""
    far = settings(trusted_proxies=["127.0.0.1", "10.0.0.0/24"], allowed_hosts=["tts.example.org"])
    assert who("10.0.0.5", "198.51.100.7", {"x-forwarded-for": "198.51.100.7"}, far) == Client("198.51.100.7", proxied=True)
    assert who("192.0.2.7", "192.0.2.7", {"x-forwarded-for": "198.51.100.7"}, far) == Client("192.0.2.7", unlisted=True, proxied=True)
    assert who("192.0.2.7", "192.0.2.7", {"via": "1.1 lb"}, far) == Client("192.0.2.7", unlisted=True, proxied=True)
    assert who("192.0.2.7", "192.0.2.7", {}, far) == Client("192.0.2.7")
    assert who("127.0.0.1", "127.0.0.1", {"x-real-ip": "203.0.113.4"}, far) == \
        Client("127.0.0.1", shared=True, proxied=True, named="203.0.113.4")
    assert who("127.0.0.1", "127.0.0.1", {"host": "tts.example.org"}, far) == Client("127.0.0.1", shared=True)
    assert who("127.0.0.1", "127.0.0.1", {"host": "127.0.0.1:5002"}, far) == Client("127.0.0.1")


def test_the_app_reads_a_trusted_proxys_client_and_keeps_the_peer(monkeypatch):
    """uvicorn's reading of X-Forwarded-For replaced the socket's peer before the app saw it, so the app could not
    tell a proxy's request from its client's; the app now reads it itself (a proxy on this machine, over IPv6 too, is
    trusted by default, as uvicorn did) and keeps the peer."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    seen = {}

    async def app(scope, receive, send):
        seen.update(peer=scope[PEER], client=scope[CLIENT])

    scope = {"type": "http", "client": ("::1", 40000), "headers": [(b"x-forwarded-for", b"2001:db8::7")]}
    asyncio.run(ClientAddress(app, settings())(scope, None, None))
    assert seen == {"peer": "::1", "client": Client("2001:db8::7", proxied=True)}
    scope = {"type": "http", "client": ("192.0.2.7", 40000), "headers": [(b"x-forwarded-for", b"2001:db8::7")]}
    asyncio.run(ClientAddress(app, settings())(scope, None, None))
    assert seen == {"peer": "192.0.2.7", "client": Client("192.0.2.7", unlisted=True, proxied=True)}


def test_trusted_proxies_come_from_the_setting_or_uvicorns_variable_and_a_name_is_refused():
    assert [str(n) for n in trusted_proxies(settings(), env={})] == ["127.0.0.1/32", "::1/128"]
    assert [str(n) for n in trusted_proxies(settings(), env={"FORWARDED_ALLOW_IPS": "10.0.0.5, fd00::/64"})] == \
        ["10.0.0.5/32", "fd00::/64"]
    assert [str(n) for n in trusted_proxies(settings(trusted_proxies=["10.0.0.0/24"]), env={"FORWARDED_ALLOW_IPS": "*"})] \
        == ["10.0.0.0/24"]
    with pytest.raises(ConfigError, match=r"serve.trusted_proxies: 'proxy.example.org' is not an address"):
        trusted_proxies(settings(trusted_proxies=["proxy.example.org"]), env={})
    # an empty list believes no one (docs/security.md: a shared machine with no proxy): a local program's
    # X-Forwarded-For names no new client for each guess
    assert trusted_proxies(settings(trusted_proxies=[]), env={"FORWARDED_ALLOW_IPS": "*"}) == ()
    local = who("127.0.0.1", "198.51.100.9", {"x-forwarded-for": "198.51.100.9"}, settings(trusted_proxies=[]))
    assert (local.address, local.unlisted) == ("127.0.0.1", True)


def test_an_ipv6_client_is_counted_by_its_network_of_the_configured_bits():
    assert client_id("2001:db8:1:2:aaaa::1") == client_id("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert client_id("2001:db8:1:2::1", 56) == client_id("2001:db8:1:ff::1", 56) == "2001:db8:1::/56"
    assert client_id("2001:db8:1:100::1", 56) != client_id("2001:db8:1:2::1", 56)
    assert client_id("192.0.2.1", 56) == "192.0.2.1"


def test_the_clients_of_a_proxy_that_hides_them_share_one_larger_count_apart_from_the_proxys_own():
    """Their wrong keys were not counted at all (a guesser through such a proxy had no limit); they are now counted
    together against 10 times the limit, apart from the proxy machine's own count."""
    throttle = FailedKeys(2, shortest=8, clock=lambda: 1000.0)
    for i in range(20):
        assert throttle.wait("127.0.0.1", shared=True) == 0
        throttle.failed("127.0.0.1", f"guess-number-{i:04d}", shared=True)
    assert throttle.wait("127.0.0.1", shared=True) == 60
    assert throttle.wait("127.0.0.1") == 0


def test_a_forwarded_for_naming_only_the_proxy_is_no_way_out_of_its_shared_count():
    """Behind a proxy that sets X-Real-IP and passes X-Forwarded-For on (nginx's common recipe), a client writing
    "X-Forwarded-For: 127.0.0.1" (or an empty one) was counted as the proxy machine itself, against the plain limit: it
    left the count its proxy's clients share, and its wrong keys locked out the programs on that machine."""
    for written in ("127.0.0.1", "", " , "):
        assert who("127.0.0.1", "127.0.0.1", {"x-forwarded-for": written, "x-real-ip": "203.0.113.9"}, settings()) == \
            Client("127.0.0.1", shared=True, proxied=True, named="203.0.113.9")
    assert who("127.0.0.1", "198.51.100.7", {"x-forwarded-for": "198.51.100.7"}, settings()) == \
        Client("198.51.100.7", proxied=True)
