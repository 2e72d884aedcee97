"""The patient's link at the services that act on it, and a referrer's own list.

Deny by default: each refusal is proven here, with the real broker and database.
Intake cancels only with a genuine, unexpired link whose appointment is still the
referral's current one; the scheduler shows and moves only such an appointment; a
referrer lists its own referrals and nobody else's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.intake.app import build as build_intake
from services.intake.store.tables import referrals, status_history
from services.scheduler.app import build as build_scheduler
from services.scheduler.store.tables import appointments
from shared.auth import Role, issue_token
from shared.events import (
    CentreActivated,
    CentreKind,
    Decision,
    Envelope,
    OpeningPeriod,
    Priority,
    ReferralRegulated,
    SlotAssigned,
    new_id,
    utcnow,
)
from shared.patient_link import HEADER, issue_link
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import running, scheduler_queue
from tests.strategies import valid_referral


def bearer(settings: Settings, role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, role, subject, ServiceName.INTAKE)}"}


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build_intake(settings)
    async with running(runtime):
        yield runtime


@pytest.fixture
async def gp(intake: ServiceRuntime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake.http_app),
        base_url="http://intake",
        headers=bearer(settings, Role.REFERRER, "gp:10001234567"),
    ) as client:
        yield client


async def _booked(intake: ServiceRuntime, referral_id: str, appointment_id: str) -> None:
    """The referral as intake keeps it once the scheduler booked it."""
    start = utcnow() + timedelta(hours=3)
    slot = SlotAssigned(
        centre_id="rennes-x",
        appointment_id=appointment_id,
        referral_id=referral_id,
        patient_ref="pat-x",
        centre_name="Centre X",
        centre_commune_insee="35238",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.ROUTINE,
        distance_km=1.0,
    )
    from services.intake.handlers import IntakeHandlers
    from shared.consumer import Delivery

    handlers = IntakeHandlers(intake.settings)
    envelope = Envelope.wrap(slot, source="scheduler", correlation_id=referral_id)
    async with intake.database.transaction() as session:
        await handlers.on_outcome(Delivery(session=session, envelope=envelope, source="intake"))


async def test_a_referrer_lists_its_own_referrals_only(
    gp: httpx.AsyncClient, settings: Settings
) -> None:
    mine = await gp.post("/referrals", json=valid_referral("liste-1"))
    assert mine.status_code == 201, mine.text
    answer = await gp.get("/referrals")
    assert answer.status_code == 200, answer.text
    listed = answer.json()["referrals"]
    assert [r["referral_id"] for r in listed] == [mine.json()["referral_id"]]
    assert listed[0]["patient"]["last_name"]
    name = listed[0]["patient"]["last_name"].split()[0].lower()
    assert (await gp.get("/referrals", params={"q": name})).json()["referrals"]
    assert not (await gp.get("/referrals", params={"q": "zzzz-personne"})).json()["referrals"]
    other = bearer(settings, Role.REFERRER, "gp:999")
    assert (await gp.get("/referrals", headers=other)).json()["referrals"] == []
    # Only referrers and Centre 15 have referrals; a centre is refused, a stranger too.
    centre = bearer(settings, Role.CENTRE, "rennes-x")
    assert (await gp.get("/referrals", headers=centre)).status_code == 403
    assert (await gp.get("/referrals", headers={"Authorization": ""})).status_code == 401
    assert (await gp.get("/referrals", params={"q": "x" * 101})).status_code == 422


async def test_intake_cancels_only_with_a_genuine_current_link(
    gp: httpx.AsyncClient, intake: ServiceRuntime, settings: Settings
) -> None:
    key = settings.patient_link_key
    referral_id = (await gp.post("/referrals", json=valid_referral("lien-1"))).json()["referral_id"]
    appointment_id = new_id()
    later = int(time.time()) + 3600

    async def cancel(token: str | None) -> httpx.Response:
        headers = {"Authorization": ""} | ({HEADER: token} if token is not None else {})
        return await gp.post("/patient/cancellation", headers=headers)

    # Before any appointment: a genuine link to an appointment that is not current.
    assert (await cancel(issue_link(key, appointment_id, referral_id, later))).status_code == 410
    await _booked(intake, referral_id, appointment_id)
    good = issue_link(key, appointment_id, referral_id, later)
    # No link; a forged, altered or other-key link; an expired one; another appointment.
    assert (await cancel(None)).status_code == 401
    assert (await cancel("")).status_code == 401
    assert (await cancel(good[:-1] + ("A" if good[-1] != "A" else "B"))).status_code == 403
    assert (await cancel(issue_link("another-key", appointment_id, referral_id, later))).json()[
        "error_code"
    ] == "patient_link_invalid"
    expired = await cancel(issue_link(key, appointment_id, referral_id, int(time.time()) - 1))
    assert (expired.status_code, expired.json()["error_code"]) == (410, "patient_link_expired")
    wrong = await cancel(issue_link(key, new_id(), referral_id, later))
    assert (wrong.status_code, wrong.json()["error_code"]) == (410, "appointment_not_current")
    unknown = await cancel(issue_link(key, appointment_id, new_id(), later))
    assert unknown.status_code == 404
    async with intake.database.transaction() as session:
        status = await session.scalar(
            select(referrals.c.status).where(referrals.c.id == referral_id)
        )
    assert status == "appointment"  # none of them did anything

    done = await cancel(good)
    assert done.status_code == 200 and done.json()["by"] == "patient"
    async with intake.database.transaction() as session:
        row = (await session.execute(select(referrals).where(referrals.c.id == referral_id))).one()
        history = (
            await session.execute(
                select(status_history.c.detail).where(status_history.c.referral_id == referral_id)
            )
        ).all()
    assert row.status == "cancelled"
    assert any((h.detail or {}).get("by") == "patient" for h in history)
    # Once cancelled the link stops working.
    again = await cancel(good)
    assert (again.status_code, again.json()["error_code"]) == (410, "appointment_not_current")


@pytest.fixture
async def scheduler(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build_scheduler(settings)
    async with running(runtime):
        yield runtime


async def _deliver(runtime: ServiceRuntime, handler: Any, payload: Any, correlation: str) -> None:
    from shared.consumer import Delivery

    envelope = Envelope.wrap(payload, source="test", correlation_id=correlation)
    async with runtime.database.transaction() as session:
        await handler(Delivery(session=session, envelope=envelope, source="scheduler"))


async def test_the_scheduler_shows_and_moves_only_with_a_genuine_current_link(
    scheduler: ServiceRuntime, settings: Settings
) -> None:
    from services.scheduler.handlers import SchedulerHandlers

    handlers = SchedulerHandlers()
    today = utcnow().date()
    await _deliver(
        scheduler,
        scheduler_queue(handlers, "centres"),
        CentreActivated(
            centre_id="rennes-lien",
            name="Centre du lien",
            kind=CentreKind.TEMPORARY_DEDICATED,
            commune_insee="35238",
            address="1 rue du Lien",
            opening_hours=tuple(
                OpeningPeriod(weekday=d, opens="00:00", closes="24:00") for d in range(7)
            ),
            boxes=1,
            consultation_minutes=20,
            first_day=today,
        ),
        "rennes-lien",
    )  # fmt: skip
    referral_id = new_id()
    await _deliver(
        scheduler,
        scheduler_queue(handlers, "referrals"),
        ReferralRegulated(
            referral_id=referral_id,
            patient_ref="pat-lien",
            decision=Decision.ORIENT,
            priority=Priority.ROUTINE,
            deadline=utcnow() + timedelta(hours=24),
            protocol_version="1",
            decided_by="protocol",
            decision_id=new_id(),
            age=40,
            commune_insee="35238",
            departement="35",
        ),
        referral_id,
    )
    async with scheduler.database.transaction() as session:
        booked = (
            await session.execute(
                select(appointments).where(appointments.c.referral_id == referral_id)
            )
        ).one()
    key = settings.patient_link_key
    good = issue_link(key, booked.id, referral_id, booked.end)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=scheduler.http_app), base_url="http://scheduler"
    ) as client:

        async def read(token: str | None) -> httpx.Response:
            return await client.get(
                "/patient/appointment", headers={HEADER: token} if token is not None else {}
            )

        async def move(token: str) -> httpx.Response:
            # The patient confirms the first slot offered (issue 27: offered, not imposed).
            offered = await client.get("/patient/appointment/options", headers={HEADER: token})
            if offered.status_code != 200:
                return offered
            first = offered.json()["options"][0]
            choice = {"centre_id": first["centre_id"], "start": first["start"]}
            return await client.post(
                "/patient/appointment/move", headers={HEADER: token}, json=choice
            )

        later = int(time.time()) + 3600
        assert (await read(None)).status_code == 401
        assert (await read(good.replace(".", "..", 1))).status_code == 403
        assert (await read(good[:-2] + "xx")).status_code == 403
        assert (
            await read(issue_link(key, booked.id, referral_id, int(time.time()) - 1))
        ).status_code == 410
        # The right appointment under another referral's link: unknown.
        assert (await read(issue_link(key, booked.id, new_id(), later))).status_code == 404
        assert (await move(good[:-2] + "xx")).status_code == 403
        shown = await read(good)
        assert shown.status_code == 200
        body = shown.json()
        assert body["appointment_id"] == booked.id
        assert body["centre"]["name"] == "Centre du lien"
        assert body["centre"]["lat"] is not None

        moved = await move(good)
        assert moved.status_code == 200, moved.text
        new = moved.json()
        assert new["appointment_id"] != booked.id
        assert new["start"] != body["start"]
        # The old link stops working with the old appointment; the new one works.
        assert (await read(good)).status_code == 410
        assert (await move(good)).status_code == 410
        fresh = issue_link(key, new["appointment_id"], referral_id, int(time.time()) + 3600)
        assert (await read(fresh)).status_code == 200
    async with scheduler.database.transaction() as session:
        statuses = dict(
            (
                await session.execute(
                    select(appointments.c.id, appointments.c.status).where(
                        appointments.c.referral_id == referral_id
                    )
                )
            ).all()
        )
    assert statuses == {booked.id: "cancelled", new["appointment_id"]: "booked"}
