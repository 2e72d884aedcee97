"""Intake's HTTP door: the same behaviour as the broker door, and never a 500."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from starlette.testclient import TestClient

from services.intake.app import build
from shared.auth import Role, issue_token
from shared.migrations import upgrade
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.helpers import running
from tests.strategies import referral_payloads, valid_referral


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


def bearer(settings: Settings, role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings.auth_secret, role, subject)}"}


@pytest.fixture
async def http(intake: ServiceRuntime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A GP's client: the referrals are submitted as gp:10001234567."""
    transport = httpx.ASGITransport(app=intake.http_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://intake",
        headers=bearer(settings, Role.REFERRER, "gp:10001234567"),
    ) as client:
        yield client


async def test_a_referrer_submits_and_reads_its_own_referrals_only(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    created = await http.post("/referrals", json=valid_referral("own-1"))
    referral_id = created.json()["referral_id"]
    anonymous = {"Authorization": ""}
    assert (
        await http.post("/referrals", json=valid_referral("x"), headers=anonymous)
    ).status_code == 401
    assert (await http.get(f"/referrals/{referral_id}", headers=anonymous)).status_code == 401
    forged = {"Authorization": "Bearer referrer:gp:10001234567:0000"}
    assert (await http.get(f"/referrals/{referral_id}", headers=forged)).status_code == 401
    other = bearer(settings, Role.REFERRER, "gp:999")
    assert (await http.get(f"/referrals/{referral_id}", headers=other)).status_code == 404
    # Submitting in another referrer's name is refused.
    assert (
        await http.post("/referrals", json=valid_referral("x"), headers=other)
    ).status_code == 403
    ars = bearer(settings, Role.ARS, "idf")
    assert (await http.post("/referrals", json=valid_referral("x"), headers=ars)).status_code == 403
    centre = bearer(settings, Role.CENTRE, "rennes")
    assert (await http.get(f"/referrals/{referral_id}", headers=centre)).status_code == 403
    # Centre 15 refers in its own name.
    samu = valid_referral("samu-1")
    samu["referrer"] = {"kind": "centre_15", "identifier": "samu-35"}
    response = await http.post(
        "/referrals", json=samu, headers=bearer(settings, Role.CENTRE_15, "samu-35")
    )
    assert response.status_code == 201


async def test_submit_read_duplicate_and_conflict(http: httpx.AsyncClient) -> None:
    created = await http.post("/referrals", json=valid_referral("h-1"))
    assert created.status_code == 201, created.text
    referral_id = created.json()["referral_id"]
    assert created.headers["location"] == f"/referrals/{referral_id}"

    again = await http.post("/referrals", json=valid_referral("h-1"))
    assert again.status_code == 200
    assert again.json() == {"referral_id": referral_id, "status": "received", "duplicate": True}

    changed = valid_referral("h-1")
    changed["clinical"]["vitals"]["spo2"] = 93
    conflict = await http.post("/referrals", json=changed)
    assert conflict.status_code == 409
    assert conflict.json()["error_code"] == "reference_conflict"
    assert conflict.json()["referral_id"] == referral_id

    status = await http.get(f"/referrals/{referral_id}")
    assert status.status_code == 200
    assert status.json()["status"] == "received"
    assert status.json()["reference"] == "h-1"
    assert "first_name" not in status.text and "Martin" not in status.text


async def test_every_error_at_once_with_codes(http: httpx.AsyncClient) -> None:
    bad = valid_referral("h-2")
    bad["referrer"]["kind"] = "pharmacist"
    bad["patient"]["birth_date"] = "2999-01-01"
    del bad["clinical"]["symptomatic"]
    response = await http.post("/referrals", json=bad)
    assert response.status_code == 422
    reasons = {(r["field"], r["code"]) for r in response.json()["reasons"]}
    assert ("referrer.kind", "unknown_referrer_kind") in reasons
    assert ("clinical.symptomatic", "missing_field") in reasons
    # The submission's refusal can be read back by its id.
    submission_id = response.json()["submission_id"]
    read = await http.get(f"/referrals/{submission_id}")
    assert read.json()["status"] == "rejected"

    semantic = valid_referral("h-3")
    semantic["patient"]["birth_date"] = "2999-01-01"
    semantic["purpose"] = "screening"
    semantic["clinical"]["vitals"] = {"spo2": 130}
    response = await http.post("/referrals", json=semantic)
    assert response.status_code == 422
    # A symptomatic screening request is regulation's to judge (a severity sign wins
    # over screening): intake refuses only the rest, all at once.
    assert {r["code"] for r in response.json()["reasons"]} == {
        "birth_date_in_future",
        "vital_out_of_range",
    }
    semantic["clinical"] = {"symptomatic": False}
    response = await http.post("/referrals", json=semantic)
    assert {r["code"] for r in response.json()["reasons"]} == {
        "birth_date_in_future",
        "screening_not_offered",
    }


async def test_not_json_and_not_an_object(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/referrals", content=b"\xff{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["error_code"] == "invalid_json"
    response = await http.post("/referrals", json=[1, 2])
    assert response.status_code == 422 and response.json()["error_code"] == "invalid_type"
    assert (await http.get("/referrals/nope")).status_code == 404


async def test_openapi_documents_the_referral(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    body = document["paths"]["/referrals"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/ReferralSubmitted")
    assert "PatientIdentity" in document["components"]["schemas"]


@pytest.fixture
def sync_client(settings: Settings) -> Iterator[TestClient]:
    """The HTTP door alone, for hypothesis (which drives synchronous tests)."""
    runtime = build(settings)
    headers = bearer(settings, Role.REFERRER, "gp:10001234567")
    with TestClient(runtime.http_app, raise_server_exceptions=False, headers=headers) as client:
        client.portal.call(upgrade, runtime.database, runtime.migrations)
        yield client
        client.portal.call(runtime.database.dispose)


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=referral_payloads)
def test_arbitrary_payloads_never_500(sync_client: TestClient, payload: Any) -> None:
    response = sync_client.post("/referrals", json=copy.deepcopy(payload))
    # 403: the payload names another referrer than the caller's token.
    assert response.status_code in (200, 201, 403, 409, 422), response.text
    body = response.json()
    if response.status_code == 422:
        assert body["reasons"], body
        assert all(r["code"] and r["message"] for r in body["reasons"])
    elif response.status_code in (200, 201):
        assert sync_client.get(f"/referrals/{body['referral_id']}").status_code == 200
