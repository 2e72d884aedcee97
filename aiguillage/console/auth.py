"""Who is logged in to the console: per-actor passwords and a signed session cookie.

A password is an HMAC of the actor under the deployment's secret (the one that signs
the services' bearer tokens), so that no table of passwords exists anywhere: the
operator prints them with ``aiguillage console passwords`` and hands each actor its own.
The session cookie carries the actor and an expiry, signed under a key derived from the
same secret for that purpose only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from shared.auth import Role, issue_token

SESSION_COOKIE = "aiguillage_console"
SESSION_SECONDS = 12 * 3600
ACTOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ROLE_LABELS = {Role.ARS: "ARS", Role.CENTRE: "Centre", Role.CENTRE_15: "Centre 15"}
CONSOLE_ROLES = tuple(ROLE_LABELS)


@dataclass(frozen=True)
class Actor:
    role: Role
    subject: str

    @property
    def label(self) -> str:
        return f"{ROLE_LABELS[self.role]} {self.subject}"

    def token(self, secret: str) -> str:
        """The bearer token the console presents to the services on this actor's behalf."""
        return issue_token(secret, self.role, self.subject)


def _key(secret: str, purpose: str) -> bytes:
    # Distinct keys per purpose: a console password is never a valid token or cookie.
    return hmac.new(secret.encode(), f"aiguillage-console:{purpose}".encode(), "sha256").digest()


def password_for(secret: str, role: Role, subject: str) -> str:
    digest = hmac.new(_key(secret, "password"), f"{role.value}:{subject}".encode(), "sha256")
    raw = digest.hexdigest()
    # Four groups of four: easy to read out on the phone, 64 bits.
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def check_password(secret: str, role: Role, subject: str, password: str) -> Actor | None:
    if role not in CONSOLE_ROLES or not ACTOR_ID.match(subject):
        return None
    expected = password_for(secret, role, subject)
    if not hmac.compare_digest(expected, password.strip().lower()):
        return None
    return Actor(role, subject)


def _cookie_signature(secret: str, body: str) -> str:
    return hmac.new(_key(secret, "session"), body.encode(), hashlib.sha256).hexdigest()[:32]


def session_cookie(secret: str, actor: Actor, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
    body = f"{actor.role.value}.{actor.subject}.{expires}"
    return f"{body}.{_cookie_signature(secret, body)}"


def actor_from_cookie(secret: str, value: str | None, now: float | None = None) -> Actor | None:
    if not value:
        return None
    body, _, signature = value.rpartition(".")
    if not hmac.compare_digest(_cookie_signature(secret, body), signature):
        return None
    role_text, _, rest = body.partition(".")
    subject, _, expires = rest.rpartition(".")
    try:
        role = Role(role_text)
        expired = int(expires) < (now if now is not None else time.time())
    except ValueError:
        return None
    if expired or role not in CONSOLE_ROLES or not ACTOR_ID.match(subject):
        return None
    return Actor(role, subject)
