"""Intake's HTTP door: the same behaviour as the broker door, and never a 500."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from sqlalchemy import select
from starlette.testclient import TestClient

from services.intake.app import build
from services.intake.handlers.identities import Vault
from services.intake.store.tables import identities
from shared.auth import Role, issue_token
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CancelledBy,
    Decision,
    Envelope,
    EventPayload,
    PatientEscalated,
    Priority,
    ReferralRegulated,
    SlotAssigned,
    new_id,
)
from shared.migrations import upgrade
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import running
from tests.strategies import referral_payloads, valid_referral


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


def bearer(settings: Settings, role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, role, subject, ServiceName.INTAKE)}"}


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
    assert again.json() == {
        "referral_id": referral_id,
        "status": "received",
        "detail": {},
        "message": "Demande reçue ; elle attend la régulation médicale.",
        "duplicate": True,
    }

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


async def test_every_reason_at_once_the_schema_s_and_the_rules(http: httpx.AsyncClient) -> None:
    """A schema error does not stop the rules: those whose fields did validate run on
    the raw data, and the referrer reads every reason in one answer."""
    bad = valid_referral("h-all")
    del bad["patient"]["last_name"]
    del bad["patient"]["commune_insee"]
    bad["patient"]["birth_date"] = "2999-01-01"
    bad["patient"]["postcode"] = "00000"
    bad["clinical"]["onset_date"] = "2999-01-02"
    response = await http.post("/referrals", json=bad)
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "invalid_referral"
    assert {(r["field"], r["code"]) for r in body["reasons"]} == {
        ("patient.last_name", "missing_field"),
        ("patient.birth_date", "birth_date_in_future"),
        ("clinical.onset_date", "onset_in_future"),
        ("patient.commune_insee", "commune_unknown_postcode"),
    }
    # The refusal, read back, keeps them all.
    read = (await http.get(f"/referrals/{body['submission_id']}")).json()
    assert {r["code"] for r in read["reasons"]} == {r["code"] for r in body["reasons"]}


async def test_a_phone_number_is_a_real_one(
    http: httpx.AsyncClient, intake: ServiceRuntime
) -> None:
    """A number that is none is a 422 in French; a landline with SMS consent too; a good
    one is kept in E.164 (what Centre 15 reads, what the notifier gets)."""
    bad = valid_referral("ph-1")
    bad["patient"]["phone"] = "abc"
    response = await http.post("/referrals", json=bad)
    assert response.status_code == 422
    [reason] = response.json()["reasons"]
    assert (reason["field"], reason["code"]) == ("patient.phone", "invalid_phone")
    assert reason["message"].startswith("Numéro de téléphone invalide : un numéro français")
    landline = valid_referral("ph-2")
    landline["patient"] |= {"phone": "02 99 28 43 21", "sms_consent": True}
    response = await http.post("/referrals", json=landline)
    assert response.status_code == 422
    assert [(r["field"], r["code"]) for r in response.json()["reasons"]] == [
        ("patient.phone", "sms_to_landline")
    ]
    overseas = valid_referral("ph-3")
    overseas["patient"]["phone"] = "0692 12 34 56"
    created = await http.post("/referrals", json=overseas)
    assert created.status_code == 201, created.text
    async with intake.database.transaction() as session:
        row = await session.execute(
            select(identities).where(identities.c.referral_id == created.json()["referral_id"])
        )
        # Sealed at rest (issue 34): the number is kept normalised, read through the vault.
        kept = await Vault.of(intake.settings).field(session, row.one(), "phone")
    assert kept == "+262692123456"


# -- downstream events, as the other services would publish them -----------------------


async def _on_bus(settings: Settings, *events: tuple[EventPayload, datetime]) -> None:
    """Publish on the services' bus, each event with the time it was produced."""
    async with EventPublisher(settings.broker_url, settings.namespace, "tests") as bus:
        for payload, produced in events:
            envelope = Envelope.wrap(
                payload,
                source="scheduler",
                correlation_id=getattr(payload, "referral_id", "x"),
                time=produced,
            )
            await bus.publish_envelope(envelope, payload.routing_key(), exchange="events")


async def _status_becomes(
    http: httpx.AsyncClient, referral_id: str, status: str, **headers: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = (
            await http.get(f"/referrals/{referral_id}", headers=headers or None)
        ).json()
        if body.get("status") == status:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


def _regulated(
    referral_id: str, decision: Decision, *, test_eligible: bool = False
) -> ReferralRegulated:
    return ReferralRegulated(
        referral_id=referral_id,
        patient_ref="pat-x",
        decision=decision,
        priority=Priority.URGENT if decision is Decision.ORIENT else None,
        test_eligible=test_eligible,
        protocol_version="1",
        decided_by="protocol",
        decision_id=new_id(),
        age=60,
        commune_insee="35238",
        departement="35",
    )


def _slot(referral_id: str, appointment_id: str, centre_id: str, start: datetime) -> SlotAssigned:
    return SlotAssigned(
        centre_id=centre_id,
        appointment_id=appointment_id,
        referral_id=referral_id,
        patient_ref="pat-x",
        centre_name=f"Centre {centre_id}",
        centre_commune_insee="35238",
        centre_address="1 place de la Mairie",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.URGENT,
        distance_km=1.0,
    )


async def test_a_duplicate_answers_where_the_referral_stands_now(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    referral_id = (await http.post("/referrals", json=valid_referral("h-dup"))).json()[
        "referral_id"
    ]
    now = datetime.now(UTC)
    start = now + timedelta(hours=2)
    await _on_bus(
        settings,
        (_regulated(referral_id, Decision.ORIENT, test_eligible=True), now),
        (_slot(referral_id, "appt-1", "rennes-h", start), now + timedelta(seconds=1)),
    )
    status = await _status_becomes(http, referral_id, "appointment")
    # What regulation said of a test stays with the appointment.
    assert status["detail"]["test_eligible"] is True
    assert status["detail"]["centre_id"] == "rennes-h"
    again = await http.post("/referrals", json=valid_referral("h-dup"))
    assert again.status_code == 200
    answer = again.json()
    assert answer["duplicate"] is True and answer["referral_id"] == referral_id
    assert answer["status"] == "appointment"
    assert answer["detail"] == status["detail"]
    assert answer["message"].startswith("Rendez-vous le ")


async def test_a_moved_patient_reads_the_new_appointment_even_when_the_news_cross(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """The scheduler moves a patient (rescheduled at the new centre, then the old one
    cancelled, replaced); the cancellation reaches intake first."""
    referral_id = (await http.post("/referrals", json=valid_referral("h-move"))).json()[
        "referral_id"
    ]
    now = datetime.now(UTC)
    start = now + timedelta(hours=2)
    await _on_bus(
        settings,
        (_regulated(referral_id, Decision.ORIENT, test_eligible=True), now),
        (_slot(referral_id, "appt-old", "rennes-h", start), now + timedelta(seconds=1)),
    )
    await _status_becomes(http, referral_id, "appointment")
    moved_at = now + timedelta(seconds=2)
    await _on_bus(
        settings,
        (
            AppointmentCancelled(
                centre_id="rennes-h",
                appointment_id="appt-old",
                referral_id=referral_id,
                patient_ref="pat-x",
                start=start,
                cancelled_by=CancelledBy.SERVICE,
                reason="centre suspended: no staff",
                replaced_by="appt-new",
            ),
            moved_at + timedelta(milliseconds=1),
        ),
    )
    await asyncio.sleep(0.5)
    # The old appointment's cancellation alone: the patient is being moved, not dropped.
    assert (await http.get(f"/referrals/{referral_id}")).json()["status"] == "appointment"
    await _on_bus(
        settings,
        (
            AppointmentRescheduled(
                centre_id="st-gregoire-h",
                appointment_id="appt-new",
                referral_id=referral_id,
                patient_ref="pat-x",
                previous_centre_id="rennes-h",
                previous_start=start,
                previous_appointment_id="appt-old",
                centre_name="Centre St-Grégoire",
                centre_commune_insee="35278",
                centre_address="2 rue du Centre",
                start=start + timedelta(hours=1),
                end=start + timedelta(hours=1, minutes=20),
                box=1,
                priority=Priority.URGENT,
                distance_km=5.0,
                reason="centre suspended: no staff",
            ),
            moved_at,
        ),
    )
    deadline = time.monotonic() + 20
    while (body := (await http.get(f"/referrals/{referral_id}")).json())["detail"].get(
        "centre_id"
    ) != "st-gregoire-h":
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    assert body["status"] == "appointment"
    assert body["detail"]["appointment_id"] == "appt-new"
    assert body["detail"]["centre_address"] == "2 rue du Centre"
    assert body["detail"]["previous_centre_id"] == "rennes-h"
    assert body["detail"]["test_eligible"] is True
    assert [h["status"] for h in body["history"]] == [
        "received",
        "regulated",
        "appointment",
        "moved",
        "appointment_replaced",
    ]


async def test_centre_15_reads_the_patients_it_must_call_back_and_only_those(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    samu = bearer(settings, Role.CENTRE_15, "samu-35")
    escalated_id = (await http.post("/referrals", json=valid_referral("h-esc"))).json()[
        "referral_id"
    ]
    waiting_id = (await http.post("/referrals", json=valid_referral("h-wait"))).json()[
        "referral_id"
    ]
    now = datetime.now(UTC)
    await _on_bus(
        settings,
        (_regulated(escalated_id, Decision.ESCALATE), now),
        (_regulated(waiting_id, Decision.ORIENT), now),
    )
    await _status_becomes(http, escalated_id, "escalated")
    await _status_becomes(http, waiting_id, "regulated")

    # Escalated: Centre 15 reads it, with who to call and where.
    read = await http.get(f"/referrals/{escalated_id}", headers=samu)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["status"] == "escalated" and body["detail"]["by"] == "protocol"
    assert body["identity"] == {
        "first_name": "Jeanne",
        "last_name": "Martin",
        "birth_date": "1960-02-01",
        "phone": "+33612345678",  # as intake keeps it: E.164
        "address": None,
        "commune": {"insee": "35238", "name": "Rennes", "departement": "35"},
    }
    # Not escalated, not Centre 15's: as invisible as a missing one.
    assert (await http.get(f"/referrals/{waiting_id}", headers=samu)).status_code == 404
    # The referrer reads its own, without the identity block it sent; others nothing.
    own = (await http.get(f"/referrals/{escalated_id}")).json()
    assert own["status"] == "escalated" and "identity" not in own
    other = bearer(settings, Role.REFERRER, "gp:999")
    assert (await http.get(f"/referrals/{escalated_id}", headers=other)).status_code == 404
    # Centre 15's own referral, not escalated: readable, without identity.
    referral = valid_referral("samu-own")
    referral["referrer"] = {"kind": "centre_15", "identifier": "samu-35"}
    created = await http.post("/referrals", json=referral, headers=samu)
    mine = (await http.get(f"/referrals/{created.json()['referral_id']}", headers=samu)).json()
    assert mine["status"] == "received" and "identity" not in mine
    # Escalated by a centre: Centre 15 reads it too.
    await _on_bus(
        settings,
        (_slot(waiting_id, "appt-w", "rennes-h", now + timedelta(hours=1)), now),
        (
            PatientEscalated(
                referral_id=waiting_id,
                centre_id="rennes-h",
                appointment_id="appt-w",
                reason="SpO2 89 %",
            ),
            now + timedelta(seconds=1),
        ),
    )
    handed_back = await _status_becomes(http, waiting_id, "escalated", **samu)
    assert handed_back["detail"]["by"] == "centre"
    assert handed_back["identity"]["last_name"] == "Martin"


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
    """The HTTP door alone, for hypothesis (which drives synchronous tests); its
    examples are not a flood (the quota has its own test: test_intake_people.py)."""
    runtime = build(settings.model_copy(update={"referrer_per_minute": 100_000}))
    headers = bearer(settings, Role.REFERRER, "gp:10001234567")
    with TestClient(runtime.http_app, raise_server_exceptions=False, headers=headers) as client:
        assert client.portal is not None
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


async def test_an_expired_or_other_service_token_is_refused_with_its_reason(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    created = await http.post("/referrals", json=valid_referral("token-1"))
    assert created.status_code == 201, created.text
    path = f"/referrals/{created.json()['referral_id']}"
    gp = "gp:10001234567"
    expired = issue_token(
        settings, Role.REFERRER, gp, ServiceName.INTAKE, ttl_seconds=1, now=time.time() - 5
    )
    for_scheduler = issue_token(settings, Role.REFERRER, gp, ServiceName.SCHEDULER)
    for token, reason in ((expired, "expired"), (for_scheduler, "not intake")):
        response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text
        assert reason in response.json()["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await http.get(path)).status_code == 200
