"""A consultation the centre could not hold ("annulé", issue 27), through the broker with
the four services as processes: the centre reports it on its own key, the scheduler
books the patient again at once, the patient is told (the link to change the new
slot), and the referrer's status and message say so."""

from __future__ import annotations

from datetime import datetime

import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.events import CentreCancelReason, ConsultationCancelled, Envelope
from shared.publisher import EventPublisher
from shared.release import source_name
from shared.settings import Settings
from tests.consultation_time import consultation_over
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e

CENTRE = "rennes-k"
WHY = "médecin absent"  # the reason's words alone: every notice says the centre cancelled


async def test_a_cancelled_consultation_rebooks_the_patient_and_tells_them(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre(CENTRE, "35238", boxes=2), correlation_id=CENTRE)
            await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(referral("k-1"), correlation_id="k-1")
        await tap.wait_for(lambda es: any(e.type == "slot.assigned" for e in es), timeout=60)
        [slot] = tap.of_type("slot.assigned")
        appointment, referral_id = slot.data["appointment_id"], slot.data["referral_id"]
        # Its time has come: "annulé" from the slot's start.
        await consultation_over(s.data_dir, appointment)
        report = ConsultationCancelled(
            appointment_id=appointment,
            referral_id=referral_id,
            centre_id=CENTRE,
            reason_code=CentreCancelReason.DOCTOR_ABSENT,
        )
        async with EventPublisher(
            s.broker_url, s.namespace, "centre", actor=f"centre-{CENTRE}"
        ) as own:
            await own.publish(report, correlation_id=referral_id)

        def settled(es: list[Envelope]) -> bool:
            patient = [
                e
                for e in es
                if e.type == "notification.sent"
                and e.data["recipient_kind"] == "patient"
                and e.data["template"] == "patient.rescheduled"
            ]
            told = [
                e for e in es if e.type == "referral.outcome" and e.data["status"] == "rescheduled"
            ]
            return bool(patient and told)

        await tap.wait_for(settled, timeout=60)
    [applied] = [
        e for e in tap.of_type("consultation.cancelled") if source_name(e.source) == "scheduler"
    ]
    assert applied.data["reason_code"] == "doctor_absent"
    [moved] = tap.of_type("appointment.rescheduled")
    assert moved.data["previous_appointment_id"] == appointment
    assert (moved.data["moved_by"], moved.data["reason"]) == ("centre", WHY)
    # A new appointment, still to come when the scheduler booked it.
    assert moved.data["appointment_id"] != appointment
    assert datetime.fromisoformat(moved.data["start"]) > moved.time
    [old] = tap.of_type("appointment.cancelled")
    assert (old.data.get("cancelled_by"), old.data.get("replaced_by")) == (
        "centre",
        moved.data["appointment_id"],
    )
    [told] = [e for e in tap.of_type("referral.outcome") if e.data["status"] == "rescheduled"]
    assert f"Le centre n'a pas pu assurer la consultation ({WHY})." in told.data["message"]
