"""Bearer tokens for the HTTP APIs: who calls, for which service, until when.

A token names a role and a subject (``centre:rennes-poterie``, ``referrer:gp:1000123``,
``ars:idf``...), the one service it is for (its audience), an expiry and an id, and
carries an HMAC of all of it under one of the deployment's keys. Every part travels
in the token itself, so that any replica of a service checks it without a shared
table, and the operator issues one with ``aiguillage token``::

    v2.<role>.<subject>.<audience>.<expiry>.<token id>.<key id>.<signature>

The subject is base64url (it may hold ``:`` or ``.``); the expiry is Unix seconds;
the key id is a fingerprint of the signing key (never the key), so the verifier picks
the key without trying each. Keys rotate: the first of ``AIGUILLAGE_AUTH_SECRET`` then
``AIGUILLAGE_AUTH_KEYS`` signs, any of them verifies; a token id listed in
``AIGUILLAGE_REVOKED_TOKENS`` is refused until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import ServiceName, Settings

VERSION = "v2"
DEFAULT_TTL_SECONDS = 3600
# A token's id: 96 random bits, short enough to paste into AIGUILLAGE_REVOKED_TOKENS.
_ID_BYTES = 12


class Role(StrEnum):
    ARS = "ars"
    CENTRE = "centre"
    REFERRER = "referrer"
    CENTRE_15 = "centre_15"
    # The data-protection officer: reads who read which patient's identity (issue 34).
    DPO = "dpo"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    token_id: str = ""

    def may_act_as(self, role: Role, subject: str | None = None) -> bool:
        return self.role is role and (subject is None or self.subject == subject)


class TokenRefused(Exception):
    """Why a token is not taken; the message is safe to answer to the caller (it names
    no key and repeats nothing of the token)."""


@dataclass(frozen=True)
class Keyring:
    """The keys a process signs and verifies with (the first signs), the ids it
    refuses and the lifetime of the tokens it issues."""

    keys: tuple[str, ...]
    revoked: frozenset[str] = frozenset()
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise ValueError("a keyring needs at least one non-empty key")

    @classmethod
    def of(cls, source: Keys) -> Keyring:
        if isinstance(source, Keyring):
            return source
        if isinstance(source, Settings):
            return cls(
                keys=(source.auth_secret, *source.auth_keys),
                revoked=frozenset(source.revoked_tokens),
                ttl_seconds=source.token_ttl_seconds,
            )
        if isinstance(source, str):
            return cls(keys=(source,))
        return cls(keys=tuple(source))


# What the functions below take: the settings (the usual case), a keyring, or bare keys
# (the first signs), for tests and tools that have no settings at hand.
Keys = Settings | Keyring | str | Sequence[str]


def key_id(key: str) -> str:
    """A fingerprint of a key: tells which key signed, reveals nothing of it."""
    return hashlib.sha256(f"aiguillage-token-key:{key}".encode()).hexdigest()[:12]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, body: str) -> str:
    # A key derived for tokens only: the same secret also derives the console's keys,
    # and a signature of one purpose must never pass for another.
    derived = hmac.new(key.encode(), b"aiguillage-token-v2", hashlib.sha256).digest()
    return _b64(hmac.new(derived, body.encode(), hashlib.sha256).digest())


def issue_token(
    keys: Keys,
    role: Role,
    subject: str,
    audience: ServiceName | str,
    *,
    ttl_seconds: int | None = None,
    now: float | None = None,
    token_id: str | None = None,
) -> str:
    """A token for ``audience`` only, valid ``ttl_seconds`` (default: the keyring's,
    ``AIGUILLAGE_TOKEN_TTL_SECONDS`` from the settings), signed with the first key."""
    ring = Keyring.of(keys)
    ttl = ring.ttl_seconds if ttl_seconds is None else ttl_seconds
    if ttl <= 0:
        raise ValueError("a token's lifetime must be positive")
    if not subject:
        raise ValueError("a token names a subject")
    expiry = int((time.time() if now is None else now) + ttl)
    identifier = token_id or _b64(secrets.token_bytes(_ID_BYTES))
    key = ring.keys[0]
    body = ".".join(
        (
            VERSION,
            Role(role).value,
            _b64(subject.encode()),
            ServiceName(audience).value,
            str(expiry),
            identifier,
            key_id(key),
        )
    )
    return f"{body}.{_sign(key, body)}"


@dataclass(frozen=True)
class TokenClaims:
    role: Role
    subject: str
    audience: ServiceName
    expiry: int
    token_id: str
    key_id: str


def read_token(token: str) -> TokenClaims:
    """What a token claims, not checked (for tools that show a token's id and expiry)."""
    parts = token.split(".")
    if len(parts) != 8 or parts[0] != VERSION:
        raise TokenRefused(
            "the bearer token is not an Aiguillage v2 token (issue one with `aiguillage token`)"
        )
    _, role_text, subject_text, audience_text, expiry_text, token_id, kid, _ = parts
    try:
        return TokenClaims(
            role=Role(role_text),
            subject=_unb64(subject_text).decode(),
            audience=ServiceName(audience_text),
            expiry=int(expiry_text),
            token_id=token_id,
            key_id=kid,
        )
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise TokenRefused("the bearer token is malformed") from exc


def verify_token(
    keys: Keys, token: str, audience: ServiceName | str, *, now: float | None = None
) -> Principal:
    """The caller a token proves, for ``audience``; raises :class:`TokenRefused`
    saying why not (signature, audience, expiry, revocation)."""
    ring = Keyring.of(keys)
    claims = read_token(token)
    body, _, signature = token.rpartition(".")
    # The signature first: nothing an unsigned token claims is worth reporting back.
    key = next((k for k in ring.keys if hmac.compare_digest(key_id(k), claims.key_id)), None)
    if key is None:
        raise TokenRefused("the bearer token is signed with a key this service does not accept")
    if not hmac.compare_digest(_sign(key, body), signature):
        raise TokenRefused("the bearer token's signature is invalid")
    if not claims.subject:
        raise TokenRefused("the bearer token is malformed")
    wanted = ServiceName(audience)
    if claims.audience is not wanted:
        raise TokenRefused(
            f"the bearer token is for the {claims.audience.value} service, not {wanted.value}"
        )
    if claims.expiry <= (time.time() if now is None else now):
        raise TokenRefused("the bearer token has expired")
    if claims.token_id in ring.revoked:
        raise TokenRefused("the bearer token has been revoked")
    return Principal(claims.role, claims.subject, claims.token_id)


# Declares the scheme in each service's OpenAPI (so clients and schemathesis know to
# send a token); without auto_error, so that the 401 says what is wrong, as below.
BEARER = HTTPBearer(auto_error=False, description="A token from `aiguillage token`.")


def authenticator(keys: Keys, service: ServiceName) -> Callable[..., Principal]:
    """A FastAPI dependency (``Depends(authenticator(settings, ServiceName.X))``): the
    caller whose token is for ``service``, or a 401 that says what is wrong."""
    ring = Keyring.of(keys)

    def authenticate(
        credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
    ) -> Principal:
        try:
            if credentials is None or not credentials.credentials.strip():
                raise TokenRefused("a bearer token is required (Authorization: Bearer <token>)")
            return verify_token(ring, credentials.credentials.strip(), service)
        except TokenRefused as refused:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                str(refused),
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None

    return authenticate


def forbid(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)
