"""What a centre records of its consultations, in their time, and how it corrects them
(issue 27): the centres' door (``SchedulerHandlers.on_consultation``) calls these once
the report is known to be about the reporting centre's own appointment.

The rule is ``shared/outcomes.py``, judged with this service's clock (``now``, from the
handlers' injectable clock), never with a time the message carries. A refusal is a
door's refusal (``SenderRefused``): answered on the centre's reply key with its code and
French reason, recorded, never applied. What is applied goes on the bus: the outcome as
the centre sent it, a correction with the outcome it replaces.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from services.scheduler import store
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import (
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
)
from shared.outcomes import STATUS_OF, OutcomeRefused, recorded, refuse_correction, refuse_record
from shared.senders import SenderRefused

log = structlog.get_logger(__name__)

Report = ConsultationCompleted | ConsultationNoShow | ConsultationCorrected


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


async def apply(delivery: Delivery, report: Report, appointment: Any, now: datetime) -> None:
    """Record the outcome, or correct it, if the rule allows it at ``now``."""
    if isinstance(report, ConsultationCorrected):
        await _correct(delivery, report, appointment, now)
    else:
        await _record(delivery, report, appointment, now)


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
