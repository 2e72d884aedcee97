"""Another slot, offered to the patient rather than imposed (their link's door,
``http/patient.py``): the slots they may choose, the one they confirm booked, and the
move announced as any other.

The offers are the scheduler's own ranking (``Booking.rank``, the one each booking
uses), so they keep its rules: the patient's deadline, the urgent reserve and the
few-option holds, the lead time and the travel from the patient's commune. The current
slot is never offered (nor its time at another box of the same centre). The slot
confirmed is checked against the same ranking again, at that centre and time: still
free, still one the patient may take; otherwise it was taken meanwhile, and the patient
keeps their appointment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.scheduler import store
from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.handlers.booking import Booked, Nearby, Patient
from services.scheduler.handlers.messages import announce_move
from services.scheduler.handlers.waiting import WaitingList
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import CancelledBy, Envelope, Priority, utcnow

MAX_OFFERS = 3
# A slot confirmed is looked for among every free place of its centre up to its start.
_EVERY = 1_000_000
MOVE_REASON = "à la demande du patient (lien de l'avis de rendez-vous)"


@dataclass(frozen=True)
class Offer:
    """A slot the patient may choose: the ranking's candidate and its centre's row."""

    slot: Candidate
    centre: Any


def _per_centre(schedules: list[CentreSchedule]) -> int:
    # The ranking takes a centre's first free places box by box: as many as the centre
    # has boxes at one time, times the offers, so that three times can come from it.
    boxes = max(
        (max([s.boxes, *(c.boxes for c in s.changes if c.boxes)]) for s in schedules),
        default=1,
    )
    return (MAX_OFFERS + 1) * boxes


class PatientRequests(WaitingList):
    async def patient(self, session: Any, appointment: Any) -> Patient:
        """The patient of their current appointment, as a booking sees them."""
        return await self._patient_of(session, appointment, utcnow())

    async def offers(
        self, session: Any, current: Any, patient: Patient, now: datetime
    ) -> list[Offer]:
        """Up to three slots, best first by the scheduler's ranking, none at the current
        appointment's centre and time; empty when nothing else is free in reach."""
        near = await self.nearby(session, patient, lock=False)
        if near is None:
            return []
        per_centre = _per_centre(near.schedules)
        ranked = await self.rank(
            session, patient, near, now, per_centre=per_centre, limit=per_centre * len(near.ids)
        )
        seen = {(current.centre_id, as_utc(current.start))}
        chosen: list[Offer] = []
        for slot in ranked:
            if (slot.centre_id, slot.start) in seen:
                continue  # the current slot, or a time already offered at another box
            seen.add((slot.centre_id, slot.start))
            chosen.append(Offer(slot, await store.centre_row(session, slot.centre_id)))
            if len(chosen) == MAX_OFFERS:
                break
        return chosen

    async def book_chosen(
        self,
        session: Any,
        current: Any,
        patient: Patient,
        choice: tuple[str, datetime],
        now: datetime,
    ) -> Booked | None:
        """The patient booked at the chosen (centre, start), if the ranking still offers
        that time there; None (their appointment kept) when it was taken meanwhile. The
        current appointment is set aside while the other is booked (one booked
        appointment per referral, the database's rule), its slot released once it is."""
        centre_id, start = choice
        near = await self.nearby(session, patient)
        if near is None or centre_id not in near.ids:
            return None
        at_centre = Nearby(
            near.lat,
            near.lon,
            [centre_id],
            [s for s in near.schedules if s.centre_id == centre_id],
            near.options,  # the patient's own reach: the holds they see depend on it
        )
        ranked = await self.rank(
            session, patient, at_centre, now, per_centre=_EVERY, limit=_EVERY, until=start
        )
        fits = sorted((c for c in ranked if c.start == start), key=lambda c: c.box)
        if not fits:
            return None
        await store.set_appointment_status(session, current.id, "cancelled")
        for slot in fits:
            booked = await self._try(session, patient, slot, now, near.options)
            if booked is not None:
                await store.release(session, current.id)
                return booked
        await store.set_appointment_status(session, current.id, current.status)
        return None

    async def announce_patient_move(
        self, session: Any, old: Any, booked: Booked, now: datetime
    ) -> Any:
        """The move's events (and its record), the freed slot offered to those waiting;
        the new appointment's row."""
        # The request itself is no event of the bus: an envelope only to say what caused
        # the events the move emits.
        request_envelope = Envelope(
            type="patient.slot_requested", source="scheduler", correlation_id=old.referral_id
        )
        delivery = Delivery(session=session, envelope=request_envelope, source="scheduler")
        await announce_move(
            delivery, old, booked, Priority(old.priority), MOVE_REASON, CancelledBy.PATIENT
        )
        await self._drain(delivery, old.centre_id, now)
        return await store.appointment(session, booked.appointment_id)
