"""Per-actor bearer tokens for the HTTP APIs.

A token names a role and a subject (``centre:rennes-poterie``, ``referrer:gp:1000123``,
``ars:idf``...) and carries an HMAC of both under the deployment's secret, so that any
service can check it without a shared table, and the operator can issue one with
``aiguillage token``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Request, status


class Role(StrEnum):
    ARS = "ars"
    CENTRE = "centre"
    REFERRER = "referrer"
    CENTRE_15 = "centre_15"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str

    def may_act_as(self, role: Role, subject: str | None = None) -> bool:
        return self.role is role and (subject is None or self.subject == subject)


def _signature(secret: str, role: Role, subject: str) -> str:
    return hmac.new(secret.encode(), f"{role.value}:{subject}".encode(), hashlib.sha256).hexdigest()


def issue_token(secret: str, role: Role, subject: str) -> str:
    return f"{role.value}:{subject}:{_signature(secret, role, subject)[:40]}"


def verify_token(secret: str, token: str) -> Principal | None:
    role_text, _, rest = token.partition(":")
    subject, _, signature = rest.rpartition(":")
    try:
        role = Role(role_text)
    except ValueError:
        return None
    expected = _signature(secret, role, subject)[:40]
    if not subject or not hmac.compare_digest(expected, signature):
        return None
    return Principal(role, subject)


def authenticator(secret: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency (``Depends(authenticator(secret))``): the caller, or a 401."""

    def authenticate(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        principal = verify_token(secret, token) if scheme.lower() == "bearer" else None
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal

    return authenticate


def forbid(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)
