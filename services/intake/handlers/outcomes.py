"""What became of a referral downstream (regulation, the scheduler, the centres): the
status its referrer reads. Every event type of the outcomes queue takes the same path
(``domain.status.entry_for_event`` says what each means)."""

from __future__ import annotations

from services.intake.domain import status as referral_status
from services.intake.handlers.history import record_status
from services.intake.store import referrals
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import SlotAssigned
from shared.metrics import SUBMISSION_TO_BOOKING


class Outcomes:
    async def on_outcome(self, delivery: Delivery) -> None:
        """What became of a referral downstream: the status its referrer reads."""
        envelope = delivery.envelope
        delivery.payload()  # an invalid event is dead-lettered, not silently skipped
        data = envelope.data
        referral_id = data.get("referral_id")
        if not isinstance(referral_id, str):
            return
        entry = referral_status.entry_for_event(envelope.type, data)
        if entry is None:
            return
        await record_status(delivery, referral_id, *entry)
        if envelope.type == SlotAssigned.event_type:
            # Submission to booking (the objective's figure): from the referral's receipt
            # here to the scheduler's booking, however long it waited on the way.
            submitted = await referrals.received_at(delivery.session, referral_id)
            if submitted is not None:
                waited = (envelope.time - as_utc(submitted)).total_seconds()
                delivery.measure(SUBMISSION_TO_BOOKING, max(0.0, waited))
