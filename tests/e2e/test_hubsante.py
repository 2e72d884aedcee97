"""Centre 15's LRM refers a patient through Hub Santé and follows the appointment:
the four services as processes, the door on a hub of the test's own."""

from __future__ import annotations

from typing import Any

import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.events import CentreSuspended
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.helpers import centre
from tests.hubsante_hub import DOOR, LRM, answers, body, door_on_hub, oriented_case

pytestmark = pytest.mark.e2e


def appointment(status: str, method: str) -> Any:
    def named(message: dict[str, Any]) -> bool:
        inner = body(message).get("appointment")
        return bool(inner and inner["status"] == status and inner["method"] == method)

    return named


async def test_an_oriented_case_gets_a_booked_appointment_then_its_move(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-hub", "35238"), correlation_id="rennes-hub")
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with door_on_hub(s) as (lrm, _door):
            case_id = f"{LRM}.DRFR15350000001"
            # 75 years old: at risk; the case carries no vitals, so the protocol holds
            # it for a regulator, and the door gives the LRM regulator's orientation.
            message = lrm.case(DOOR, oriented_case(case_id))
            await lrm.publish(message)
            ack = await lrm.wait_for(answers(message["distributionID"]), timeout=60)
            assert ack["distributionKind"] == "Ack", body(ack)
            booked = await lrm.wait_for(appointment("booked", "CreateAppointment"), timeout=60)
            rdv = body(booked)["appointment"]
            assert rdv["organization"]["organizationId"] == "rennes-hub"
            assert rdv["start"] < rdv["end"]
            assert rdv["appointmentId"].startswith(case_id)

            # The ARS suspends the centre; the patient is moved to another one.
            await ars.publish(centre("rennes-hub-2", "35238"), correlation_id="rennes-hub-2")
            await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
            await ars.publish(
                CentreSuspended(centre_id="rennes-hub", reason="no staff"),
                correlation_id="rennes-hub",
            )
            moved = await lrm.wait_for(appointment("booked", "UpdateAppointment"), timeout=60)
            update = body(moved)["appointment"]
            assert update["appointmentId"] == rdv["appointmentId"]
            assert update["organization"]["organizationId"] == "rennes-hub-2"

            # The LRM cancels the case: the referral is withdrawn, the slot freed, and
            # the LRM hears the appointment cancelled.
            cancel = lrm.case(DOOR, {"createCaseHealthUpdate": {"caseId": case_id}}, kind="Cancel")
            await lrm.publish(cancel)
            done = await lrm.wait_for(answers(cancel["distributionID"]), timeout=60)
            assert done["distributionKind"] == "Ack", body(done)
            cancelled = await lrm.wait_for(
                appointment("cancelled", "UpdateAppointment"), timeout=60
            )
            assert body(cancelled)["appointment"]["appointmentId"] == rdv["appointmentId"]
