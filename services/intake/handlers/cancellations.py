"""A referral withdrawn: by its referrer (the broker door's ``referral.cancelled``, or
intake's HTTP door with a reason from the list), by Centre 15, or by the patient with
the link of their notice. One use case (``on_cancelled``): recorded in the status, then
on the bus, whence the scheduler frees the slot and the notifier tells the centre, the
patient and the referrer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from services.intake.domain import senders, withdrawal
from services.intake.domain.status import Happening, State
from services.intake.domain.withdrawal import Standing
from services.intake.handlers.history import record_status, replayed
from services.intake.store import referrals, rejections
from shared.consumer import Delivery
from shared.events import Envelope, ReferralCancelled, WithdrawalReason
from shared.senders import SenderRefused

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Withdrawal:
    """What a referrer's withdrawal comes to: withdrawn now (``OPEN`` before it), or
    before (``WITHDRAWN``: nothing emitted twice), or refused (``FINAL``); with the
    referral's status after it, or as it stands when refused."""

    standing: Standing
    referral_id: str
    status: str
    detail: dict[str, Any]


class PatientCancellation(StrEnum):
    CANCELLED = "cancelled"
    UNKNOWN = "unknown_referral"
    NOT_CURRENT = "appointment_not_current"  # moved, cancelled, seen...


class Cancellations:
    async def on_cancelled(self, delivery: Delivery) -> None:
        """A referrer withdraws a referral of its own: recorded here, then on the bus for
        the scheduler (the slot is freed) and the notifier."""
        cancel = delivery.payload_as(ReferralCancelled)
        owner = await referrals.owner(delivery.session, cancel.referral_id)
        sender = delivery.sender
        if owner is None:
            if sender is None or sender.trusted:
                raise LookupError(f"cancellation of unknown referral {cancel.referral_id}")
            raise SenderRefused("unknown_referral", "no such referral", "referral_id")
        if sender is not None and not sender.trusted:
            senders.check_cancellation(sender, owner, cancel.cancelled_by)
        detail: dict[str, Any] = {"by": cancel.cancelled_by.value, "reason": cancel.reason}
        if cancel.reason_code is not None:  # chosen from the list (intake's HTTP door)
            detail["reason_code"] = cancel.reason_code.value
        await record_status(delivery, cancel.referral_id, Happening.WITHDRAWN, detail)
        await delivery.emit(cancel, correlation_id=cancel.referral_id)
        log.info("referral cancelled", referral_id=cancel.referral_id, by=cancel.cancelled_by)

    async def withdraw(
        self, session: Any, referral_id: str, owner: tuple[str, str], reason: WithdrawalReason
    ) -> Withdrawal | None:
        """A referrer's withdrawal over HTTP, in one transaction, the referral's row
        locked: recorded and staged when there is one to make. None: no referral or
        refused submission of ``owner``'s (another's is as invisible as a missing one)."""
        if not await referrals.lock(session, referral_id):
            refused = await rejections.rejection(session, referral_id)
            if refused is None or (refused.referrer_kind, refused.referrer_id) != owner:
                return None
            return Withdrawal(Standing.FINAL, referral_id, State.REJECTED.value, {})
        row = await referrals.referral(session, referral_id)
        if row is None or (row.referrer_kind, row.referrer_id) != owner:
            return None
        standing = withdrawal.standing(await replayed(session, referral_id))
        if standing is Standing.OPEN:
            cancel = withdrawal.by_referrer(referral_id, reason)
            # The broker door's use case: sender None, the owner was checked above.
            await self._cancel(session, cancel)
            log.info("referral withdrawn over http", referral_id=referral_id, reason=reason.value)
            row = await referrals.referral(session, referral_id)
            assert row is not None  # locked above
        return Withdrawal(standing, row.id, row.status, dict(row.detail or {}))

    async def cancel_as_patient(
        self, session: Any, referral_id: str, appointment_id: str
    ) -> PatientCancellation:
        """The patient cancels with their link (checked by the door): only the
        appointment it names, while it is the referral's current one."""
        row = await referrals.status_locked(session, referral_id)
        if row is None:
            return PatientCancellation.UNKNOWN
        if not withdrawal.appointment_is_current(row.status, row.detail or {}, appointment_id):
            return PatientCancellation.NOT_CURRENT
        await self._cancel(session, withdrawal.by_patient(referral_id))
        return PatientCancellation.CANCELLED

    async def _cancel(self, session: Any, cancel: ReferralCancelled) -> None:
        envelope = Envelope.wrap(cancel, source="intake", correlation_id=cancel.referral_id)
        await self.on_cancelled(Delivery(session=session, envelope=envelope, source="intake"))
