"""Appointments (the ``assignments`` queue): booked, moved, cancelled. The centre hears
of each on its list; the patient and the referrer are told, once.

A withdrawal (referral.cancelled, ``referrals.py``) and the appointment the scheduler
cancels with it (appointment.cancelled, caused by it) come on two queues, in either
order: the referrer and the patient hear of it once, recorded by its cause
(``cancellations``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.notifier.domain import patient_notices, templates
from services.notifier.handlers.telling import Teller, cancellation_detail
from services.notifier.store import cancellations, centres
from shared.consumer import Delivery
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    RecipientKind,
    SlotAssigned,
)


@dataclass(frozen=True)
class _Told:
    """What an appointment's event tells: the centre (``centre.<template>``), the
    patient, and the referrer (an outcome of ``status``, with its ``detail``)."""

    template: str
    centre: str
    patient: patient_notices.PatientNotice
    status: str
    detail: dict[str, Any]


def _detail(payload: SlotAssigned | AppointmentRescheduled) -> dict[str, Any]:
    """What the referrer is told of a booked appointment: where and when."""
    return {
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


def _visit(payload: SlotAssigned | AppointmentRescheduled) -> patient_notices.Visit:
    return patient_notices.Visit(
        payload.start, payload.centre_name, payload.centre_address, payload.centre_commune_insee
    )


class AssignmentHandlers(Teller):
    async def on_slot_assigned(self, delivery: Delivery) -> None:
        """A new appointment: on the centre's list, and told."""
        payload = delivery.payload_as(SlotAssigned)
        session = delivery.session
        await self._add_appointment(session, payload)
        kind = await self._referrer_kind(session, payload.referral_id)
        told = _Told(
            "new_patient",
            templates.centre_new_patient(
                payload.patient_ref,
                payload.start,
                payload.priority.value,
                payload.box,
                payload.test_eligible,
            ),
            patient_notices.appointment(_visit(payload), kind, self._link(payload)),
            "appointment",
            _detail(payload),
        )
        await self._tell_booked(delivery, payload, told)

    async def on_rescheduled(self, delivery: Delivery) -> None:
        """An appointment moved here: the old one off its centre's list, the new one on
        this one's, and told."""
        payload = delivery.payload_as(AppointmentRescheduled)
        session = delivery.session
        if payload.previous_appointment_id:
            await self._appointment_status(session, payload.previous_appointment_id, "cancelled")
        await self._add_appointment(session, payload)
        moved_by = payload.moved_by.value if payload.moved_by is not None else None
        told = _Told(
            "rescheduled",
            templates.centre_rescheduled(
                payload.patient_ref,
                payload.start,
                payload.previous_centre_id,
                payload.test_eligible,
            ),
            patient_notices.moved(
                _visit(payload),
                payload.previous_start,
                moved_by,
                payload.reason,
                self._link(payload),
            ),
            "rescheduled",
            {**_detail(payload), "reason": payload.reason, "by": moved_by},
        )
        await self._tell_booked(delivery, payload, told)

    async def on_appointment_cancelled(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(AppointmentCancelled)
        session = delivery.session
        await self._appointment_status(session, payload.appointment_id, "cancelled")
        if payload.replaced_by:
            # Moved elsewhere: the patient and the referrer hear of the new appointment;
            # the centre that loses the patient hears of it here.
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
        # Not replaced: off the list, and told by who.
        detail = cancellation_detail(payload)
        kind = await self._referrer_kind(session, payload.referral_id)
        await self._sent_on_broker(
            delivery,
            referral_id=payload.referral_id,
            recipient_kind=RecipientKind.CENTRE,
            recipient=payload.centre_id,
            template="centre.cancelled",
            body=templates.centre_cancelled(payload.patient_ref, payload.start, payload.reason),
        )
        if not await self._first_told(delivery):
            return  # its withdrawal told the referrer and the patient already
        notice = patient_notices.cancelled(
            payload.start, payload.cancelled_by.value, payload.reason, kind
        )
        await self._to_patient(delivery, payload.referral_id, notice)
        await self._to_referrer(delivery, payload.referral_id, "cancelled", detail)

    async def _add_appointment(
        self, session: Any, payload: SlotAssigned | AppointmentRescheduled
    ) -> None:
        await centres.add_appointment(
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

    async def _tell_booked(
        self, delivery: Delivery, payload: SlotAssigned | AppointmentRescheduled, told: _Told
    ) -> None:
        """The centre, then the patient, then the referrer."""
        await self._sent_on_broker(
            delivery,
            referral_id=payload.referral_id,
            recipient_kind=RecipientKind.CENTRE,
            recipient=payload.centre_id,
            template=f"centre.{told.template}",
            body=told.centre,
        )
        await self._to_patient(delivery, payload.referral_id, told.patient)
        await self._to_referrer(delivery, payload.referral_id, told.status, told.detail)

    def _link(self, payload: SlotAssigned | AppointmentRescheduled) -> str | None:
        if self.patient_link is None:
            return None
        return self.patient_link(payload.appointment_id, payload.referral_id, payload.end)

    async def _first_told(self, delivery: Delivery) -> bool:
        """An appointment cancelled (not moved): does it tell the referrer and the
        patient? Not when its cause, a withdrawal, told them already."""
        payload = delivery.payload_as(AppointmentCancelled)
        cause = delivery.envelope.causation_id
        if cause is None:
            return True
        session, referral_id = delivery.session, payload.referral_id
        found = await cancellations.cancellation(session, referral_id, cause)
        if found is not None and found.told:
            return False
        state = cancellations.Cancellation(
            withdrawal=found is not None and found.withdrawal, told=True
        )
        await cancellations.record_cancellation(
            session, referral_id, cause, state, new=found is None
        )
        return True
