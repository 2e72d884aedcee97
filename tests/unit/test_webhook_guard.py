"""A webhook never reaches an address inside: judged on what the name resolves to, at
send time, before any connection; then sent to the address that was judged. No test
here opens a connection: the resolver and the transport are the test's."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from services.notifier.handlers.channels import Refused, TemporaryFailure, Webhook
from shared.webhooks import WebhookPolicy, forbidden

PRODUCTION = WebhookPolicy()
DEVELOPMENT = WebhookPolicy.for_environment(development=True)


class Recorder:
    """A transport that answers 200 and keeps every request it was asked to send."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


class _resolver:
    """A resolver the test controls: the answers it gives, and the names it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.addresses


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_forbidden_addresses(address: str, why: str) -> None:
    assert forbidden(ipaddress.ip_address(address), PRODUCTION) == why


def test_development_allows_loopback_and_nothing_else_inside() -> None:
    assert forbidden(ipaddress.ip_address("127.0.0.1"), DEVELOPMENT) is None
    for inside in ("169.254.169.254", "10.0.0.1", "192.168.1.1", "fd00::1", "fe80::1"):
        assert forbidden(ipaddress.ip_address(inside), DEVELOPMENT) is not None
    assert forbidden(ipaddress.ip_address("93.184.216.34"), PRODUCTION) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://192.168.1.1/hook",
        "https://[fd00::1]/hook",
    ],
)
async def test_an_address_inside_is_refused_before_any_connection(url: str) -> None:
    recorder = Recorder()
    resolver = _resolver("93.184.216.34")  # never trusted over the literal
    webhook = Webhook("s", policy=PRODUCTION, resolver=resolver, transport=recorder.transport)
    with pytest.raises(Refused) as refused:
        await webhook.send(url, "n-1", {"status": "x"})
    assert refused.value.code == "webhook_forbidden_address"
    assert recorder.requests == []


@pytest.mark.parametrize(
    "answers",
    [
        ("169.254.169.254",),
        ("10.0.0.1",),
        ("192.168.1.1",),
        ("fd00::1",),
        ("127.0.0.1",),
        # One public answer does not excuse a private one: either may be the one used.
        ("93.184.216.34", "10.0.0.1"),
    ],
)
async def test_a_name_resolving_inside_is_refused_before_any_connection(
    answers: tuple[str, ...],
) -> None:
    recorder = Recorder()
    resolver = _resolver(*answers)
    webhook = Webhook("s", policy=PRODUCTION, resolver=resolver, transport=recorder.transport)
    with pytest.raises(Refused) as refused:
        await webhook.send("https://hooks.example.org/x", "n-1", {"status": "x"})
    assert refused.value.code == "webhook_forbidden_address"
    assert resolver.asked == ["hooks.example.org"]
    assert recorder.requests == []


async def test_plain_http_outside_development_is_refused() -> None:
    recorder = Recorder()
    webhook = Webhook(
        "s", policy=PRODUCTION, resolver=_resolver("93.184.216.34"), transport=recorder.transport
    )
    with pytest.raises(Refused) as refused:
        await webhook.send("http://hooks.example.org/x", "n-1", {})
    assert refused.value.code == "webhook_not_https"
    assert recorder.requests == []


async def test_the_request_goes_to_the_checked_address_with_the_name_as_host_and_sni() -> None:
    """Pinned: a second resolution (DNS rebinding) is never made; the connection is to
    the address judged, the name only in Host and the TLS server name."""
    recorder = Recorder()
    resolver = _resolver("93.184.216.34")
    webhook = Webhook("s", policy=PRODUCTION, resolver=resolver, transport=recorder.transport)
    await webhook.send("https://hooks.example.org:8443/x?y=1", "n-1", {"status": "x"})
    (request,) = recorder.requests
    assert request.url.host == "93.184.216.34"
    assert request.url.port == 8443
    assert request.url.raw_path == b"/x?y=1"
    assert request.headers["host"] == "hooks.example.org:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.org"
    assert resolver.asked == ["hooks.example.org"]


async def test_a_name_that_does_not_resolve_is_a_temporary_failure() -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    recorder = Recorder()
    webhook = Webhook("s", policy=PRODUCTION, resolver=nowhere, transport=recorder.transport)
    with pytest.raises(TemporaryFailure):
        await webhook.send("https://hooks.example.org/x", "n-1", {})
    assert recorder.requests == []
