"""Referrals regulated and withdrawn (the ``referrals`` queue): an oriented patient is
booked (the batch's joint plan first, ``handlers/booking.py``), or waits; a decision
that no longer orients, or a withdrawal, gives their slot back and serves those
waiting; a confirmed orientation keeps the slot, or moves it earlier for a new deadline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from services.scheduler import store
from services.scheduler.handlers.booking import PLAN, Patient, place_of
from services.scheduler.handlers.messages import (
    announce_assigned,
    announce_cancel,
    announce_move,
)
from services.scheduler.handlers.waiting import WaitingList
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import (
    CancelledBy,
    Decision,
    Priority,
    ReferralCancelled,
    ReferralRegulated,
    utcnow,
)
from shared.labels import PRIORITIES

log = structlog.get_logger(__name__)

# The reasons the scheduler gives travel as they are to the patient, the centre and
# the referrer: French (shared/labels.py for the labels a person reads).
DECISION_FR = {
    Decision.ESCALATE: "adressé au SAMU / aux urgences",
    Decision.HOME_FOLLOW_UP: "suivi à domicile par le médecin traitant",
    Decision.REFUSE: "demande refusée",
    Decision.HOLD: "en attente d'un médecin régulateur",
    Decision.ORIENT: "orienté vers un centre",
}
PRIORITY_FR = PRIORITIES
NO_SLOT_FR = "aucun créneau libre avant l'échéance"


class ReferralHandlers(WaitingList):
    async def on_regulated(self, delivery: Delivery) -> None:
        event = delivery.payload_as(ReferralRegulated)
        session = delivery.session
        now = utcnow()
        # The entry of a waiting patient is held before their booking is read: a drain
        # serving them at this moment holds it too, and this waits for it, then reads
        # the appointment it booked.
        waiting = await store.hold_waiting(session, event.referral_id)
        current = await store.booked_appointment(session, event.referral_id)
        # What the centre receiving the patient will read of the decision.
        await store.remember_regulation(
            session,
            event.referral_id,
            reasons=[r.model_dump(mode="json") for r in event.reasons],
            protocol_version=event.protocol_version,
            decided_by=event.decided_by,
            regulated_at=delivery.envelope.time,
        )
        if event.decision is not Decision.ORIENT:
            await self._not_oriented(delivery, event, current, now)
            return
        if current is not None:
            await self._keep_or_move(delivery, event, current, now)
            return
        await store.remember_origin(
            session, event.referral_id, event.departement, event.commune_insee
        )
        patient = Patient(
            referral_id=event.referral_id,
            patient_ref=event.patient_ref,
            priority=event.priority or Priority.ROUTINE,
            deadline=event.deadline or now + timedelta(hours=24),
            departement=event.departement,
            commune_insee=event.commune_insee,
            test_eligible=event.test_eligible,
        )
        if not waiting:  # an arrival, for the saturation forecast (not a new decision)
            lat, lon = place_of(event.commune_insee)
            await store.record_arrival(
                session, event.departement, patient.priority.value, lat, lon, now
            )
        planned = session.info.get(PLAN, {}).get(event.referral_id)
        booked = await self._book(session, patient, now, planned)
        if booked is None:
            await self._waitlist(delivery, patient, now, NO_SLOT_FR)
        else:
            if waiting:
                # Booked on a new decision while waiting: off the list, or the next
                # drain would book them a second time.
                await self._leave_waitlist(delivery, event.referral_id, now)
            await announce_assigned(delivery, patient, booked)
            await self._check_saturation(delivery, patient.departement, now)

    async def _not_oriented(
        self, delivery: Delivery, event: ReferralRegulated, current: Any, now: datetime
    ) -> None:
        """Not (or no longer) for a centre: leave the waiting list, give the slot back."""
        await self._leave_waitlist(delivery, event.referral_id, now)
        if current is None:
            return
        await self._cancel(delivery.session, current.id)
        await announce_cancel(
            delivery,
            current,
            CancelledBy.REGULATOR,
            f"décision de régulation : {DECISION_FR[event.decision]}",
        )
        await self._drain(delivery, current.centre_id, now)

    async def _keep_or_move(
        self, delivery: Delivery, event: ReferralRegulated, current: Any, now: datetime
    ) -> None:
        """Still oriented, already booked: a regulator confirmed, or changed the priority.
        A slot that now starts after the new deadline is moved earlier if one is free;
        otherwise the patient keeps it (a later slot beats none)."""
        priority = event.priority or Priority(current.priority)
        if event.deadline is None or as_utc(current.start) <= event.deadline:
            await store.set_appointment_priority(
                delivery.session, current.id, priority.value, event.test_eligible
            )
            return
        session = delivery.session
        patient = Patient(
            referral_id=event.referral_id,
            patient_ref=event.patient_ref,
            priority=priority,
            deadline=event.deadline,
            departement=event.departement,
            commune_insee=event.commune_insee,
            test_eligible=event.test_eligible,
        )
        booked = await self._book_instead(session, current, patient, now)
        if booked is None:
            log.warning(
                "no earlier slot for a raised priority; the patient keeps theirs",
                referral_id=event.referral_id,
            )
            return
        await announce_move(
            delivery,
            current,
            booked,
            priority,
            f"priorité « {PRIORITY_FR[priority]} » décidée par "
            f"{'le protocole' if event.decided_by == 'protocol' else event.decided_by}",
            CancelledBy.REGULATOR,
        )

    async def on_cancelled(self, delivery: Delivery) -> None:
        """A referral withdrawn (checked by intake's door): its slot is freed, its centre
        and its patient told; off the waiting list."""
        cancel = delivery.payload_as(ReferralCancelled)
        session = delivery.session
        await self._leave_waitlist(delivery, cancel.referral_id, utcnow())
        current = await store.booked_appointment(session, cancel.referral_id)
        if current is None:
            return
        await self._cancel(session, current.id)
        await announce_cancel(
            delivery, current, cancel.cancelled_by, cancel.reason, reason_code=cancel.reason_code
        )
        await self._drain(delivery, current.centre_id, utcnow())
