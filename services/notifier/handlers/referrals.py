"""What the referrer (and the SAMUs covering the patient, for escalations) must be told
of a referral (the ``referrals`` queue): refused at the door, regulated, waitlisted,
withdrawn, escalated by its centre, and the consultation's outcome. No
referral.received: the referrer comes with patient.contact (``contacts.py``).
"""

from __future__ import annotations

from typing import Any

from services.notifier.domain import patient_notices
from services.notifier.handlers.telling import Teller, cancellation_detail
from services.notifier.store import cancellations, centres, notifications
from shared.consumer import Delivery
from shared.events import (
    Channel,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Decision,
    PatientEscalated,
    RecipientKind,
    ReferralCancelled,
    ReferralRegulated,
    ReferralRejected,
    ReferralWaitlisted,
)

REGULATED_STATUS = {
    "escalate": "escalated",
    "home_follow_up": "home_follow_up",
    "refuse": "refused",
    "hold": "held_for_regulator",
}


class ReferralHandlers(Teller):
    async def on_rejected(self, delivery: Delivery) -> None:
        """Broker referrers were answered by intake (submission.error); a webhook is
        the only channel a refused referral still needs."""
        payload = delivery.payload_as(ReferralRejected)
        if not (payload.referrer and payload.referrer.webhook_url):
            return
        reasons = "; ".join(r.message for r in payload.reasons)
        await self._pending(
            delivery,
            referral_id=payload.referral_id,
            recipient_kind=RecipientKind.REFERRER,
            recipient=payload.referrer.identifier,
            channel=Channel.WEBHOOK,
            template="referrer.rejected",
            body=f"Demande refusée : {reasons}",
            target={
                "url": payload.referrer.webhook_url,
                "payload": {
                    "status": "rejected",
                    "reference": payload.reference,
                    "referral_id": payload.referral_id,
                    "reasons": [r.model_dump(mode="json") for r in payload.reasons],
                },
            },
        )

    async def on_regulated(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(ReferralRegulated)
        status = REGULATED_STATUS.get(payload.decision.value)
        if status is None:  # an orientation is told with its appointment
            return
        detail: dict[str, Any] = {
            "reasons": "; ".join(r.message for r in payload.reasons),
            # Codes with their messages: what a machine acts on, and what the
            # French text names the severity signs from.
            "reason_details": [r.model_dump(mode="json") for r in payload.reasons],
            "protocol_version": payload.protocol_version,
        }
        if payload.decision is Decision.ESCALATE:
            detail |= {"patient_ref": payload.patient_ref, "decided_by": payload.decided_by}
            # Centre 15 first, as for a centre's hand-back: an escalated patient
            # is SAMU's, and must not depend on the referrer reading its answer.
            await self._to_samus(delivery, payload.referral_id, payload.departement, status, detail)
        await self._to_referrer(delivery, payload.referral_id, status, detail)
        await self._decision_to_patient(delivery, payload)

    async def on_waitlisted(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(ReferralWaitlisted)
        await self._to_referrer(
            delivery,
            payload.referral_id,
            "waitlisted",
            {"reason": payload.reason, "priority": payload.priority.value},
        )
        await self._waiting_to_patient(delivery, payload.referral_id)

    async def on_withdrawn(self, delivery: Delivery) -> None:
        """A withdrawal, told here when no appointment is cancelled with it (received,
        waitlisted, held...); a booked one's cancellation tells it, with the appointment
        (``assignments.py``)."""
        payload = delivery.payload_as(ReferralCancelled)
        session, referral_id = delivery.session, payload.referral_id
        cause = delivery.envelope.id
        if await cancellations.withdrawn(session, referral_id):
            return  # withdrawn already: a second withdrawal changes nothing
        found = await cancellations.cancellation(session, referral_id, cause)
        if found is not None:  # its appointment's cancellation came first, and told it
            state = cancellations.Cancellation(withdrawal=True, told=found.told)
            await cancellations.record_cancellation(session, referral_id, cause, state, new=False)
            return
        statuses = await centres.appointment_statuses(session, referral_id)
        # Booked: its cancellation will tell. Seen or absent: final, nothing changes.
        tell = not statuses & {"booked", "fulfilled", "noshow"}
        state = cancellations.Cancellation(withdrawal=True, told=tell)
        await cancellations.record_cancellation(session, referral_id, cause, state, new=True)
        if not tell:
            return
        detail = {**cancellation_detail(payload), "appointment_cancelled": False}
        await self._to_referrer(delivery, referral_id, "cancelled", detail)
        if await notifications.told_patient(session, referral_id):  # only one who had heard
            kind = await self._referrer_kind(session, referral_id)
            notice = patient_notices.withdrawn(payload.cancelled_by.value, payload.reason, kind)
            await self._to_patient(delivery, referral_id, notice)

    async def on_escalated(self, delivery: Delivery) -> None:
        """A centre hands its patient back to Centre 15."""
        payload = delivery.payload_as(PatientEscalated)
        detail = {"reason": payload.reason, "centre_id": payload.centre_id}
        if payload.appointment_id:
            await self._appointment_status(delivery.session, payload.appointment_id, "escalated")
        # Centre 15 first: an escalation cannot wait for anything else.
        await self._to_samus(
            delivery, payload.referral_id, payload.departement, "escalated_by_centre", detail
        )
        await self._to_referrer(delivery, payload.referral_id, "escalated_by_centre", detail)

    async def on_no_show(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(ConsultationNoShow)
        # Recorded by the scheduler when it sent it: the centre may correct it for
        # 24 hours from then (its day list says until when).
        await centres.set_appointment_outcome(
            delivery.session, payload.appointment_id, "noshow", delivery.envelope.time
        )
        await self._to_referrer(
            delivery, payload.referral_id, "no_show", {"centre_id": payload.centre_id}
        )

    async def on_completed(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(ConsultationCompleted)
        await centres.set_appointment_outcome(
            delivery.session, payload.appointment_id, "fulfilled", delivery.envelope.time
        )
        # The referrer hears the end too (Hub Santé's LRM reads it as "fulfilled").
        await self._to_referrer(
            delivery,
            payload.referral_id,
            "seen",
            {"centre_id": payload.centre_id, "appointment_id": payload.appointment_id},
        )

    async def on_consultation_cancelled(self, delivery: Delivery) -> None:
        """The centre could not hold the consultation: its day list says so, and when.
        Nobody is told here: the scheduler's move (or the cancellation and the waiting
        list) that follows tells the patient and the referrer what comes next."""
        payload = delivery.payload_as(ConsultationCancelled)
        await centres.set_appointment_outcome(
            delivery.session, payload.appointment_id, "cancelled", delivery.envelope.time
        )

    async def on_corrected(self, delivery: Delivery) -> None:
        """A centre corrected the outcome it recorded: the day list shows the new one,
        and the referrer hears it under the outcome that now stands ("seen" or
        "no_show"), marked as a correction, with what it replaces."""
        payload = delivery.payload_as(ConsultationCorrected)
        status = "fulfilled" if payload.outcome is ConsultationOutcome.SEEN else "noshow"
        await self._appointment_status(delivery.session, payload.appointment_id, status)
        detail: dict[str, Any] = {
            "centre_id": payload.centre_id,
            "appointment_id": payload.appointment_id,
            "corrected": True,
            "previous_outcome": (
                payload.previous_outcome.value if payload.previous_outcome else None
            ),
        }
        if payload.reason:
            detail["reason"] = payload.reason
        await self._to_referrer(delivery, payload.referral_id, payload.outcome.value, detail)

    async def _decision_to_patient(self, delivery: Delivery, payload: ReferralRegulated) -> None:
        """An escalation, a home follow-up or a refusal: the patient learns what comes
        next (a hold waits for the regulator's decision, which is told)."""
        kind = await self._referrer_kind(delivery.session, payload.referral_id)
        lead = payload.reasons[0].code if payload.reasons else None
        notice = patient_notices.decided(payload.decision.value, lead, kind)
        if notice is not None:
            await self._to_patient(delivery, payload.referral_id, notice)

    async def _waiting_to_patient(self, delivery: Delivery, referral_id: str) -> None:
        """Waitlisted: told once, and only if never booked. A patient whose centre was
        withdrawn learnt it, and that they wait, from their appointment's cancellation;
        one waitlisted again (a new decision) was told already."""
        if await notifications.told_of_a_place(delivery.session, referral_id):
            return
        kind = await self._referrer_kind(delivery.session, referral_id)
        await self._to_patient(delivery, referral_id, patient_notices.waitlisted(kind))
