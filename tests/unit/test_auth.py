"""Bearer tokens: for one service, until their expiry, unless revoked, under a key
the service accepts (several while keys rotate)."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.auth import (
    Keyring,
    Principal,
    Role,
    TokenRefused,
    authenticator,
    issue_token,
    read_token,
    verify_token,
)
from shared.settings import ServiceName, Settings

INTAKE = ServiceName.INTAKE


def settings(**fields: object) -> Settings:
    return Settings.model_validate({"auth_secret": "current-key", **fields})


def test_a_token_proves_its_actor_to_its_service() -> None:
    s = settings()
    token = issue_token(s, Role.REFERRER, "gp:10001234567", INTAKE)
    principal = verify_token(s, token, INTAKE)
    assert (principal.role, principal.subject) == (Role.REFERRER, "gp:10001234567")
    assert principal.token_id == read_token(token).token_id
    # Subjects may hold the separators; every part is still read back whole.
    odd = issue_token(s, Role.CENTRE, "a.b:c", INTAKE)
    assert verify_token(s, odd, INTAKE).subject == "a.b:c"


def test_an_expired_token_is_refused() -> None:
    s = settings()
    token = issue_token(s, Role.ARS, "idf", INTAKE, ttl_seconds=60, now=time.time() - 61)
    with pytest.raises(TokenRefused, match="expired"):
        verify_token(s, token, INTAKE)
    # The lifetime comes from the settings when the issuer names none.
    fresh = read_token(issue_token(settings(token_ttl_seconds=120), Role.ARS, "idf", INTAKE))
    assert 110 <= fresh.expiry - time.time() <= 120


def test_a_revoked_token_is_refused_and_others_are_not() -> None:
    s = settings()
    revoked = issue_token(s, Role.CENTRE, "rennes", INTAKE)
    kept = issue_token(s, Role.CENTRE, "rennes", INTAKE)
    refusing = settings(revoked_tokens=f"other, {read_token(revoked).token_id}")
    with pytest.raises(TokenRefused, match="revoked"):
        verify_token(refusing, revoked, INTAKE)
    assert verify_token(refusing, kept, INTAKE).subject == "rennes"


def test_a_token_for_another_service_is_refused() -> None:
    s = settings()
    token = issue_token(s, Role.ARS, "idf", ServiceName.SCHEDULER)
    with pytest.raises(TokenRefused, match="for the scheduler service, not intake"):
        verify_token(s, token, INTAKE)


def test_a_token_under_a_key_not_accepted_or_tampered_with_is_refused() -> None:
    s = settings()
    foreign = issue_token("someone-elses-key", Role.ARS, "idf", INTAKE)
    with pytest.raises(TokenRefused, match="key this service does not accept"):
        verify_token(s, foreign, INTAKE)
    # The right key id with a forged signature, or a changed claim, is refused too.
    genuine = issue_token(s, Role.CENTRE, "rennes", INTAKE)
    parts = genuine.split(".")
    forged = ".".join([*parts[:-1], "A" * len(parts[-1])])
    as_ars = ".".join([parts[0], "ars", *parts[2:]])
    for token in (forged, as_ars):
        with pytest.raises(TokenRefused, match="signature"):
            verify_token(s, token, INTAKE)
    for junk in ("", "centre:rennes:0000", "v2.x", genuine + ".more"):
        with pytest.raises(TokenRefused):
            verify_token(s, junk, INTAKE)


def test_keys_rotate_the_old_key_verifies_while_listed() -> None:
    before = settings(auth_secret="old-key")
    old_token = issue_token(before, Role.CENTRE_15, "samu-35", INTAKE)
    rotating = settings(auth_secret="new-key", auth_keys="old-key")
    # Accepted while the old key is listed; the new tokens are signed with the new one.
    assert verify_token(rotating, old_token, INTAKE).subject == "samu-35"
    new_token = issue_token(rotating, Role.CENTRE_15, "samu-35", INTAKE)
    assert read_token(new_token).key_id != read_token(old_token).key_id
    done = settings(auth_secret="new-key")
    assert verify_token(done, new_token, INTAKE).subject == "samu-35"
    with pytest.raises(TokenRefused, match="key this service does not accept"):
        verify_token(done, old_token, INTAKE)


async def test_the_dependency_answers_401_saying_why() -> None:
    ring = Keyring(keys=("k",), revoked=frozenset({"gone"}))
    app = FastAPI()

    @app.get("/me")
    def me(caller: Principal = Depends(authenticator(ring, INTAKE))) -> dict[str, str]:
        return {"subject": caller.subject}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:

        async def get(token: str | None) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            response = await client.get("/me", headers=headers)
            body = response.json()
            return response.status_code, body.get("detail") or body["subject"]

        assert await get(issue_token(ring, Role.ARS, "idf", INTAKE)) == (200, "idf")
        required = "a bearer token is required (Authorization: Bearer <token>)"
        assert await get(None) == (401, required)
        code, detail = await get(issue_token(ring, Role.ARS, "idf", ServiceName.NOTIFIER))
        assert (code, "not intake" in detail) == (401, True)
        code, detail = await get(issue_token(ring, Role.ARS, "idf", INTAKE, token_id="gone"))
        assert (code, detail) == (401, "the bearer token has been revoked")
        assert (await client.get("/me")).headers["www-authenticate"].startswith("Bearer")
