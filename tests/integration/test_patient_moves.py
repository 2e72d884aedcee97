"""Another slot by the patient's link, offered and not imposed (issue 27), and bounded
(issue 28), at the scheduler's HTTP API on SQLite and PostgreSQL.

The patient reads up to three slots of the scheduler's own ranking, never their current
one; their appointment stays booked until they confirm one; the one confirmed is booked
and the old one cancelled as the patient; a slot taken meanwhile is refused with fresh
offers, their appointment kept; a fourth move is refused (409 ``too_many_moves``), the
count read from the database. A suspension still moves the patient at once, and says
why, on the events and on their page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.scheduler import store
from services.scheduler.domain.assignment import Candidate
from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.http.patient import build_patient_router
from services.scheduler.store.tables import appointment_moves, appointments
from shared.db import Database, as_utc
from shared.events import CentreSuspended, new_id, utcnow
from shared.messaging_tables import outbox
from shared.migrations import upgrade
from shared.outbox import OutboxRelay
from shared.patient_link import HEADER, issue_link
from tests.helpers import centre, handle, oriented, scheduler_queue

KEY = "patient-link-key-of-the-moves-tests-0123456789"
LATER = 4102444800  # 2100: a link that has not expired


class _Relay:
    """The relay's one method the door calls: nothing to publish in these tests."""

    def notify(self, staged: int = 1) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: Any, postgres: Any, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres":
        url = await postgres.create("scheduler")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}"
    db = Database(url)
    await upgrade(db, "services.scheduler:migrations")
    try:
        yield db
    finally:
        await db.dispose()


def _client(database: Database) -> httpx.AsyncClient:
    """The scheduler's patient door, built afresh: nothing it knows lives in memory."""
    app = FastAPI()
    relay = cast(OutboxRelay, _Relay())
    app.include_router(build_patient_router(SchedulerHandlers(), database, relay, KEY))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler")


def _link(appointment: dict[str, Any]) -> dict[str, str]:
    token = issue_link(
        KEY,
        appointment["appointment_id"],
        appointment["referral_id"],
        datetime.fromisoformat(appointment["end"]),
    )
    return {HEADER: token}


async def _booked(database: Database, referral_id: str) -> dict[str, Any]:
    """Three centres around Rennes (one of two boxes), the patient booked at one."""
    handlers = SchedulerHandlers()
    for centre_id, insee, boxes in [
        ("rennes-a", "35238", 2),
        ("rennes-b", "35238", 1),
        ("st-gregoire", "35278", 1),
    ]:
        await handle(
            database, scheduler_queue(handlers, "centres"), centre(centre_id, insee, boxes=boxes)
        )
    await handle(database, scheduler_queue(handlers, "referrals"), oriented(referral_id))
    async with database.transaction() as session:
        row = await store.booked_appointment(session, referral_id)
    assert row is not None
    return {
        "appointment_id": row.id,
        "referral_id": referral_id,
        "end": as_utc(row.end).isoformat(),
        "centre_id": row.centre_id,
        "start": as_utc(row.start).isoformat(),
    }


async def _statuses(database: Database, referral_id: str) -> dict[str, str]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(appointments.c.id, appointments.c.status).where(
                appointments.c.referral_id == referral_id
            )
        )
        return {row.id: row.status for row in rows}


async def _events(database: Database, event_type: str) -> list[dict[str, Any]]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(outbox.c.body).where(outbox.c.event_type == event_type).order_by(outbox.c.seq)
        )
        return [json.loads(body)["data"] for (body,) in rows]


def _choice(option: dict[str, Any]) -> dict[str, str]:
    return {"centre_id": option["centre_id"], "start": option["start"]}


async def test_three_offers_the_current_kept_until_the_patient_confirms_one(
    database: Database,
) -> None:
    referral_id = new_id()
    current = await _booked(database, referral_id)
    link = _link(current)
    async with _client(database) as client:
        answer = await client.get("/patient/appointment/options", headers=link)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        offered = body["options"]
        assert len(offered) == 3
        assert body["moves"] == {"done": 0, "left": 3, "allowed": 3}
        slots = {(o["centre_id"], o["start"]) for o in offered}
        # Three different slots, none the current one (nor its time at its other box).
        assert len(slots) == 3
        assert (current["centre_id"], current["start"]) not in slots
        for option in offered:
            assert option["centre"]["name"].startswith("Centre ")
            assert option["centre"]["commune"] in ("Rennes", "Saint-Grégoire")
            assert option["distance_km"] >= 0
            assert datetime.fromisoformat(option["start"]) > utcnow()
        # Reading the offers books nothing: the current appointment is still the one.
        assert await _statuses(database, referral_id) == {current["appointment_id"]: "booked"}
        assert (await client.get("/patient/appointment", headers=link)).status_code == 200

        # The same slot is not a move; a malformed choice is refused by the schema.
        same = await client.post(
            "/patient/appointment/move",
            headers=link,
            json={"centre_id": current["centre_id"], "start": current["start"]},
        )
        assert (same.status_code, same.json()["error_code"]) == (409, "same_slot")
        bad = await client.post("/patient/appointment/move", headers=link, json={"start": "x"})
        assert bad.status_code == 422
        assert await _statuses(database, referral_id) == {current["appointment_id"]: "booked"}

        # The second offer confirmed: booked there; the old one cancelled by the patient.
        chosen = offered[1]
        moved = await client.post("/patient/appointment/move", headers=link, json=_choice(chosen))
        assert moved.status_code == 200, moved.text
        new = moved.json()
        assert (new["centre"]["centre_id"], new["start"]) == (chosen["centre_id"], chosen["start"])
        assert new["moves"] == {"done": 1, "left": 2, "allowed": 3}
        assert new["moved"] is None  # the patient's own move needs no explaining
        assert await _statuses(database, referral_id) == {
            current["appointment_id"]: "cancelled",
            new["appointment_id"]: "booked",
        }
        # The old link stops working with the old appointment.
        assert (await client.get("/patient/appointment", headers=link)).status_code == 410
        again = await client.post("/patient/appointment/move", headers=link, json=_choice(chosen))
        assert again.status_code == 410
    cancelled = await _events(database, "appointment.cancelled")
    assert [(e["appointment_id"], e.get("cancelled_by"), e.get("replaced_by")) for e in cancelled] == [
        (current["appointment_id"], "patient", new["appointment_id"])
    ]
    rescheduled = await _events(database, "appointment.rescheduled")
    assert [(e["appointment_id"], e["previous_appointment_id"]) for e in rescheduled] == [
        (new["appointment_id"], current["appointment_id"])
    ]
    # The old slot is free again: the booking that held it is gone.
    async with database.transaction() as session:
        old = await store.appointment(session, current["appointment_id"])
        assert old is not None
        held = await store.booked_slots(session, [old.centre_id], old.start, old.start)
    assert (as_utc(old.start), old.box) not in held[old.centre_id]


async def test_a_slot_taken_meanwhile_is_refused_with_fresh_offers(database: Database) -> None:
    referral_id = new_id()
    current = await _booked(database, referral_id)
    link = _link(current)
    async with _client(database) as client:
        offered = (await client.get("/patient/appointment/options", headers=link)).json()["options"]
        chosen = offered[0]
        # Another patient takes every box of that time before the patient confirms.
        async with database.transaction() as session:
            start = datetime.fromisoformat(chosen["start"])
            for box in (1, 2):
                await store.try_book(
                    session,
                    Candidate(chosen["centre_id"], start, start, box, 1.0, 0.0, 0.0),
                    appointment_id=new_id(),
                    referral_id=new_id(),
                    patient_ref="pat-other",
                    priority="routine",
                    now=utcnow(),
                )
        taken = await client.post("/patient/appointment/move", headers=link, json=_choice(chosen))
        assert taken.status_code == 409, taken.text
        body = taken.json()
        assert body["error_code"] == "slot_taken"
        assert "vient d'être pris" in body["reasons"][0]["message"]
        fresh = {(o["centre_id"], o["start"]) for o in body["options"]}
        assert fresh and (chosen["centre_id"], chosen["start"]) not in fresh
        assert (current["centre_id"], current["start"]) not in fresh
        # Their appointment is kept, whole: booked, its link working, its slot held.
        assert await _statuses(database, referral_id) == {current["appointment_id"]: "booked"}
        assert (await client.get("/patient/appointment", headers=link)).status_code == 200
        async with database.transaction() as session:
            row = await store.appointment(session, current["appointment_id"])
            assert row is not None
            held = await store.booked_slots(session, [row.centre_id], row.start, row.start)
        assert (as_utc(row.start), row.box) in held[row.centre_id]
        # A fresh offer is booked.
        moved = await client.post(
            "/patient/appointment/move", headers=link, json=_choice(body["options"][0])
        )
        assert moved.status_code == 200, moved.text


async def test_a_fourth_move_by_the_link_is_refused_the_count_kept_in_the_database(
    database: Database,
) -> None:
    referral_id = new_id()
    appointment = await _booked(database, referral_id)
    for done in range(1, 4):
        # A door built afresh each time: the count is the database's, not a process's.
        async with _client(database) as client:
            link = _link(appointment)
            offered = (await client.get("/patient/appointment/options", headers=link)).json()
            assert offered["moves"]["left"] == 4 - done
            moved = await client.post(
                "/patient/appointment/move", headers=link, json=_choice(offered["options"][-1])
            )
            assert moved.status_code == 200, moved.text
            appointment = moved.json()
            assert appointment["moves"]["done"] == done
    async with _client(database) as client:
        link = _link(appointment)
        shown = (await client.get("/patient/appointment", headers=link)).json()
        assert shown["moves"] == {"done": 3, "left": 0, "allowed": 3}
        refused = await client.get("/patient/appointment/options", headers=link)
        assert refused.status_code == 409
        body = refused.json()
        assert body["error_code"] == "too_many_moves"
        assert "appelez le centre" in body["reasons"][0]["message"]
        assert body["centre"]["name"] == shown["centre"]["name"]
        choice = {"centre_id": "rennes-b", "start": shown["end"]}
        fourth = await client.post("/patient/appointment/move", headers=link, json=choice)
        assert (fourth.status_code, fourth.json()["error_code"]) == (409, "too_many_moves")
    statuses = await _statuses(database, referral_id)
    assert sorted(statuses.values()) == ["booked", "cancelled", "cancelled", "cancelled"]
    async with database.transaction() as session:
        rows = (await session.execute(select(appointment_moves))).all()
    assert [row.moved_by for row in rows] == ["patient"] * 3


async def test_the_link_refuses_as_before_on_the_new_routes(database: Database) -> None:
    referral_id = new_id()
    current = await _booked(database, referral_id)
    good = _link(current)[HEADER]
    expired = issue_link(KEY, current["appointment_id"], referral_id, int(utcnow().timestamp()) - 1)
    choice = {"centre_id": "rennes-b", "start": current["end"]}
    async with _client(database) as client:
        for path, method in (("/patient/appointment/options", "GET"),
                             ("/patient/appointment/move", "POST")):  # fmt: skip

            def call(token: str | None, path: str = path, method: str = method) -> Any:
                headers = {HEADER: token} if token is not None else {}
                body = choice if method == "POST" else None
                return client.request(method, path, headers=headers, json=body)

            assert (await call(None)).status_code == 401
            assert (await call(good[:-2] + "xx")).status_code == 403
            forged = issue_link("another-key", current["appointment_id"], referral_id, LATER)
            assert (await call(forged)).status_code == 403
            assert (await call(expired)).status_code == 410
            other = issue_link(KEY, current["appointment_id"], new_id(), LATER)
            assert (await call(other)).status_code == 404
    assert await _statuses(database, referral_id) == {current["appointment_id"]: "booked"}


async def test_a_suspension_moves_at_once_and_says_why(database: Database) -> None:
    referral_id = new_id()
    current = await _booked(database, referral_id)
    await handle(
        database,
        scheduler_queue(SchedulerHandlers(), "centres"),
        CentreSuspended(centre_id=current["centre_id"], reason="dégât des eaux"),
    )
    rescheduled = await _events(database, "appointment.rescheduled")
    assert len(rescheduled) == 1
    event = rescheduled[0]
    # The cause travels with the move, for the notice to say it (the notifier's words).
    assert event["reason"] == "centre suspendu : dégât des eaux"
    assert event["previous_appointment_id"] == current["appointment_id"]
    cancelled = await _events(database, "appointment.cancelled")
    assert [(e.get("cancelled_by"), e.get("replaced_by")) for e in cancelled] == [
        ("service", event["appointment_id"])
    ]
    async with _client(database) as client:
        link = _link(event)
        shown = await client.get("/patient/appointment", headers=link)
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["moved"] == {"by": "service", "reason": "centre suspendu : dégât des eaux"}
        # Not the patient's move: all three are still theirs, and they may choose.
        assert body["moves"]["done"] == 0
        offered = await client.get("/patient/appointment/options", headers=link)
        assert offered.status_code == 200 and offered.json()["options"]
