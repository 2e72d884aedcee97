"""No slot is booked that the patient cannot reach (issue 27), on every path that books,
with the real PostgreSQL database and broker: a first booking, a drained waiting list,
a move away from a suspended centre, the patient's own request for another slot (over
HTTP, the runtime's handlers: the slots offered and the one confirmed), a consumer
batch planned jointly, and a move off a place a reduction of capacity removed.

Each booking's appointment records the handler's own clock (``created_at``): its slot
starts no sooner than that + the lead time + the travel from the patient's commune to
the centre (domain/reach.py). The centres receive day and night in five-minute slots:
without the rule, every slot would start within five minutes of its booking.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from services.scheduler.app import build
from services.scheduler.domain.reach import Area, travel_minutes
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from services.scheduler.store.tables import appointments, centres
from shared.consumer import Delivery
from shared.db import Database, as_utc
from shared.events import (
    CentreCapacityChanged,
    CentreSuspended,
    Envelope,
    Priority,
    utcnow,
)
from shared.geo import commune, haversine_km
from shared.patient_link import HEADER, issue_link
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.helpers import centre, handle, oriented, running, scheduler_queue

pytestmark = pytest.mark.postgres

# Not the default (30): the runtime's own handlers (the patient's door) read the setting.
LEAD = 45.0
# Each patient's commune and its area, as the module docstring of reach.py sets them.
PATIENTS = {
    "p-mouaze": ("35197", Area.RURAL),  # Mouazé, 1,586 inhabitants, 13 km from Rennes
    "p-rennes": ("35238", Area.URBAN),
    "p-issy": ("92040", Area.PARIS),  # Issy-les-Moulineaux
    "p-villeurbanne-1": ("69266", Area.URBAN),
    "p-villeurbanne-2": ("69266", Area.URBAN),
}
BOOKINGS = ("slot.assigned", "appointment.rescheduled")


@pytest.fixture
async def scheduler(settings: Settings, postgres: Any) -> AsyncIterator[ServiceRuntime]:
    url = await postgres.create("scheduler")
    update = {"scheduler_database_url": url, "booking_lead_minutes": LEAD}
    runtime = build(settings.model_copy(update=update))
    async with running(runtime):
        yield runtime


def booked_ids(*deliveries: Delivery) -> list[str]:
    """The appointments these deliveries booked (new or moved)."""
    return [e.data["appointment_id"] for d in deliveries for e in d.emitted if e.type in BOOKINGS]


async def assert_reachable(database: Database, ids: Sequence[str], since: datetime) -> None:
    """Each appointment booked from ``since`` on, no sooner than its booking's clock +
    the lead time + the travel from the patient's commune to its centre."""
    assert ids, "the path booked nobody: the test would prove nothing"
    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(appointments, centres.c.lat, centres.c.lon)
                .join(centres, centres.c.id == appointments.c.centre_id)
                .where(appointments.c.id.in_(ids))
            )
        ).all()
    assert len(rows) == len(ids)
    for row in rows:
        insee, area = PATIENTS[row.referral_id]
        home = commune(insee)
        assert home is not None
        km = haversine_km(home.lat, home.lon, row.lat, row.lon)
        booked_at = as_utc(row.created_at)
        assert booked_at >= since
        kept = booked_at + timedelta(minutes=LEAD + travel_minutes(km, area))
        assert as_utc(row.start) >= kept, (row.referral_id, row.centre_id, km)


async def test_every_path_that_books_leaves_the_patient_time_to_get_there(
    scheduler: ServiceRuntime, settings: Settings
) -> None:
    database = scheduler.database
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD))

    async def decide(referral_id: str) -> Delivery:
        insee = PATIENTS[referral_id][0]
        return await handle(
            database, scheduler_queue(handlers, "referrals"), oriented(referral_id, insee)
        )

    # A first booking: a rural patient 13 km from the only centre, and one of Rennes.
    await handle(
        database,
        scheduler_queue(handlers, "centres"),
        centre("rennes", "35238", boxes=1, minutes=5),
    )
    since = utcnow()
    first = [await decide("p-mouaze"), await decide("p-rennes")]
    await assert_reachable(database, booked_ids(*first), since)
    # Alone at the centre, the rural patient gets the first slot they can reach.
    async with database.transaction() as session:
        start, created = (
            await session.execute(
                select(appointments.c.start, appointments.c.created_at).where(
                    appointments.c.referral_id == "p-mouaze"
                )
            )
        ).one()
    travel = travel_minutes(13.0, Area.RURAL)
    assert as_utc(start) - as_utc(created) < timedelta(minutes=LEAD + travel + 5 + 1)

    # The waiting list drained: no centre near Issy yet, then one in Paris 15e.
    waiting = await decide("p-issy")
    assert [e.type for e in waiting.emitted][:1] == ["referral.waitlisted"]
    since = utcnow()
    drained = await handle(
        database, scheduler_queue(handlers, "centres"), centre("paris-15", "75115", minutes=5)
    )
    await assert_reachable(database, booked_ids(drained), since)

    # A suspension: Rennes's patients move to Saint-Grégoire.
    await handle(
        database, scheduler_queue(handlers, "centres"), centre("st-gregoire", "35278", minutes=5)
    )
    since = utcnow()
    suspended = await handle(
        database,
        scheduler_queue(handlers, "centres"),
        CentreSuspended(centre_id="rennes", reason="travaux"),
    )
    moved = booked_ids(suspended)
    assert len(moved) == 2
    await assert_reachable(database, moved, since)

    # The patient's request for another slot, at the scheduler's door (its own handlers).
    [issy] = booked_ids(drained)
    await assert_reachable(database, [await ask_another_slot(scheduler, settings, issy)], since)

    # A consumer batch planned jointly: two patients of Villeurbanne, one Lyon centre of
    # two boxes, nobody booked there before them: the same slot, boxes 1 and 2.
    await handle(
        database, scheduler_queue(handlers, "centres"), centre("lyon", "69381", boxes=2, minutes=5)
    )
    since = utcnow()
    batch = await planned_batch(database, handlers, ["p-villeurbanne-1", "p-villeurbanne-2"])
    planned = booked_ids(*batch)
    await assert_reachable(database, planned, since)

    # A reduction of capacity: one box from today; the patient of box 2 moves.
    today = utcnow().astimezone(ZoneInfo("Europe/Paris")).date()
    since = utcnow()
    reduced = await handle(
        database,
        scheduler_queue(handlers, "centres"),
        CentreCapacityChanged(centre_id="lyon", boxes=1, from_date=today),
    )
    assert len(booked_ids(reduced)) == 1
    await assert_reachable(database, booked_ids(reduced), since)


async def ask_another_slot(runtime: ServiceRuntime, settings: Settings, current: str) -> str:
    """The patient's link reads the slots offered (each one they can reach) and confirms
    the first; the new appointment."""
    async with runtime.database.transaction() as session:
        row = (
            await session.execute(select(appointments).where(appointments.c.id == current))
        ).one()
    insee, area = PATIENTS[row.referral_id]
    home = commune(insee)
    assert home is not None
    token = issue_link(settings.patient_link_key, row.id, row.referral_id, as_utc(row.end))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.http_app),
        base_url="http://scheduler",
        headers={HEADER: token},
    ) as client:
        asked = utcnow()
        answer = await client.get("/patient/appointment/options")
        assert answer.status_code == 200, answer.text
        offered = answer.json()["options"]
        assert offered, "no other slot offered"
        for offer in offered:
            km = haversine_km(home.lat, home.lon, offer["centre"]["lat"], offer["centre"]["lon"])
            kept = asked + timedelta(minutes=LEAD + travel_minutes(km, area))
            assert datetime.fromisoformat(offer["start"]) >= kept, offer
        chosen = {"centre_id": offered[0]["centre_id"], "start": offered[0]["start"]}
        answer = await client.post("/patient/appointment/move", json=chosen)
    assert answer.status_code == 200, answer.text
    moved: str = answer.json()["appointment_id"]
    assert moved != current
    return moved


async def planned_batch(
    database: Database, handlers: SchedulerHandlers, referral_ids: list[str]
) -> list[Delivery]:
    """New referrals in one transaction, planned first, as the consumer runs a batch."""
    envelopes = [
        Envelope.wrap(
            oriented(r, PATIENTS[r][0], Priority.ROUTINE), source="test", correlation_id=r
        )
        for r in referral_ids
    ]
    deliveries = []
    async with database.transaction() as session:
        await handlers.plan_batch(session, envelopes)
        for envelope in envelopes:
            delivery = Delivery(session=session, envelope=envelope, source="scheduler")
            await scheduler_queue(handlers, "referrals")(delivery)
            deliveries.append(delivery)
    starts = {e.data["start"] for d in deliveries for e in d.emitted if e.type in BOOKINGS}
    assert len(starts) == 1, "both in the first slot they can reach, one box each"
    return deliveries
