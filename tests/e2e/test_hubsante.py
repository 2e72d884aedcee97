"""Centre 15's LRM refers a patient through Hub Santé and follows the appointment:
the four services as processes, the door on a hub of the test's own."""

from __future__ import annotations

from typing import Any

import pytest

from aiguillage.commands.regulate import get_from_regulation
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
            # 75 years old, no vitals: the protocol alone would hold it for a regulator;
            # the LRM regulator's orientation travels with the referral and stands.
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


def note_on(case_id: str) -> Any:
    def named(message: dict[str, Any]) -> bool:
        update = body(message).get("createCaseHealthUpdate")
        return bool(update and update["caseId"] == case_id and update.get("medicalNote"))

    return named


async def test_the_regulators_orientation_stands_and_severity_still_escalates(
    settings: Settings, processes: ServiceProcesses
) -> None:
    """Issue 36: a young adult with no risk factor, whom the protocol alone would send
    home (a mild picture from Centre 15), is booked because the SAMU regulator oriented
    them; the same case with a severity sign in its notes is escalated, and the
    regulator reads why. The audit names the regulator."""
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-young", "35238"), correlation_id="rennes-young")
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with door_on_hub(s) as (lrm, door):
            young = f"{LRM}.DRFR15350000002"
            message = lrm.case(DOOR, oriented_case(young, age="P32Y"))
            await lrm.publish(message)
            ack = await lrm.wait_for(answers(message["distributionID"]), timeout=60)
            assert ack["distributionKind"] == "Ack", body(ack)
            booked = await lrm.wait_for(appointment("booked", "CreateAppointment"), timeout=60)
            rdv = body(booked)["appointment"]
            assert rdv["appointmentId"].startswith(young)
            assert rdv["regulator"] == {
                "regulatorName": "Bernard",
                "regulatorFirstname": "Sophie",
                "regulatorEmail": "regulation@samu.invalid",
            }
            assert not [m for m in lrm.received if note_on(young)(m)], "no home follow-up"

            severe_id = f"{LRM}.DRFR15350000003"
            severe = oriented_case(severe_id, age="P32Y")
            severe["createCaseHealth"]["medicalNote"][0]["freetext"] = (
                "Toux depuis 3 jours, dyspnée au moindre effort."
            )
            message = lrm.case(DOOR, severe)
            await lrm.publish(message)
            note = await lrm.wait_for(note_on(severe_id), timeout=60)
            text = body(note)["createCaseHealthUpdate"]["medicalNote"][0]["freetext"]
            assert "SAMU" in text and "essoufflement" in text, text
            young_row = await door._case(LRM, young)
            severe_row = await door._case(LRM, severe_id)
    assert not [
        m
        for m in lrm.received
        if appointment("booked", "CreateAppointment")(m)
        and body(m)["appointment"]["appointmentId"].startswith(severe_id)
    ]

    # The audit: regulation's decision trail names the regulator for the booked case;
    # the escalated one shows the regulator's orientation overridden by the sign.
    cli = s.model_copy(update={"regulation_http_port": processes.ports["regulation"]})
    trail = await get_from_regulation(
        cli, f"/referrals/{young_row.referral_id}/decisions", "samu-35"
    )
    assert [(d["decision"], d["decided_by"]) for d in trail["decisions"]] == [
        ("orient", "Dr Sophie Bernard")
    ]
    trail = await get_from_regulation(
        cli, f"/referrals/{severe_row.referral_id}/decisions", "samu-35"
    )
    [decision] = trail["decisions"]
    assert decision["decision"] == "escalate"
    codes = [r["code"] for r in decision["reasons"]]
    assert codes[:2] == ["regulator.overruled_by_severity", "escalate"], codes


async def test_a_new_commune_in_an_update_books_nearer_and_the_lrm_hears_it(
    settings: Settings, processes: ServiceProcesses
) -> None:
    """Issue 36, "Updates applied": the LRM's RS-EDA-MAJ gives the patient's new place
    (Saint-Malo, a BAN address key) and a corrected name; the appointment, not yet due,
    moves to the centre in Saint-Malo, no later, and the LRM hears it as an RS-SAS-RDV
    UpdateAppointment of the same appointment, its regulator named (every RS-SAS-RDV
    sent is checked by ``door_on_hub``: it validates, its regulator block filled)."""
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        for centre_id, insee in (("rennes-maj", "35238"), ("malo-maj", "35288")):
            await ars.publish(centre(centre_id, insee), correlation_id=centre_id)
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with door_on_hub(s) as (lrm, _door):
            case_id = f"{LRM}.DRFR15350000004"
            message = lrm.case(DOOR, oriented_case(case_id))
            await lrm.publish(message)
            ack = await lrm.wait_for(answers(message["distributionID"]), timeout=60)
            assert ack["distributionKind"] == "Ack", body(ack)
            booked = await lrm.wait_for(appointment("booked", "CreateAppointment"), timeout=60)
            rdv = body(booked)["appointment"]
            assert rdv["appointmentId"].startswith(case_id)
            assert rdv["organization"]["organizationId"] != "malo-maj"

            patient_id = f"{LRM}.patient.DRFR15350000004.1"
            update = {
                "caseId": case_id,
                "location": {"externalInfo": [{"freetext": "BAN", "uri": "35288_0150_00012"}]},
                "patient": [
                    {
                        "patientId": patient_id,
                        "identity": {
                            "nonStrictFeatures": {
                                "complete": "Jeanne Martin-Leroy",
                                "firstName": "Jeanne",
                                "lastName": "Martin-Leroy",
                            }
                        },
                    }
                ],
            }
            maj = lrm.case(DOOR, {"createCaseHealthUpdate": update}, kind="Update")
            await lrm.publish(maj)
            done = await lrm.wait_for(answers(maj["distributionID"]), timeout=60)
            assert done["distributionKind"] == "Ack", body(done)
            moved = await lrm.wait_for(appointment("booked", "UpdateAppointment"), timeout=60)
            nearer = body(moved)["appointment"]
            assert nearer["appointmentId"] == rdv["appointmentId"]
            assert nearer["organization"]["organizationId"] == "malo-maj"
            assert nearer["start"] <= rdv["start"]  # never later for being nearer
            assert nearer["regulator"]["regulatorName"] == "Bernard"
