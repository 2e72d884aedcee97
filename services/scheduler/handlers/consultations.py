"""What centres report, at their door (the ``consultations`` queue): each for its own
appointments only (the routing key names the centre, which the broker holds it to; the
appointment's centre is checked here). An outcome in its time, or its correction
(issue 27); a consultation the centre could not hold ("annulé") books its patient again
at once, as a suspension does; an escalation gives the slot back; a request for
reinforcement is kept for the ARS. What is applied goes on the bus.

The rule of outcomes is ``shared/outcomes.py``, judged with this service's clock
(``clock``, injectable), never with a time the message carries. A refusal is a door's
refusal (``SenderRefused``): answered on the centre's reply key with its code and
French reason, recorded, never applied. What goes on the bus: the outcome as the centre
sent it, a correction with the outcome it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from services.scheduler import store
from services.scheduler.handlers.messages import announce_cancel, announce_move, payload_of
from services.scheduler.handlers.waiting import WaitingList
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import (
    CancelledBy,
    CentreCancelReason,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    PatientEscalated,
    ReinforcementRequested,
)
from shared.labels import CENTRE_CANCEL_REASONS
from shared.outcomes import STATUS_OF, OutcomeRefused, recorded, refuse_correction, refuse_record
from shared.senders import ActorKind, SenderRefused

log = structlog.get_logger(__name__)

Report = (
    ConsultationCompleted
    | ConsultationNoShow
    | ConsultationCancelled
    | ConsultationCorrected
    | PatientEscalated
)


def cancelled_reason(report: ConsultationCancelled) -> str:
    """Why the patient was booked again, as the patient, the referrer and the new centre
    read it: the reason's words alone (``médecin absent``), since every notice already
    says that the centre cancelled (a label is not repeated in its own value)."""
    return CENTRE_CANCEL_REASONS[report.reason_code or CentreCancelReason.OTHER]


class ConsultationHandlers(WaitingList):
    # What the centres' outcomes are judged by: this service's own clock, never a time
    # the message carries; set by SchedulerHandlers' constructor (tests set it).
    clock: Callable[[], datetime]

    async def on_completed(self, delivery: Delivery) -> None:
        report = payload_of(delivery, ConsultationCompleted)
        appointment = await _reported(delivery, report)
        await _record(delivery, report, appointment, self.clock())

    async def on_no_show(self, delivery: Delivery) -> None:
        report = payload_of(delivery, ConsultationNoShow)
        appointment = await _reported(delivery, report)
        await _record(delivery, report, appointment, self.clock())

    async def on_consultation_cancelled(self, delivery: Delivery) -> None:
        """The centre could not hold the consultation (from the slot's start): the
        outcome recorded, never to be corrected, and the patient booked again at once
        at the best slot within their reach, or waitlisted: none is left without care."""
        report = payload_of(delivery, ConsultationCancelled)
        appointment = await _reported(delivery, report)
        now = self.clock()
        refused = refuse_record(
            ConsultationOutcome.CANCELLED,
            start=as_utc(appointment.start),
            end=as_utc(appointment.end),
            now=now,
            already=recorded(appointment.status),
        )
        if refused is not None:
            raise _refuse(refused)
        session = delivery.session
        await self._cancel(session, appointment.id)  # status "cancelled", slot released
        await store.record_outcome(
            session, appointment.id, ConsultationOutcome.CANCELLED.value, now, _who(delivery)[0]
        )
        await delivery.emit(report, correlation_id=report.referral_id)
        await self._rebook(delivery, appointment, cancelled_reason(report), now)

    async def _rebook(self, delivery: Delivery, appointment: Any, why: str, now: datetime) -> None:
        """As a suspension moves a patient (handlers/centres.py): another slot, or the
        waiting list; the moves' record says the centre did it."""
        patient = await self._patient_of(delivery.session, appointment, now)
        booked = await self._book(delivery.session, patient, now)
        if booked is not None:
            await announce_move(
                delivery, appointment, booked, patient.priority, why, CancelledBy.CENTRE
            )
            return
        await announce_cancel(delivery, appointment, CancelledBy.CENTRE, why)
        await self._waitlist(delivery, patient, now, why)

    async def on_corrected(self, delivery: Delivery) -> None:
        report = payload_of(delivery, ConsultationCorrected)
        appointment = await _reported(delivery, report)
        await _correct(delivery, report, appointment, self.clock())

    async def on_escalated(self, delivery: Delivery) -> None:
        """A patient the centre sent to the SAMU: their slot given back when it was at
        an appointment; told to the SAMUs of the patient's département."""
        report = payload_of(delivery, PatientEscalated)
        if report.appointment_id is not None:
            await _reported(delivery, report)
            await store.release(delivery.session, report.appointment_id)
            await store.set_appointment_status(delivery.session, report.appointment_id, "escalated")
        else:
            _check_reporter(delivery, report.centre_id)
            # An escalation outside an appointment (the patient called the centre, say)
            # is still about a patient of the reporting centre: one it has booked.
            own = await store.is_patient_of(delivery.session, report.referral_id, report.centre_id)
            if not own and delivery.sender is not None and not delivery.sender.trusted:
                raise SenderRefused(
                    "sender_inconsistent",
                    "the patient is not the reporting centre's",
                    "referral_id",
                )
        # Whose SAMUs the notifier tells: the département as recorded here, never the
        # centre's word for it.
        departement = await store.referral_departement(delivery.session, report.referral_id)
        report = report.model_copy(update={"departement": departement})
        await delivery.emit(report, correlation_id=report.referral_id)

    async def on_reinforcement(self, delivery: Delivery) -> None:
        """A centre asks its ARS for staff: kept for the ARS to read, and on the bus."""
        payload = payload_of(delivery, ReinforcementRequested)
        centre_id = payload.centre_id
        _check_reporter(delivery, centre_id)
        row = await store.centre_row(delivery.session, centre_id)
        if row is None:
            raise SenderRefused("unknown_centre", "no such centre", "centre_id")
        await store.add_reinforcement(
            delivery.session,
            request_id=delivery.envelope.id,
            centre_id=centre_id,
            departement=row.departement,
            count=payload.count,
            profession=payload.profession,
            from_date=payload.from_date,
            note=payload.note,
            requested_at=delivery.received_at,
        )
        await delivery.emit(payload, correlation_id=centre_id)


def _check_reporter(delivery: Delivery, centre_id: str) -> None:
    """The centre named is the sender, and the key it came on names it."""
    sender = delivery.sender
    if delivery.routing_key and not delivery.routing_key.endswith(f".{centre_id}"):
        raise SenderRefused("routing_inconsistent", "the key names another centre", "centre_id")
    if sender is None or sender.trusted:
        return
    if sender.kind is not ActorKind.CENTRE or sender.actor != centre_id:
        raise SenderRefused("sender_inconsistent", "a centre reports for itself only", "centre_id")


async def _reported(delivery: Delivery, report: Report) -> Any:
    """The appointment a centre reports on, locked (two reports on one appointment, at
    two replicas, apply in turn): its own, for this referral, or the report is refused."""
    _check_reporter(delivery, report.centre_id)
    appointment_id = report.appointment_id
    assert appointment_id is not None  # an escalation without one is no appointment's
    appt = await store.reported_appointment(delivery.session, appointment_id)
    if appt is None:
        if delivery.sender is None or delivery.sender.trusted:
            raise LookupError(f"report on unknown appointment {appointment_id}")
        raise SenderRefused("unknown_appointment", "no such appointment", "appointment_id")
    if appt.centre_id != report.centre_id or appt.referral_id != report.referral_id:
        raise SenderRefused(
            "sender_inconsistent",
            "the appointment is not the reporting centre's",
            "appointment_id",
        )
    return appt


# -- outcomes in their time, and their corrections (issue 27) --------------------------


def _refuse(refused: OutcomeRefused) -> SenderRefused:
    return SenderRefused(refused.code, refused.message, "appointment_id")


def _who(delivery: Delivery) -> tuple[str, str, str | None]:
    """(the actor, the broker user that published, the door that spoke for it): who
    the door proved it was; a delivery from no door (a replay by hand, a test) names
    its envelope's source."""
    sender = delivery.sender
    if sender is None:
        return delivery.envelope.source, "", None
    return sender.name, sender.user, sender.via


async def _record(
    delivery: Delivery,
    report: ConsultationCompleted | ConsultationNoShow,
    appointment: Any,
    now: datetime,
) -> None:
    outcome = (
        ConsultationOutcome.SEEN
        if isinstance(report, ConsultationCompleted)
        else ConsultationOutcome.NO_SHOW
    )
    refused = refuse_record(
        outcome,
        start=as_utc(appointment.start),
        end=as_utc(appointment.end),
        now=now,
        already=recorded(appointment.status),
    )
    if refused is not None:
        raise _refuse(refused)
    session = delivery.session
    if outcome is ConsultationOutcome.NO_SHOW:
        await store.release(session, appointment.id)
    await store.set_appointment_status(session, appointment.id, STATUS_OF[outcome])
    await store.record_outcome(session, appointment.id, outcome.value, now, _who(delivery)[0])
    await delivery.emit(report, correlation_id=report.referral_id)


async def _correct(
    delivery: Delivery, report: ConsultationCorrected, appointment: Any, now: datetime
) -> None:
    session = delivery.session
    kept = await store.consultation_outcome(session, appointment.id)
    # The appointment's status is the outcome that stands (an escalation since leaves
    # nothing to correct); the first recording's time bounds the correction.
    already = recorded(appointment.status)
    refused = refuse_correction(
        report.outcome,
        start=as_utc(appointment.start),
        end=as_utc(appointment.end),
        now=now,
        already=already,
        recorded_at=as_utc(kept.recorded_at) if kept is not None else None,
    )
    if refused is not None:
        raise _refuse(refused)
    assert already is not None  # refuse_correction refuses when nothing was recorded
    if report.outcome is ConsultationOutcome.NO_SHOW:
        await store.release(session, appointment.id)
    elif not await store.hold_again(session, appointment):
        # The slot went to another patient after the no-show (recorded before the rule
        # held a no-show to the slot's end): the consultation counts all the same.
        log.info("corrected no-show's slot held by another booking", appointment=appointment.id)
    await store.set_appointment_status(session, appointment.id, STATUS_OF[report.outcome])
    actor, user, via = _who(delivery)
    await store.correct_outcome(
        session,
        correction_id=delivery.envelope.id,
        appointment=appointment,
        from_outcome=already.value,
        to_outcome=report.outcome.value,
        actor=actor,
        sender_user=user,
        via=via,
        reason=report.reason,
        corrected_at=now,
    )
    log.info(
        "consultation outcome corrected",
        appointment=appointment.id,
        from_outcome=already.value,
        to_outcome=report.outcome.value,
        actor=actor,
    )
    await delivery.emit(
        report.model_copy(update={"previous_outcome": already}),
        correlation_id=report.referral_id,
    )
