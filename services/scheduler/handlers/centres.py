"""The ARS's decisions about centres, at its door (the ``centres`` queue, its senders
checked by the consumer): each judged on the centre as stored here, applied, then put
on the bus for the services that follow the centres (the notifier).

An activation opens the centre's queue and serves the patients waiting near it; a
capacity change moves the appointments its new schedule no longer has, then serves
those waiting; a suspension or a closure moves every future appointment, or waitlists
its patient: none is dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog

from services.scheduler import store
from services.scheduler.domain.slots import has_place
from services.scheduler.handlers.forecasts import Forecasting
from services.scheduler.handlers.messages import announce_cancel, announce_move, payload_of
from services.scheduler.store import CentreFields
from shared.consumer import Delivery, PermanentError
from shared.db import as_utc
from shared.events import (
    CancelledBy,
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    Priority,
    utcnow,
)
from shared.geo import commune
from shared.labels import CENTRE_STATUSES
from shared.regions import CentreDecisionRefused, Region, judge_centre_decision
from shared.senders import ActorKind, SenderRefused

log = structlog.get_logger(__name__)

# The reasons the scheduler gives travel as they are to the patient, the centre and
# the referrer: French. What a machine acts on keeps its stable codes (the event
# type, ``cancelled_by``, the statuses).
WITHDRAWN_FR = CENTRE_STATUSES  # shared/labels.py, as every label a person reads
REDUCED_FR = "capacité du centre réduite"

CentreDecision = CentreActivated | CentreCapacityChanged | CentreSuspended | CentreClosed


async def _judge_centre(delivery: Delivery, payload: CentreDecision) -> None:
    """Judged on the centre as stored here, never on what the message says of it: an ARS
    decides on its region's centres only, and a centre id keeps the département of its
    first activation, whoever sends it (shared.regions). Refused: answered, recorded,
    never applied (the consumer)."""
    row = await store.centre_row(delivery.session, payload.centre_id)
    sender = delivery.sender
    region = None
    if sender is not None and sender.kind is ActorKind.ARS:
        region = Region(sender.actor)
    elif sender is not None and sender.kind is ActorKind.OPERATOR:
        # The one national path: every region's centres, each decision in the log.
        log.warning(
            "centre decision by an operator",
            sender_user=sender.user,
            centre_id=payload.centre_id,
            event_type=delivery.envelope.type,
        )
    try:
        judge_centre_decision(region, row.departement if row is not None else None, payload)
    except CentreDecisionRefused as refused:
        raise SenderRefused(refused.code, str(refused), refused.field) from None


async def _decided(delivery: Delivery, payload: CentreDecision) -> None:
    """The decision applied goes on the bus."""
    await delivery.emit(payload, correlation_id=delivery.envelope.correlation_id)


class CentreHandlers(Forecasting):
    # Declares a new centre's own queue (app.py; None in memory and in tests); set by
    # SchedulerHandlers' constructor.
    provision_centre: Callable[[str], Awaitable[None]] | None

    async def on_centre_activated(self, delivery: Delivery) -> None:
        event = payload_of(delivery, CentreActivated)
        await _judge_centre(delivery, event)
        now = utcnow()
        if self.provision_centre is not None:
            # Before the centre's first patient is booked (a drained waiting list,
            # in this very transaction): its queue must be there to receive them.
            await self.provision_centre(event.centre_id)
        await self._activate(delivery, event, now)
        await self._drain(delivery, event.centre_id, now)
        await _decided(delivery, event)
        await self._forecast_after_change(delivery, event.centre_id)

    async def on_capacity_changed(self, delivery: Delivery) -> None:
        event = payload_of(delivery, CentreCapacityChanged)
        await _judge_centre(delivery, event)
        now = utcnow()
        row = await store.centre_row(delivery.session, event.centre_id)
        if row is None:
            # Its activation may still be in flight: retried, then dead-lettered.
            raise LookupError(f"unknown centre {event.centre_id}")
        await store.add_capacity_change(
            delivery.session,
            event_id=delivery.envelope.id,
            centre_id=event.centre_id,
            from_date=event.from_date,
            boxes=event.boxes,
            opening_hours=[p.model_dump() for p in event.opening_hours]
            if event.opening_hours is not None
            else None,
            consultation_minutes=event.consultation_minutes,
            recorded_at=now,
        )
        await self._move_unfit(delivery, event.centre_id, now)
        await self._drain(delivery, event.centre_id, now)
        await _decided(delivery, event)
        await self._forecast_after_change(delivery, event.centre_id)

    async def on_centre_suspended(self, delivery: Delivery) -> None:
        event = payload_of(delivery, CentreSuspended)
        await _judge_centre(delivery, event)
        await self._withdraw(delivery, event.centre_id, "suspended", event.reason, utcnow())
        await _decided(delivery, event)
        await self._forecast_after_change(delivery, event.centre_id)

    async def on_centre_closed(self, delivery: Delivery) -> None:
        event = payload_of(delivery, CentreClosed)
        await _judge_centre(delivery, event)
        await self._withdraw(delivery, event.centre_id, "closed", event.reason, utcnow())
        await _decided(delivery, event)
        await self._forecast_after_change(delivery, event.centre_id)

    async def _activate(self, delivery: Delivery, event: CentreActivated, now: datetime) -> str:
        place = commune(event.commune_insee)
        if place is None:
            raise PermanentError("unknown_commune", f"no commune {event.commune_insee}")
        values: CentreFields = {
            "name": event.name,
            "kind": event.kind.value,
            "commune_insee": place.insee,
            "departement": place.departement,
            "lat": place.lat,
            "lon": place.lon,
            "address": event.address,
            "opening_hours": [p.model_dump() for p in event.opening_hours],
            "boxes": event.boxes,
            "consultation_minutes": event.consultation_minutes,
            "first_day": event.first_day,
            "status": "active",
            "updated_at": now,
        }
        if await store.centre_row(delivery.session, event.centre_id) is None:
            await store.add_centre(delivery.session, event.centre_id, values)
        else:
            await store.update_centre(delivery.session, event.centre_id, values)
        log.info("centre active", centre_id=event.centre_id, departement=place.departement)
        return place.departement

    async def _withdraw(
        self, delivery: Delivery, centre_id: str, status: str, reason: str, now: datetime
    ) -> None:
        """Suspend or close a centre: its future patients move, or wait; none is dropped."""
        session = delivery.session
        if await store.centre_row(session, centre_id) is None:
            return
        await store.set_centre_status(session, centre_id, status, now)
        future = await store.future_appointments(session, centre_id, now)
        why = f"centre {WITHDRAWN_FR.get(status, status)} : {reason}"
        await self._move_away(delivery, future, why, now)

    async def _move_unfit(self, delivery: Delivery, centre_id: str, now: datetime) -> None:
        """A capacity change: the centre's future appointments whose place (start, box)
        its new schedule no longer has (fewer boxes, shorter hours, another length) are
        moved, or waitlisted; left there, the patient would come to a closed box."""
        schedules = await store.active_schedules(delivery.session, ids=[centre_id])
        if not schedules:
            return  # suspended or closed: its appointments were moved then
        future = await store.future_appointments(delivery.session, centre_id, now)
        unfit = [a for a in future if not has_place(schedules[0], as_utc(a.start), a.box)]
        await self._move_away(delivery, unfit, REDUCED_FR, now)

    async def _move_away(
        self, delivery: Delivery, appointments: Sequence[Any], why: str, now: datetime
    ) -> None:
        """Each appointment moved to another slot (most urgent first), or cancelled and
        its patient waitlisted: none is dropped."""
        session = delivery.session
        for appt in sorted(appointments, key=lambda a: Priority(a.priority).rank):
            await self._cancel(session, appt.id)
            patient = await self._patient_of(session, appt, now)
            booked = await self._book(session, patient, now)
            if booked is not None:
                await announce_move(
                    delivery, appt, booked, patient.priority, why, CancelledBy.SERVICE
                )
            else:
                await announce_cancel(delivery, appt, CancelledBy.SERVICE, why)
                await self._waitlist(delivery, patient, now, why)
