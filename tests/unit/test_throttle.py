"""Wrong API keys counted by client address (serve/throttle.py), without a server."""

from __future__ import annotations

import logging

import pytest

from demod_voice.serve.auth import AuthFailed, KeyRing
from demod_voice.serve.throttle import FailedKeys, TooManyFailedKeys, client_id

GOOD = "speak-key-0001"
RING = KeyRing({GOOD: frozenset({"speak"})})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(throttle: FailedKeys, address: str, key: str) -> int:
    """The status a key check from ``address`` ends in (200 for a good key)."""
    header = f"Bearer {key}"
    try:
        throttle.check(address, header, lambda: RING.identify(header))
    except AuthFailed as err:
        return err.status
    return 200


def test_an_address_past_its_wrong_keys_is_refused_good_keys_too_and_others_are_not(caplog):
    """A client could try keys as fast as it liked (401 each time, nothing slowed or said); past the limit its address
    gets 429 with the seconds to wait, even for a good key (a good key's 200 would tell a hit from a miss), while a
    good key from another address still passes, and the log says it once, without any key."""
    clock = Clock()
    throttle = FailedKeys(5, shortest=len(GOOD), clock=clock)
    with caplog.at_level(logging.WARNING, logger="demod_voice.serve.throttle"):
        assert [attempt(throttle, "203.0.113.9", f"guess-number-{i:04d}") for i in range(5)] == [401] * 5
        assert attempt(throttle, "203.0.113.9", "guess-number-9999") == 429
        assert attempt(throttle, "203.0.113.9", GOOD) == 429
    assert attempt(throttle, "203.0.113.10", GOOD) == 200
    with pytest.raises(TooManyFailedKeys) as refused:
        throttle.check("203.0.113.9", f"Bearer {GOOD}", lambda: None)
    assert 1 <= refused.value.wait <= 60 and "wait" in str(refused.value)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "203.0.113.9" in warnings[0] and "max_failed_keys" in warnings[0], warnings
    assert not any("guess-number" in w or GOOD in w for w in warnings)
    clock.now += 61
    assert attempt(throttle, "203.0.113.9", GOOD) == 200


def test_a_good_key_does_not_clear_the_count():
    """A client holding one key could otherwise guess at another at full speed between two good requests."""
    throttle = FailedKeys(3, shortest=len(GOOD), clock=Clock())
    for i in range(3):
        assert attempt(throttle, "203.0.113.9", GOOD) == 200
        assert attempt(throttle, "203.0.113.9", f"guess-number-{i:04d}") == 401
    assert attempt(throttle, "203.0.113.9", GOOD) == 429


def test_what_is_no_new_guess_is_not_counted():
    """The same wrong key again (a client left with an old key), a key shorter than every key (the page checks its key
    field as it is typed), a missing or malformed header: none is a guess at a key."""
    throttle = FailedKeys(3, shortest=len(GOOD), clock=Clock())
    for _ in range(10):
        assert attempt(throttle, "203.0.113.9", "an-old-revoked-key") == 401
    for prefix in range(1, len(GOOD)):
        assert attempt(throttle, "203.0.113.9", "x" * prefix) == 401
    for header in (None, "", "Basic c3BlYWs6a2V5", "Bearer "):
        with pytest.raises(AuthFailed):
            throttle.check("203.0.113.9", header, lambda h=header: RING.identify(h))
    assert attempt(throttle, "203.0.113.9", GOOD) == 200


def test_a_longer_key_typed_into_the_page_is_one_guess_however_many_of_its_prefixes_were_checked():
    """The page checks its key field as it is typed (each change lists the voices the key may use). Where the server's
    keys differ in length, every prefix of a longer key at least as long as the shortest was a new wrong key: a person
    typing a 48-character key beside a 14-character one was refused ('wait 60 s') before reaching its end, the right
    key too. A key that goes on from the address's last wrong one is that guess, typed further; a typo taken back
    costs one."""
    long_key = "0123456789abcdef" * 3
    ring = KeyRing({GOOD: frozenset({"speak"}), long_key: frozenset({"admin"})})
    throttle = FailedKeys(10, shortest=ring.shortest, clock=Clock())

    def typed(text: str) -> int:
        header = f"Bearer {text}"
        try:
            throttle.check("203.0.113.9", header, lambda: ring.identify(header))
        except AuthFailed as err:
            return err.status
        return 200

    assert [typed(long_key[:n]) for n in range(len(GOOD), 20)] == [401] * 6
    assert typed(long_key[:20] + "x") == 401 and typed(long_key[:20]) == 401  # a typo, taken back
    assert [typed(long_key[:n]) for n in range(21, len(long_key))] == [401] * (len(long_key) - 21)
    assert typed(long_key) == 200
    # other guesses are counted as before, one by one
    assert [typed(f"guess-number-{i:04d}") for i in range(8)] == [401] * 8
    assert typed(long_key) == 429


def test_an_ipv6_client_is_counted_by_its_64_and_odd_addresses_are_cut():
    assert client_id("2001:db8:1:2:aaaa::1") == client_id("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert client_id("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_id("\x1b[2J" + "a" * 500) == "[2J" + "a" * 58 + "..."
    throttle = FailedKeys(2, shortest=len(GOOD), clock=Clock())
    for i, host in enumerate(("2001:db8:1:2::1", "2001:db8:1:2::2")):
        assert attempt(throttle, host, f"guess-number-{i:04d}") == 401
    assert attempt(throttle, "2001:db8:1:2::3", GOOD) == 429
    assert attempt(throttle, "2001:db8:1:3::1", GOOD) == 200


def test_many_addresses_do_not_grow_it():
    """Addresses past the bound push out the one that failed longest ago: a client with many addresses (or a proxy that
    passes whatever a client writes in X-Forwarded-For) cannot grow the server."""
    throttle = FailedKeys(3, shortest=len(GOOD), capacity=100, clock=Clock())
    for i in range(5000):
        attempt(throttle, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "guess-number-0001")
    assert len(throttle) == 100


def test_zero_is_no_limit():
    throttle = FailedKeys(0, shortest=len(GOOD), clock=Clock())
    assert [attempt(throttle, "203.0.113.9", f"guess-number-{i:04d}") for i in range(50)] == [401] * 50
    assert len(throttle) == 0
