"""Whose word on the client's address and scheme is believed (shared.http.Proxies),
and how long a log-in gate stays shut (aiguillage.console.people.Gate): issue 28."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from aiguillage.console.people import ACCOUNT_GATE, PAIR_GATE
from shared.http import Proxies
from shared.settings import Settings


def _scope(peer: str | None, scheme: str = "http", **headers: str) -> dict[str, object]:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 40000) if peer else None,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


PROXIES = Proxies(["10.0.0.5", "10.1.0.0/16"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "address"),
    [
        # Not a proxy: whatever it says, the socket's peer.
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        ("203.0.113.9", None, "203.0.113.9"),
        # Our proxy: the hop it saw.
        ("10.0.0.5", "198.51.100.7", "198.51.100.7"),
        # The client wrote a first hop itself: the last untrusted one is the address.
        ("10.0.0.5", "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        # Two of our proxies in a row.
        ("10.0.0.5", "198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("10.0.0.5", "[2001:db8::1]:4711", "2001:db8::1"),
        ("10.0.0.5", "198.51.100.7:4711", "198.51.100.7"),
        # Nonsense from our proxy: the proxy, the one thing we know.
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
        # Only proxies: the first.
        ("10.0.0.5", "10.1.0.9", "10.1.0.9"),
        ("10.0.0.5", None, "10.0.0.5"),
        (None, "1.2.3.4", "unknown"),
    ],
)
def test_the_client_address(peer: str | None, forwarded: str | None, address: str) -> None:
    headers = {"x_forwarded_for": forwarded} if forwarded else {}
    assert PROXIES.client_address(_scope(peer, **headers)) == address


def test_several_forwarded_headers_read_as_one_list() -> None:
    scope = _scope("10.0.0.5")
    scope["headers"] = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"198.51.100.7")]
    assert PROXIES.client_address(scope) == "198.51.100.7"


def test_over_tls() -> None:
    assert PROXIES.over_tls(_scope("203.0.113.9", "https"))
    assert not PROXIES.over_tls(_scope("203.0.113.9", x_forwarded_proto="https"))
    assert PROXIES.over_tls(_scope("10.0.0.5", x_forwarded_proto="https"))
    assert PROXIES.over_tls(_scope("10.0.0.5", x_forwarded_proto="http, https"))
    assert not PROXIES.over_tls(_scope("10.0.0.5", x_forwarded_proto="https, http"))
    assert not Proxies().over_tls(_scope("127.0.0.1", x_forwarded_proto="https"))


def test_the_setting_takes_addresses_and_networks_only() -> None:
    assert Settings(trusted_proxies="10.0.0.5, 10.1.0.0/16").trusted_proxies == [
        "10.0.0.5",
        "10.1.0.0/16",
    ]
    with pytest.raises(ValidationError):
        Settings(trusted_proxies="proxy.example.org")


def test_a_gate_delays_and_never_locks() -> None:
    delays = [PAIR_GATE.delay(n) for n in range(1, 30)]
    assert delays[:4] == [timedelta(0)] * 4
    assert [d.total_seconds() for d in delays[4:9]] == [1, 2, 4, 8, 16]
    assert max(delays) == PAIR_GATE.cap == timedelta(minutes=15)
    assert ACCOUNT_GATE.delay(10_000) == ACCOUNT_GATE.cap == timedelta(minutes=5)
