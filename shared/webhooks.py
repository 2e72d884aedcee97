"""Where a webhook may go: the one outgoing request whose address an outsider chose.

A referrer's webhook URL names a host the notifier will POST to from inside our
network. Unchecked, it is a way in: to the cloud metadata endpoint (169.254.169.254),
to a database on 10.x, to a service bound to loopback. The rule is on the *address*,
judged when the name is resolved (at send time, since DNS answers change), never on
the name's spelling.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(Exception):
    """The webhook may not be sent there; ``code`` is stable, the message names the host
    and the kind of address, never more."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class WebhookPolicy:
    """Production: https only, public addresses only. Development adds plain http and
    loopback (a test's receiver on 127.0.0.1), and nothing else: never link-local
    (metadata), private or reserved addresses, even there."""

    allow_http: bool = False
    allow_loopback: bool = False

    @classmethod
    def for_environment(cls, development: bool) -> WebhookPolicy:
        return cls(allow_http=development, allow_loopback=development)


def _unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (``::ffff:10.0.0.1``, 6to4), judged as such:
    otherwise a mapped private address passes as IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return inner
    return address


def forbidden(address: Address, policy: WebhookPolicy) -> str | None:
    """Why a webhook may not reach ``address`` (a stable word), or None if it may."""
    address = _unwrapped(address)
    # Order matters: loopback and link-local are also "private" to the ipaddress module.
    if address.is_loopback:
        return None if policy.allow_loopback else "loopback"
    if address.is_link_local:
        return "link_local"  # 169.254/16 (cloud metadata), fe80::/10
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_reserved:
        return "reserved"  # 240/4, and IPv6's reserved blocks
    if address.is_private:
        return "private"  # RFC 1918, ULA fc00::/7, documentation, benchmarking...
    if not address.is_global:
        return "reserved"  # shared address space 100.64/10, ...
    return None


def check_url(url: str, policy: WebhookPolicy) -> tuple[str, str, int]:
    """The scheme, host and port of an acceptable webhook URL; a host that is an address
    literal is judged here already (a name only when resolved)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused("webhook_invalid", "the webhook URL does not parse") from exc
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("https", "http") or not host:
        raise WebhookRefused("webhook_invalid", "the webhook URL needs https:// and a host")
    if scheme == "http" and not policy.allow_http:
        raise WebhookRefused("webhook_not_https", "webhooks go over https only")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_invalid", "a webhook URL carries no credentials")
    literal = _literal(host)
    if literal is not None:
        why = forbidden(literal, policy)
        if why is not None:
            raise WebhookRefused("webhook_forbidden_address", f"{host} is a {why} address")
    return scheme, host, port or (443 if scheme == "https" else 80)


def check_addresses(host: str, addresses: Iterable[str], policy: WebhookPolicy) -> Address:
    """The address to connect to, if *every* address ``host`` resolved to is allowed: a
    name with one public and one private answer is refused, since which one a client
    picks is not ours to choose."""
    parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not parsed:
        raise WebhookRefused("webhook_unresolved", f"{host} resolves to no address")
    for address in parsed:
        why = forbidden(address, policy)
        if why is not None:
            raise WebhookRefused("webhook_forbidden_address", f"{host} resolves to a {why} address")
    return parsed[0]


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
