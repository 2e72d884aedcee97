"""A patient now in another commune (``patient.relocated``, from intake: the referrer
corrected the referral, issue 36): their origin follows, and an appointment not yet
due moves to a nearer centre when a reachable slot at least as early is free there
(``domain/relocation.py``); told as any move (``appointment.rescheduled``, its reason)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from services.scheduler import store
from services.scheduler.domain import relocation
from services.scheduler.handlers.booking import Booked, Booking, Nearby, Patient, place_of
from services.scheduler.handlers.messages import announce_move
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import CancelledBy, PatientRelocated, Priority
from shared.geo import haversine_km

log = structlog.get_logger(__name__)

# The reason the patient, the centres and the referrer read (French, as every reason).
RELOCATED_FR = "nouvelle commune du patient : rendez-vous dans un centre plus proche"


class Relocations(Booking):
    # The service's clock (SchedulerHandlers sets it; tests too): what "due" is judged by.
    clock: Callable[[], datetime]

    async def on_relocated(self, delivery: Delivery) -> None:
        event = delivery.payload_as(PatientRelocated)
        session = delivery.session
        await store.relocate_origin(
            session, event.referral_id, event.departement, event.commune_insee
        )
        # Waiting: served from the new place, in its département's list.
        await store.relocate_waiting(
            session,
            event.referral_id,
            event.departement,
            event.commune_insee,
            place_of(event.commune_insee),
        )
        current = await store.booked_appointment(session, event.referral_id)
        now = self.clock()
        if current is None or relocation.due(as_utc(current.start), now):
            return
        booked = await self._nearer(session, event, current, now)
        if booked is None:
            log.info("relocated patient keeps their slot", referral_id=event.referral_id)
            return
        await announce_move(
            delivery, current, booked, Priority(current.priority), RELOCATED_FR, CancelledBy.SERVICE
        )

    async def _nearer(
        self, session: Any, event: PatientRelocated, current: Any, now: datetime
    ) -> Booked | None:
        """A nearer place no later than the current one, booked; None: they keep theirs.
        The current appointment is set aside while one is tried (one booked appointment
        per referral), and its slot released once the new one is booked."""
        start = as_utc(current.start)
        patient = Patient(
            referral_id=event.referral_id,
            patient_ref=current.patient_ref,
            priority=Priority(current.priority),
            deadline=start,  # never later than the slot they hold
            departement=event.departement,
            commune_insee=event.commune_insee,
            test_eligible=bool(current.test_eligible),
        )
        found = await self.nearby(session, patient)
        centre = await store.centre_row(session, current.centre_id)
        if found is None or centre is None:
            return None
        lat, lon = place_of(event.commune_insee)
        held_km = haversine_km(lat, lon, centre.lat, centre.lon)
        closer = relocation.closer_centres(found.schedules, lat, lon, held_km)
        if not closer:
            return None
        ids = [c.centre_id for c in closer]
        near = Nearby(found.lat, found.lon, ids, closer, found.options)
        ranked = await self.rank(session, patient, near, now, until=start)
        await store.set_appointment_status(session, current.id, "cancelled")
        for candidate in relocation.nearer(start, held_km, now, ranked):
            booked = await self._try(session, patient, candidate, now, near.options)
            if booked is not None:
                await store.release(session, current.id)
                return booked
        await store.set_appointment_status(session, current.id, current.status)
        return None
