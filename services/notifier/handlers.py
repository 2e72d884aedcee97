"""The notifier's consumers: tell each centre of its patients, each referrer of the
outcome of its referral, each patient of the appointment, Centre 15 of escalations.

Sends to the outside world (e-mail, SMS, webhooks) are not made here: the handler
records them as pending in its transaction, and the dispatcher sends them with retries.
What travels on the broker (centre, referrer reply key, Centre 15) is staged in the
outbox in the same transaction, so it is as reliable as every other event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from services.notifier import patient_notices, store, templates
from services.notifier.channels import PatientChannel
from services.notifier.store import Referrer
from shared.consumer import Delivery
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CentreActivated,
    Channel,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Decision,
    NotificationSent,
    PatientContact,
    PatientEscalated,
    RecipientKind,
    ReferralCancelled,
    ReferralOutcome,
    ReferralRegulated,
    ReferralRejected,
    ReferralWaitlisted,
    ReferrerKind,
    ReferrerRef,
    SlotAssigned,
    new_id,
    utcnow,
)
from shared.territory import Territories

log = structlog.get_logger(__name__)

# The national Centre 15's reply key (reply.centre-15.referral.outcome); a SAMU's is its
# name (reply.samu-35.referral.outcome).
CENTRE_15 = "centre-15"

REGULATED_STATUS = {
    "escalate": "escalated",
    "home_follow_up": "home_follow_up",
    "refuse": "refused",
    "hold": "held_for_regulator",
}


def _centre_15_keys(referrer: Referrer | None) -> set[str]:
    """The Centre 15 keys of a referrer that is a Centre 15 and hears its outcomes (its
    reply key, or its SAMU's name behind a webhook): told as the referrer, it is not
    told again as the SAMU covering the patient. None: not known yet."""
    if referrer is None or referrer.kind != ReferrerKind.CENTRE_15.value:
        return set()
    if not (referrer.reply_to or referrer.webhook_url):
        return set()
    return {k for k in (referrer.reply_to, referrer.identifier) if k}


def _cancellation_detail(payload: AppointmentCancelled | ReferralCancelled) -> dict[str, Any]:
    """Who cancelled and why: the referrer's webhook says it (by, reason, code)."""
    detail: dict[str, Any] = {"reason": payload.reason, "by": payload.cancelled_by.value}
    if payload.reason_code is not None:
        detail["reason_code"] = payload.reason_code.value
    return detail


@dataclass(frozen=True)
class _Told:
    """What an appointment's event tells: the centre (``centre.<template>``), the
    patient, and the referrer (an outcome of ``status``, with its ``detail``)."""

    template: str
    centre: str
    patient: patient_notices.PatientNotice
    status: str
    detail: dict[str, Any]


class NotifierHandlers:
    def __init__(
        self,
        patient_channels: Sequence[PatientChannel],
        provision_centre: Callable[[str], Awaitable[None]] | None = None,
        patient_link: Callable[[str, str, datetime], str] | None = None,
        territories: Territories | None = None,
    ) -> None:
        self.patient_channels = list(patient_channels)
        # Which SAMUs cover a département, and whether the national Centre 15 is enabled:
        # whom an escalation is told to (shared/territory.py).
        self.territories = territories or Territories()
        self.provision_centre = provision_centre
        # (appointment id, referral id, its end) -> the patient's signed link, put in
        # the notice (services/notifier/patient_links.py); None: notices without one.
        self.patient_link = patient_link

    # -- appointments --------------------------------------------------------------

    async def on_assignment(self, delivery: Delivery) -> None:
        payload = delivery.envelope.payload()
        session = delivery.session
        if isinstance(payload, SlotAssigned | AppointmentRescheduled):
            told = await self._booked(session, payload)
        elif isinstance(payload, AppointmentCancelled) and payload.replaced_by:
            # Moved elsewhere: the patient and the referrer hear of the new appointment;
            # the centre that loses the patient hears of it here.
            await self._appointment_status(session, payload.appointment_id, "cancelled")
            await self._sent_on_broker(
                delivery,
                referral_id=payload.referral_id,
                recipient_kind=RecipientKind.CENTRE,
                recipient=payload.centre_id,
                template="centre.moved_away",
                body=templates.centre_cancelled(
                    payload.patient_ref,
                    payload.start,
                    f"patient déplacé vers un autre centre ({payload.reason})",
                ),
            )
            return
        elif isinstance(payload, AppointmentCancelled):
            told = await self._cancelled(session, payload)
        else:
            return
        await self._sent_on_broker(
            delivery,
            referral_id=payload.referral_id,
            recipient_kind=RecipientKind.CENTRE,
            recipient=payload.centre_id,
            template=f"centre.{told.template}",
            body=told.centre,
        )
        if isinstance(payload, AppointmentCancelled) and not await self._first_told(delivery):
            return  # its withdrawal told the referrer and the patient already
        await self._to_patient(delivery, payload.referral_id, told.patient)
        await self._to_referrer(delivery, payload.referral_id, told.status, told.detail)

    async def _booked(self, session: Any, payload: SlotAssigned | AppointmentRescheduled) -> _Told:
        """A new appointment (booked, or moved here): on the centre's list, and told."""
        if isinstance(payload, AppointmentRescheduled) and payload.previous_appointment_id:
            await self._appointment_status(session, payload.previous_appointment_id, "cancelled")
        await store.add_appointment(
            session,
            appointment_id=payload.appointment_id,
            centre_id=payload.centre_id,
            referral_id=payload.referral_id,
            patient_ref=payload.patient_ref,
            start=payload.start,
            end=payload.end,
            box=payload.box,
            priority=payload.priority.value,
            test_eligible=payload.test_eligible,
        )
        visit = patient_notices.Visit(
            payload.start, payload.centre_name, payload.centre_address, payload.centre_commune_insee
        )
        detail: dict[str, Any] = {
            "appointment_id": payload.appointment_id,
            "centre_id": payload.centre_id,
            "centre_name": payload.centre_name,
            "where": templates.place(
                payload.centre_name, payload.centre_address, payload.centre_commune_insee
            ),
            "start": payload.start.isoformat(),
            "end": payload.end.isoformat(),
            "test_eligible": payload.test_eligible,
        }
        if isinstance(payload, SlotAssigned):
            kind = await self._referrer_kind(session, payload.referral_id)
            return _Told(
                "new_patient",
                templates.centre_new_patient(
                    payload.patient_ref,
                    payload.start,
                    payload.priority.value,
                    payload.box,
                    payload.test_eligible,
                ),
                patient_notices.appointment(visit, kind, self._link(payload)),
                "appointment",
                detail,
            )
        moved_by = payload.moved_by.value if payload.moved_by is not None else None
        return _Told(
            "rescheduled",
            templates.centre_rescheduled(
                payload.patient_ref,
                payload.start,
                payload.previous_centre_id,
                payload.test_eligible,
            ),
            patient_notices.moved(
                visit, payload.previous_start, moved_by, payload.reason, self._link(payload)
            ),
            "rescheduled",
            {**detail, "reason": payload.reason, "by": moved_by},
        )

    async def _cancelled(self, session: Any, payload: AppointmentCancelled) -> _Told:
        """An appointment cancelled and not replaced: off the list, and told by who."""
        await self._appointment_status(session, payload.appointment_id, "cancelled")
        detail = _cancellation_detail(payload)
        kind = await self._referrer_kind(session, payload.referral_id)
        return _Told(
            "cancelled",
            templates.centre_cancelled(payload.patient_ref, payload.start, payload.reason),
            patient_notices.cancelled(
                payload.start, payload.cancelled_by.value, payload.reason, kind
            ),
            "cancelled",
            detail,
        )

    def _link(self, payload: SlotAssigned | AppointmentRescheduled) -> str | None:
        if self.patient_link is None:
            return None
        return self.patient_link(payload.appointment_id, payload.referral_id, payload.end)

    async def _referrer_kind(self, session: Any, referral_id: str) -> str | None:
        """Who referred the patient (``ReferrerKind``), for the notice to name them;
        None while its patient.contact is still on its way."""
        return await store.referrer_kind(session, referral_id)

    async def _appointment_status(self, session: Any, appointment_id: str, status: str) -> None:
        await store.set_appointment_status(session, appointment_id, status)

    # -- withdrawals ---------------------------------------------------------------
    # A withdrawal (referral.cancelled) and the appointment the scheduler cancels with it
    # (appointment.cancelled, caused by it) come on two queues, in either order: the
    # referrer and the patient hear of it once, recorded by its cause (``cancellations``).

    async def _withdrawn(self, delivery: Delivery, payload: ReferralCancelled) -> None:
        """Told here when no appointment is cancelled with it (received, waitlisted,
        held...); a booked one's cancellation tells it, with the appointment."""
        session, referral_id = delivery.session, payload.referral_id
        cause = delivery.envelope.id
        if await store.withdrawn(session, referral_id):
            return  # withdrawn already: a second withdrawal changes nothing
        found = await store.cancellation(session, referral_id, cause)
        if found is not None:  # its appointment's cancellation came first, and told it
            state = store.Cancellation(withdrawal=True, told=found.told)
            await store.record_cancellation(session, referral_id, cause, state, new=False)
            return
        statuses = await store.appointment_statuses(session, referral_id)
        # Booked: its cancellation will tell. Seen or absent: final, nothing changes.
        tell = not statuses & {"booked", "fulfilled", "noshow"}
        state = store.Cancellation(withdrawal=True, told=tell)
        await store.record_cancellation(session, referral_id, cause, state, new=True)
        if not tell:
            return
        detail = {**_cancellation_detail(payload), "appointment_cancelled": False}
        await self._to_referrer(delivery, referral_id, "cancelled", detail)
        if await store.told_patient(session, referral_id):  # only one who had heard of it
            kind = await self._referrer_kind(session, referral_id)
            notice = patient_notices.withdrawn(payload.cancelled_by.value, payload.reason, kind)
            await self._to_patient(delivery, referral_id, notice)

    async def _first_told(self, delivery: Delivery) -> bool:
        """An appointment cancelled (not moved): does it tell the referrer and the
        patient? Not when its cause, a withdrawal, told them already."""
        payload = delivery.payload_as(AppointmentCancelled)
        cause = delivery.envelope.causation_id
        if cause is None:
            return True
        session, referral_id = delivery.session, payload.referral_id
        found = await store.cancellation(session, referral_id, cause)
        if found is not None and found.told:
            return False
        state = store.Cancellation(withdrawal=found is not None and found.withdrawal, told=True)
        await store.record_cancellation(session, referral_id, cause, state, new=found is None)
        return True

    # -- referrals -----------------------------------------------------------------

    async def on_referral(self, delivery: Delivery) -> None:
        payload = delivery.envelope.payload()
        session = delivery.session
        # No referral.received here: the referrer comes with patient.contact (on_contact).
        if isinstance(payload, ReferralRejected):
            # Broker referrers were answered by intake (submission.error); a webhook is
            # the only channel a refused referral still needs.
            if payload.referrer and payload.referrer.webhook_url:
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
        elif isinstance(payload, ReferralRegulated):
            status = REGULATED_STATUS.get(payload.decision.value)
            if status is not None:  # an orientation is told with its appointment
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
                    await self._to_samus(
                        delivery, payload.referral_id, payload.departement, status, detail
                    )
                await self._to_referrer(delivery, payload.referral_id, status, detail)
                await self._decision_to_patient(delivery, payload)
        elif isinstance(payload, ReferralCancelled):
            await self._withdrawn(delivery, payload)
        elif isinstance(payload, ReferralWaitlisted):
            await self._to_referrer(
                delivery,
                payload.referral_id,
                "waitlisted",
                {"reason": payload.reason, "priority": payload.priority.value},
            )
            await self._waiting_to_patient(delivery, payload.referral_id)
        elif isinstance(payload, PatientEscalated):
            detail = {"reason": payload.reason, "centre_id": payload.centre_id}
            if payload.appointment_id:
                await self._appointment_status(session, payload.appointment_id, "escalated")
            # Centre 15 first: an escalation cannot wait for anything else.
            await self._to_samus(
                delivery, payload.referral_id, payload.departement, "escalated_by_centre", detail
            )
            await self._to_referrer(delivery, payload.referral_id, "escalated_by_centre", detail)
        elif isinstance(payload, ConsultationNoShow):
            # Recorded by the scheduler when it sent it: the centre may correct it for
            # 24 hours from then (its day list says until when).
            await store.set_appointment_outcome(
                session, payload.appointment_id, "noshow", delivery.envelope.time
            )
            await self._to_referrer(
                delivery, payload.referral_id, "no_show", {"centre_id": payload.centre_id}
            )
        elif isinstance(payload, ConsultationCorrected):
            await self._corrected(delivery, payload)
        elif isinstance(payload, ConsultationCompleted):
            await store.set_appointment_outcome(
                session, payload.appointment_id, "fulfilled", delivery.envelope.time
            )
            # The referrer hears the end too (Hub Santé's LRM reads it as "fulfilled").
            await self._to_referrer(
                delivery,
                payload.referral_id,
                "seen",
                {"centre_id": payload.centre_id, "appointment_id": payload.appointment_id},
            )

    async def _corrected(self, delivery: Delivery, payload: ConsultationCorrected) -> None:
        """A centre corrected the outcome it recorded: the day list shows the new one,
        and the referrer hears it under the outcome that now stands ("seen" or
        "no_show"), marked as a correction, with what it replaces."""
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
        if await store.told_of_a_place(delivery.session, referral_id):
            return
        kind = await self._referrer_kind(delivery.session, referral_id)
        await self._to_patient(delivery, referral_id, patient_notices.waitlisted(kind))

    async def on_contact(self, delivery: Delivery) -> None:
        contact = delivery.payload_as(PatientContact)
        await store.keep_contact(delivery.session, contact)
        if contact.referrer is not None:
            await self._learn_referrer(delivery, contact.referral_id, contact.referrer)

    async def _learn_referrer(
        self, delivery: Delivery, referral_id: str, referrer: ReferrerRef
    ) -> None:
        """Record who referred the patient, once, and tell it what was kept for it:
        intake sends the referrer with the contact (patient.contact, for every accepted
        referral), so the notifier needs no referral.received of its own."""
        session = delivery.session
        if await store.referrer_known(session, referral_id):
            return  # a redelivered or repeated contact: recorded and flushed already
        await store.add_referrer(session, referral_id, referrer)
        await self._flush_deferred(delivery, referral_id)

    async def on_centre(self, delivery: Delivery) -> None:
        centre = delivery.payload_as(CentreActivated)
        await store.save_centre(
            delivery.session,
            centre.centre_id,
            name=centre.name,
            address=centre.address,
            commune_insee=centre.commune_insee,
        )
        if self.provision_centre is not None:
            await self.provision_centre(centre.centre_id)

    # -- recipients ----------------------------------------------------------------

    async def _with_contact(
        self, session: Any, referral_id: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        """What Centre 15 needs to call an escalated patient back, on the one key only
        Centre 15 reads (the notifier is the one service that holds a contact). If the
        contact has not arrived yet, Centre 15 reads it from intake (GET /escalations)."""
        patient = await store.call_back(session, referral_id)
        if patient is None:
            return detail
        return {**detail, "patient": patient}

    async def _to_samus(
        self,
        delivery: Delivery,
        referral_id: str,
        departement: str | None,
        status: str,
        detail: dict[str, Any],
    ) -> None:
        """An escalation, with whom to call back, to every SAMU covering the patient's
        département, each on its own key (``reply.samu-35.referral.outcome``), and to the
        national Centre 15 only where it is enabled. Not to a Centre 15 that referred the
        patient: it hears it as the referrer. An unknown referrer (its patient.contact
        still on its way) is not assumed to be one: the SAMUs are told now, and
        ``_flush_deferred`` does not tell the referrer again on a key told already."""
        keys = self._samu_keys(departement)
        referrer = await store.referrer(delivery.session, referral_id)
        keys = [key for key in keys if key not in _centre_15_keys(referrer)]
        if not keys:
            return
        told = await self._with_contact(delivery.session, referral_id, detail)
        for key in keys:
            await self._outcome_on_broker(
                delivery,
                key,
                referral_id,
                status,
                told,
                recipient_kind=RecipientKind.CENTRE_15,
                recipient=key,
            )

    def _samu_keys(self, departement: str | None) -> list[str]:
        """The Centre 15 keys an escalation in ``departement`` goes to."""
        keys = list(self.territories.samus_covering(departement)) if departement else []
        if self.territories.national:
            keys.append(CENTRE_15)
        if not keys:
            # Centre 15 still reads it from intake (GET /escalations), by département.
            log.warning("escalation told to no centre 15", departement=departement)
        return keys

    async def _to_referrer(
        self, delivery: Delivery, referral_id: str, status: str, detail: dict[str, Any]
    ) -> None:
        referrer = await store.referrer(delivery.session, referral_id)
        if referrer is None:
            # Its patient.contact travels on another queue and may still be on its way:
            # kept, and told as soon as the referrer is known (no ordering between queues
            # can then spend this message's tries).
            await store.defer_outcome(
                delivery.session,
                cause_event_id=delivery.envelope.id,
                referral_id=referral_id,
                status=status,
                detail=detail,
                deferred_at=utcnow(),
            )
            return
        await self._tell_referrer(delivery, referrer, status, detail, delivery.envelope.id)

    async def _flush_deferred(self, delivery: Delivery, referral_id: str) -> None:
        """Tell the referrer now known what was kept for it, in the order it happened."""
        session = delivery.session
        referrer = await store.referrer(session, referral_id)
        if referrer is None:  # recorded just before, in this transaction
            raise LookupError(f"no referrer recorded for {referral_id}")
        kept = await store.deferred(session, referral_id)
        told_centre_15: set[str] = set()
        if keys := _centre_15_keys(referrer):
            told = await store.told_centre_15(session, referral_id)
            told_centre_15 = {cause for cause, key in told if key in keys}
        for row in kept:
            if row.cause_event_id in told_centre_15:
                continue  # the referrer, a SAMU covering the patient, heard of it already
            await self._tell_referrer(
                delivery, referrer, row.status, row.detail, row.cause_event_id
            )
        if kept:
            await store.drop_deferred(session, referral_id)

    async def _tell_referrer(
        self,
        delivery: Delivery,
        referrer: Referrer,
        status: str,
        detail: dict[str, Any],
        cause: str,
    ) -> None:
        referral_id = referrer.referral_id
        if referrer.reply_to:
            await self._outcome_on_broker(
                delivery,
                referrer.reply_to,
                referral_id,
                status,
                detail,
                recipient_kind=RecipientKind.REFERRER,
                recipient=referrer.identifier,
                cause=cause,
            )
        if referrer.webhook_url:
            await self._pending(
                delivery,
                referral_id=referral_id,
                recipient_kind=RecipientKind.REFERRER,
                recipient=referrer.identifier,
                channel=Channel.WEBHOOK,
                template=f"referrer.{status}",
                body=templates.referrer_outcome(status, detail),
                target={
                    "url": referrer.webhook_url,
                    "payload": {"referral_id": referral_id, "status": status, "detail": detail},
                },
                cause=cause,
            )

    async def _outcome_on_broker(
        self,
        delivery: Delivery,
        reply_to: str,
        referral_id: str,
        status: str,
        detail: dict[str, Any],
        *,
        recipient_kind: RecipientKind,
        recipient: str,
        cause: str | None = None,
    ) -> None:
        text = templates.referrer_outcome(status, detail)
        await delivery.emit(
            ReferralOutcome(
                reply_to=reply_to,
                referral_id=referral_id,
                status=status,
                message=text,
                detail=detail,
            ),
            correlation_id=referral_id,
        )
        await self._sent_on_broker(
            delivery,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            template=f"referrer.{status}",
            body=text,
            cause=cause,
        )

    async def _to_patient(
        self, delivery: Delivery, referral_id: str, notice: patient_notices.PatientNotice
    ) -> None:
        """The notice on every patient channel: the SMS its short text, the others (the
        e-mail, the demos' record) the whole one."""
        for channel in self.patient_channels:
            await self._pending(
                delivery,
                referral_id=referral_id,
                recipient_kind=RecipientKind.PATIENT,
                recipient=referral_id,
                channel=Channel(channel.name),
                template=notice.template,
                body=notice.body(channel.name),
                target={"referral_id": referral_id},
                subject=notice.subject,
            )

    async def _sent_on_broker(
        self,
        delivery: Delivery,
        *,
        referral_id: str | None,
        recipient_kind: RecipientKind,
        recipient: str,
        template: str,
        body: str,
        cause: str | None = None,
    ) -> None:
        """A message that travels on the broker: sent when this transaction commits."""
        notification_id = new_id()
        now = utcnow()
        await store.add_sent(
            delivery.session,
            notification_id=notification_id,
            cause_event_id=cause or delivery.envelope.id,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            template=template,
            body=body,
            now=now,
        )
        await delivery.emit(
            NotificationSent(
                notification_id=notification_id,
                referral_id=referral_id,
                recipient_kind=recipient_kind,
                recipient=recipient,
                channel=Channel.BROKER,
                template=template,
            )
        )
        log.info(
            "notification sent",
            recipient_kind=recipient_kind.value,
            recipient=recipient,
            template=template,
        )

    async def _pending(
        self,
        delivery: Delivery,
        *,
        referral_id: str | None,
        recipient_kind: RecipientKind,
        recipient: str,
        channel: Channel,
        template: str,
        body: str,
        target: dict[str, Any],
        subject: str = "",
        due: datetime | None = None,
        cause: str | None = None,
    ) -> None:
        """A message for the outside world: the dispatcher sends it after the commit."""
        await store.add_pending(
            delivery.session,
            notification_id=new_id(),
            cause_event_id=cause or delivery.envelope.id,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            channel=channel,
            template=template,
            subject=subject,
            body=body,
            target=target,
            next_attempt_at=due or utcnow(),
            created_at=utcnow(),
        )
