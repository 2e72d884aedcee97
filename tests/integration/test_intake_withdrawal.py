"""Issue 27 at intake's HTTP door: a referrer withdraws its own referral (and only its
own), twice without harm, never one at its end; a reference reused for other content
answers 409 with where the referral stands, and tells nobody else (no webhook)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, select

from services.intake.app import build
from services.notifier.app import build as build_notifier
from shared.auth import Role, issue_token
from shared.events import (
    AppointmentCancelled,
    CancelledBy,
    ConsultationCompleted,
    Decision,
    Envelope,
    EventPayload,
    Priority,
    ReferralRegulated,
    SlotAssigned,
    new_id,
)
from shared.http import HttpServer
from shared.messaging_tables import outbox
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import Tap, running
from tests.strategies import valid_referral

GP = "gp:10001234567"


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


def bearer(settings: Settings, role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, role, subject, ServiceName.INTAKE)}"}


@pytest.fixture
async def http(intake: ServiceRuntime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The GP's client: the referrals are submitted as gp:10001234567."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake.http_app),
        base_url="http://intake",
        headers=bearer(settings, Role.REFERRER, GP),
    ) as client:
        yield client


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


async def _status_becomes(http: httpx.AsyncClient, referral_id: str, status: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        body = (await http.get(f"/referrals/{referral_id}")).json()
        if body.get("status") == status:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def _booked(
    http: httpx.AsyncClient, settings: Settings, reference: str, body: Any = None
) -> str:
    """A referral of the GP's, oriented and booked (as the bus would tell intake)."""
    created = await http.post("/referrals", json=body or valid_referral(reference))
    referral_id: str = created.json()["referral_id"]
    now = datetime.now(UTC)
    regulated = ReferralRegulated(
        referral_id=referral_id,
        patient_ref="pat-x",
        decision=Decision.ORIENT,
        priority=Priority.URGENT,
        protocol_version="1",
        decided_by="protocol",
        decision_id=new_id(),
        age=60,
        commune_insee="35238",
        departement="35",
    )
    start = now + timedelta(hours=2)
    slot = SlotAssigned(
        centre_id="rennes-w",
        appointment_id=f"appt-{reference}",
        referral_id=referral_id,
        patient_ref="pat-x",
        centre_name="Centre rennes-w",
        centre_commune_insee="35238",
        centre_address="1 place de la Mairie",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.URGENT,
        distance_km=1.0,
    )
    await _on_bus(settings, (regulated, now), (slot, now + timedelta(seconds=1)))
    await _status_becomes(http, referral_id, "appointment")
    return referral_id


async def _cancellations_staged(intake: ServiceRuntime) -> int:
    async with intake.database.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.event_type == "referral.cancelled")
        )
    return int(count or 0)


async def test_a_referrer_withdraws_its_own_referral_once_and_nobody_else_can(
    http: httpx.AsyncClient, intake: ServiceRuntime, settings: Settings
) -> None:
    referral_id = (await http.post("/referrals", json=valid_referral("w-own"))).json()[
        "referral_id"
    ]
    reason = {"reason": "patient_recovered"}
    # Another referrer: the 404 of a referral it cannot read, word for word.
    other = bearer(settings, Role.REFERRER, "gp:999")
    cannot_read = await http.get(f"/referrals/{referral_id}", headers=other)
    for path in (f"/referrals/{referral_id}/withdraw",):
        refused = await http.post(path, json=reason, headers=other)
        assert (refused.status_code, refused.json()) == (404, cannot_read.json())
    refused = await http.request("DELETE", f"/referrals/{referral_id}", json=reason, headers=other)
    assert (refused.status_code, refused.json()) == (404, cannot_read.json())
    # Centre 15 reads escalated referrals of others, and withdraws none of them.
    samu = bearer(settings, Role.CENTRE_15, "samu-35")
    assert (
        await http.post(f"/referrals/{referral_id}/withdraw", json=reason, headers=samu)
    ).status_code == 404
    # Unknown, unauthenticated, another role, no reason from the list.
    assert (await http.post("/referrals/nope/withdraw", json=reason)).status_code == 404
    anonymous = {"Authorization": ""}
    assert (
        await http.post(f"/referrals/{referral_id}/withdraw", json=reason, headers=anonymous)
    ).status_code == 401
    ars = bearer(settings, Role.ARS, "bzh")
    assert (
        await http.post(f"/referrals/{referral_id}/withdraw", json=reason, headers=ars)
    ).status_code == 403
    for bad in ({}, {"reason": "bored"}, {"reason": None}, ["patient_recovered"]):
        invalid = await http.post(f"/referrals/{referral_id}/withdraw", json=bad)
        assert invalid.status_code == 422, bad
        assert invalid.json()["error_code"] == "invalid_withdrawal_reason"
        assert "le patient va mieux" in invalid.json()["reasons"][0]["message"]
    assert (await http.get(f"/referrals/{referral_id}")).json()["status"] == "received"
    assert await _cancellations_staged(intake) == 0

    async with Tap(settings.broker_url, settings.namespace, "referral.cancelled") as tap:
        withdrawn = await http.post(f"/referrals/{referral_id}/withdraw", json=reason)
        await tap.wait_for(lambda es: bool(es))
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert body["status"] == "cancelled"
    assert body["detail"] == {
        "by": "referrer",
        "reason": "le patient va mieux",
        "reason_code": "patient_recovered",
    }
    assert (
        body["message"] == "Demande annulée par le médecin adresseur. Motif : le patient va mieux."
    )
    [event] = tap.of_type("referral.cancelled")
    assert event.data["cancelled_by"] == "referrer"
    assert event.data["reason_code"] == "patient_recovered"

    # Again, by either route and whatever the reason: the same state, nothing new.
    again = await http.request("DELETE", f"/referrals/{referral_id}", json={"reason": "other"})
    assert (again.status_code, again.json()) == (200, body)
    assert (await http.post(f"/referrals/{referral_id}/withdraw", json=reason)).json() == body
    assert await _cancellations_staged(intake) == 1
    status = (await http.get(f"/referrals/{referral_id}")).json()
    assert status["final"] is True
    assert [h["status"] for h in status["history"]] == ["received", "withdrawn"]


async def test_a_referral_at_its_end_is_not_withdrawn_but_a_cancelled_appointment_is(
    http: httpx.AsyncClient, intake: ServiceRuntime, settings: Settings
) -> None:
    seen = await _booked(http, settings, "w-seen")
    completed = ConsultationCompleted(
        centre_id="rennes-w", appointment_id="appt-w-seen", referral_id=seen
    )
    await _on_bus(settings, (completed, datetime.now(UTC) + timedelta(seconds=2)))
    await _status_becomes(http, seen, "seen")
    closed = await http.post(f"/referrals/{seen}/withdraw", json={"reason": "seen_elsewhere"})
    assert closed.status_code == 409
    answer = closed.json()
    assert answer["error_code"] == "referral_final"
    assert answer["status"] == "seen" and answer["referral_id"] == seen
    assert answer["message"] == "Patient vu au centre rennes-w."
    assert answer["reasons"][0]["message"].startswith("Cette demande ne peut plus être retirée")
    assert (await http.get(f"/referrals/{seen}")).json()["status"] == "seen"

    # A refused submission of the GP's: at its end too.
    refused = valid_referral("w-refused")
    refused["purpose"] = "screening"
    refused["clinical"] = {"symptomatic": False}
    submission_id = (await http.post("/referrals", json=refused)).json()["submission_id"]
    rejected = await http.post(f"/referrals/{submission_id}/withdraw", json={"reason": "other"})
    assert (rejected.status_code, rejected.json()["status"]) == (409, "rejected")

    # An appointment a centre cancelled is still open: the GP withdraws the referral.
    open_one = await _booked(http, settings, "w-open")
    by_centre = AppointmentCancelled(
        centre_id="rennes-w",
        appointment_id="appt-w-open",
        referral_id=open_one,
        patient_ref="pat-x",
        start=datetime.now(UTC) + timedelta(hours=2),
        cancelled_by=CancelledBy.CENTRE,
        reason="box fermé",
    )
    await _on_bus(settings, (by_centre, datetime.now(UTC) + timedelta(seconds=2)))
    cancelled = await _status_becomes(http, open_one, "cancelled")
    assert cancelled["final"] is False
    done = await http.post(f"/referrals/{open_one}/withdraw", json={"reason": "hospitalised"})
    assert done.status_code == 200
    assert done.json()["detail"]["by"] == "referrer"
    assert (await http.get(f"/referrals/{open_one}")).json()["final"] is True


class Hooks:
    """A webhook receiver, over real HTTP: what the notifier sent the referrer."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            self.received.append(json.loads(await request.body()))
            return {"status": "ok"}


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[Hooks, int]]:
    receiver = Hooks()
    server = HttpServer(receiver.app, "127.0.0.1", 0)
    await server.start()
    try:
        yield receiver, server.port
    finally:
        await server.stop()


async def test_a_conflict_answers_409_with_the_status_and_sends_no_webhook(
    http: httpx.AsyncClient, settings: Settings, hooks: tuple[Hooks, int]
) -> None:
    received, port = hooks
    webhook = f"http://127.0.0.1:{port}/hook"  # development: the referrer's own webhook

    def with_hook(reference: str) -> dict[str, Any]:
        referral = valid_referral(reference)
        referral["referrer"]["webhook_url"] = webhook
        return referral

    async with (
        running(build_notifier(settings)),
        Tap(settings.broker_url, settings.namespace, "referral.rejected") as tap,
    ):
        # Booked: a "rejected" webhook would tell the GP the opposite of the truth.
        referral_id = await _booked(http, settings, "c-1", with_hook("c-1"))
        changed = with_hook("c-1")
        changed["clinical"]["vitals"]["spo2"] = 93
        conflict = await http.post("/referrals", json=changed)
        # A refusal that is the referrer's news (a refused submission), sent after:
        # once its webhook arrived, the conflict's would have too.
        screening = with_hook("c-2")
        screening["purpose"] = "screening"
        screening["clinical"] = {"symptomatic": False}
        assert (await http.post("/referrals", json=screening)).status_code == 422
        deadline = time.monotonic() + 30
        while not (
            any(h.get("reference") == "c-2" for h in received.received)
            and any(h.get("referral_id") == referral_id for h in received.received)
        ):
            assert time.monotonic() < deadline, received.received
            await asyncio.sleep(0.1)
    assert conflict.status_code == 409
    answer = conflict.json()
    assert answer["error_code"] == "reference_conflict"
    assert answer["referral_id"] == referral_id
    assert answer["status"] == "appointment"
    assert answer["detail"]["appointment_id"] == "appt-c-1"
    assert answer["message"].startswith("Rendez-vous le ")
    [reason] = answer["reasons"]
    assert reason["code"] == "reference_conflict" and reason["field"] == "reference"
    assert reason["message"].startswith("La référence « c-1 » a déjà servi pour la demande")
    # Nobody else told: no referral.rejected about the referral, no webhook about it.
    assert [e.data["reference"] for e in tap.of_type("referral.rejected")] == ["c-2"]
    about_it = [h["status"] for h in received.received if h.get("referral_id") == referral_id]
    assert about_it == ["appointment"]  # the booking's, and nothing of the conflict
    assert (await http.get(f"/referrals/{referral_id}")).json()["status"] == "appointment"
