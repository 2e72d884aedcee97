"""What became of a referral downstream (regulation, the scheduler, the centres): the
status its referrer reads. Every event type of the outcomes queue takes the same path
(``domain.status.entry_for_event`` says what each means)."""

from __future__ import annotations

from services.intake.domain import status as referral_status
from services.intake.handlers.history import record_status
from shared.consumer import Delivery


class Outcomes:
    async def on_outcome(self, delivery: Delivery) -> None:
        """What became of a referral downstream: the status its referrer reads."""
        envelope = delivery.envelope
        envelope.payload()  # an invalid event is dead-lettered, not silently skipped
        data = envelope.data
        referral_id = data.get("referral_id")
        if not isinstance(referral_id, str):
            return
        entry = referral_status.entry_for_event(envelope.type, data)
        if entry is None:
            return
        await record_status(delivery, referral_id, *entry)
