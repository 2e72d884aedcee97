"""A consumer batch of new referrals is placed jointly (issue 21), on the real broker.

One centre, one box, one-hour consultations: the next slot the patients can reach (the
lead time on, their commune being the centre's) is the only one before an urgent
patient's deadline. A routine patient arrives just before them. Placed one by one, the
routine patient takes that slot (the earliest is theirs to take) and the urgent one
waits; placed together, the urgent patient gets it and the routine one the next.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.scheduler.app import build
from services.scheduler.handlers import PLAN, SchedulerHandlers
from services.scheduler.store import active_schedules
from services.scheduler.store.tables import appointments
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import Envelope, Priority, ReferralRegulated, new_id
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology
from tests.helpers import Tap, centre, oriented, running, scheduler_queue

# From now + the lead time (30 min; no travel, the centre is in the patient's commune)
# to the deadline, one hour: one slot of the centre starts in it, the next after.
DEADLINE = timedelta(minutes=30 + 60)


def regulated(referral_id: str, priority: Priority) -> ReferralRegulated:
    urgent = priority is Priority.ASAP
    return oriented(referral_id, "35238", priority, DEADLINE if urgent else timedelta(hours=24))


async def _with_one_slot_an_hour(settings: Settings) -> None:
    """The centre, activated by a first run of the scheduler."""
    runtime = build(settings)
    async with running(runtime):
        async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
            await pub.publish(centre("rennes-1", "35238", boxes=1, minutes=60), correlation_id="c")
        for _ in range(100):
            async with runtime.database.transaction() as session:
                if await active_schedules(session):
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError("the centre is not active")


async def test_a_batch_gives_the_only_slot_in_time_to_the_urgent_patient(
    settings: Settings,
) -> None:
    s = settings.model_copy(update={"prefetch": 32, "batch_max": 32, "batch_window_ms": 20.0})
    await declare_topology(s.broker_url, s.namespace)
    await _with_one_slot_an_hour(s)
    routine, urgent = regulated("r-routine", Priority.ROUTINE), regulated("r-urgent", Priority.ASAP)
    async with Tap(s.broker_url, s.namespace, "slot.assigned.*", "referral.waitlisted") as tap:
        # Both wait in the queue while the scheduler is down: it takes them in one batch.
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            for event in (routine, urgent):
                await pub.publish(event, correlation_id=event.referral_id)
        runtime = build(s)
        async with running(runtime):
            await tap.wait_for(lambda es: len(es) >= 2, timeout=30)
            referrals = next(c for c in runtime.consumers if c.name == "scheduler.referrals")
            assert referrals.batches == 1
            async with runtime.database.transaction() as session:
                rows = (await session.execute(select(appointments))).all()
    assert sorted(e.type for e in tap.envelopes) == ["slot.assigned", "slot.assigned"]
    start = {row.referral_id: as_utc(row.start) for row in rows}
    assert start["r-urgent"] < start["r-routine"]
    assert start["r-urgent"] <= urgent.deadline


async def test_one_by_one_the_routine_patient_takes_it(settings: Settings) -> None:
    """What the batch above mends: the same two, each in its own transaction."""
    await declare_topology(settings.broker_url, settings.namespace)
    await _with_one_slot_an_hour(settings)
    runtime = build(settings)
    handlers = SchedulerHandlers()
    outcomes: dict[str, str] = {}
    async with running(runtime):
        for event in (
            regulated("r-routine", Priority.ROUTINE),
            regulated("r-urgent", Priority.ASAP),
        ):
            async with runtime.database.transaction() as session:
                delivery = Delivery(
                    session=session,
                    envelope=Envelope.wrap(event, source="test", correlation_id=new_id()),
                    source="scheduler",
                )
                await scheduler_queue(handlers, "referrals")(delivery)
            outcomes[event.referral_id] = delivery.emitted[0].type
    assert outcomes == {"r-routine": "slot.assigned", "r-urgent": "referral.waitlisted"}


async def test_a_plan_is_made_for_new_referrals_only(settings: Settings) -> None:
    """A batch of one, or of referrals already booked (a confirmation), is not planned."""
    await declare_topology(settings.broker_url, settings.namespace)
    await _with_one_slot_an_hour(settings)
    runtime = build(settings)
    handlers = SchedulerHandlers()
    first = regulated("r-first", Priority.ROUTINE)
    async with running(runtime):
        envelope = Envelope.wrap(first, source="test", correlation_id=new_id())
        async with runtime.database.transaction() as session:
            await handlers.plan_batch(session, [envelope])
            assert PLAN not in session.info
            await scheduler_queue(handlers, "referrals")(
                Delivery(session=session, envelope=envelope, source="scheduler")
            )
        again = Envelope.wrap(first, source="test", correlation_id=new_id())
        others = [
            Envelope.wrap(regulated(f"r-{n}", Priority.ROUTINE), source="t", correlation_id=n)
            for n in ("second", "third")
        ]
        async with runtime.database.transaction() as session:
            await handlers.plan_batch(session, [again, *others])
            plan: dict[str, Any] = session.info[PLAN]
    assert sorted(plan) == ["r-second", "r-third"]
