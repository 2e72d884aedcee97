"""What the handlers read from a delivery and stage in the outbox: a door's payload,
and the appointments' events (assigned, moved, cancelled) with a move's record."""

from __future__ import annotations

from typing import Any, TypeVar

from services.scheduler import store
from services.scheduler.handlers.booking import Booked, Patient
from shared.consumer import Delivery, PermanentError
from shared.db import as_utc
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CancelledBy,
    EventPayload,
    Priority,
    SlotAssigned,
    WithdrawalReason,
    utcnow,
)

P = TypeVar("P", bound=EventPayload)


def payload_of(delivery: Delivery, cls: type[P]) -> P:
    """A door's payload, parsed by the catalogue as the doors always have (a version it
    does not know is an invalid payload, never retried), of the type routed here."""
    payload = delivery.envelope.payload()
    if not isinstance(payload, cls):
        raise PermanentError("unexpected_event", f"{delivery.envelope.type} is no {cls.__name__}")
    return payload


async def announce_assigned(delivery: Delivery, patient: Patient, booked: Booked) -> None:
    await delivery.emit(
        SlotAssigned(
            centre_id=booked.slot.centre_id,
            appointment_id=booked.appointment_id,
            referral_id=patient.referral_id,
            patient_ref=patient.patient_ref,
            centre_name=booked.centre.name,
            centre_commune_insee=booked.centre.commune_insee,
            centre_address=booked.centre.address,
            start=booked.slot.start,
            end=booked.slot.end,
            box=booked.slot.box,
            priority=patient.priority,
            distance_km=round(booked.slot.distance_km, 2),
            test_eligible=patient.test_eligible,
        ),
        correlation_id=patient.referral_id,
    )


async def announce_move(
    delivery: Delivery,
    old: Any,
    booked: Booked,
    priority: Priority,
    reason: str,
    by: CancelledBy,
) -> None:
    """The new appointment to its centre (and so the patient and the referrer); the
    old one, replaced, to the centre that loses the patient."""
    # Recorded with who and why: a patient's own moves are counted from it, and
    # their page says why a suspension or a regulator moved them.
    await store.record_move(
        delivery.session,
        old=old,
        replaced_by=booked.appointment_id,
        by=by.value,
        reason=reason,
        now=utcnow(),
    )
    await delivery.emit(
        AppointmentRescheduled(
            centre_id=booked.slot.centre_id,
            appointment_id=booked.appointment_id,
            referral_id=old.referral_id,
            patient_ref=old.patient_ref,
            previous_centre_id=old.centre_id,
            previous_start=as_utc(old.start),
            previous_appointment_id=old.id,
            centre_name=booked.centre.name,
            centre_commune_insee=booked.centre.commune_insee,
            centre_address=booked.centre.address,
            start=booked.slot.start,
            end=booked.slot.end,
            box=booked.slot.box,
            priority=priority,
            distance_km=round(booked.slot.distance_km, 2),
            reason=reason,
            moved_by=by,
            test_eligible=booked.test_eligible,
        ),
        correlation_id=old.referral_id,
    )
    await announce_cancel(delivery, old, by, reason, replaced_by=booked.appointment_id)


async def announce_cancel(
    delivery: Delivery,
    old: Any,
    by: CancelledBy,
    reason: str,
    replaced_by: str | None = None,
    reason_code: WithdrawalReason | None = None,
) -> None:
    await delivery.emit(
        AppointmentCancelled(
            centre_id=old.centre_id,
            appointment_id=old.id,
            referral_id=old.referral_id,
            patient_ref=old.patient_ref,
            start=as_utc(old.start),
            cancelled_by=by,
            reason=reason,
            # A withdrawal's code, passed on for the notices to say why.
            reason_code=reason_code,
            replaced_by=replaced_by,
        ),
        correlation_id=old.referral_id,
    )
