"""A centre suspended with booked appointments: each is moved to another centre or
waitlisted, never dropped, and the people concerned are told. The ARS sees it all."""

from __future__ import annotations

import httpx
import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e


async def test_suspended_centre_patients_are_moved_or_waitlisted_and_told(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre("rennes-s", "35238", boxes=3), correlation_id="rennes-s")
            await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                for i in range(6):
                    await gp.publish(referral(f"s-{i}"), correlation_id=f"s-{i}")
            await tap.wait_for(lambda es: len([e for e in es if e.type == "slot.assigned"]) == 6)
            # A small second centre: it takes some patients, the others wait.
            await ars.publish(
                centre("st-gregoire-s", "35278", boxes=1, hours="08:00-08:40"),
                correlation_id="st-gregoire-s",
            )
            await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        # The ARS suspends over HTTP; a centre may not.
        scheduler = f"http://127.0.0.1:{processes.ports['scheduler']}"
        async with httpx.AsyncClient(base_url=scheduler) as http:
            centre_token = issue_token(s, Role.CENTRE, "rennes-s", ServiceName.SCHEDULER)
            as_centre = {"Authorization": f"Bearer {centre_token}"}
            refused = await http.post(
                "/centres/rennes-s/suspend", json={"reason": "x"}, headers=as_centre
            )
            assert refused.status_code == 403
            ars_token = issue_token(s, Role.ARS, "53", ServiceName.SCHEDULER)
            as_ars = {"Authorization": f"Bearer {ars_token}"}
            accepted = await http.post(
                "/centres/rennes-s/suspend", json={"reason": "no staff"}, headers=as_ars
            )
            assert accepted.status_code == 202
            assert accepted.json()["event_type"] == "centre.suspended"

        def settled(es: list[Envelope]) -> bool:
            moved = [e for e in es if e.type == "appointment.rescheduled"]
            waiting = [e for e in es if e.type == "referral.waitlisted"]
            told = [
                e
                for e in es
                if e.type == "referral.outcome" and e.data["status"] in ("rescheduled", "cancelled")
            ]
            patients = [
                e
                for e in es
                if e.type == "notification.sent"
                and e.data["template"] in ("patient.rescheduled", "patient.cancelled")
            ]
            return len(moved) + len(waiting) == 6 and len(told) == 6 and len(patients) == 6

        await tap.wait_for(settled, timeout=60)
    booked = {e.data["referral_id"] for e in tap.of_type("slot.assigned")}
    moved = {e.data["referral_id"]: e.data for e in tap.of_type("appointment.rescheduled")}
    waiting = {e.data["referral_id"] for e in tap.of_type("referral.waitlisted")}
    assert moved.keys() | waiting == booked and not moved.keys() & waiting
    assert all(m["centre_id"] == "st-gregoire-s" for m in moved.values())
    assert all(m["previous_centre_id"] == "rennes-s" for m in moved.values())
    cancelled = {e.data["referral_id"]: e.data for e in tap.of_type("appointment.cancelled")}
    # The old centre hears of each patient it loses: moved (replaced) or waitlisted.
    assert cancelled.keys() == booked
    assert {r for r, c in cancelled.items() if not c.get("replaced_by")} == waiting
    assert {r for r, c in cancelled.items() if c.get("replaced_by")} == moved.keys()
    # What the patient, the centre and the referrer read: French, the ARS's reason kept.
    assert {c["reason"] for c in cancelled.values()} == {"centre suspendu : no staff"}
    told = [e.data for e in tap.of_type("referral.outcome") if e.data["status"] == "cancelled"]
    assert all(o["message"] == "Rendez-vous annulé (centre suspendu : no staff)." for o in told)
    centre_notices = {
        (e.data["recipient"], e.data["template"])
        for e in tap.of_type("notification.sent")
        if e.data["recipient_kind"] == "centre"
    }
    # The small centre has 2 to 6 places within the horizon: some move, some wait.
    assert moved and waiting
    assert ("st-gregoire-s", "centre.rescheduled") in centre_notices
    assert ("rennes-s", "centre.cancelled") in centre_notices
    patient_notices = [
        e
        for e in tap.of_type("notification.sent")
        if e.data["recipient_kind"] == "patient"
        and e.data["template"] in ("patient.rescheduled", "patient.cancelled")
    ]
    assert len(patient_notices) == 6

    # The ARS's view: the suspended centre, the waiting list, the alerts.
    token = issue_token(s, Role.ARS, "53", ServiceName.SCHEDULER)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{processes.ports['scheduler']}",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        [dep] = (await http.get("/territory")).json()["departements"]
        assert dep["departement"] == "35" and dep["name"] == "Ille-et-Vilaine"
        assert dep["centres"] == 2 and dep["active_centres"] == 1
        assert dep["waiting"] == len(waiting)
        detail = (await http.get("/territory/35")).json()
        statuses = {c["centre_id"]: c["status"] for c in detail["centres"]}
        assert statuses == {"rennes-s": "suspended", "st-gregoire-s": "active"}
        centre_token = issue_token(s, Role.CENTRE, "rennes-s", ServiceName.SCHEDULER)
        refused = await http.get("/territory", headers={"Authorization": f"Bearer {centre_token}"})
        assert refused.status_code == 403
        assert (await http.get("/territory", headers={"Authorization": ""})).status_code == 401


async def test_waiting_list_drains_most_urgent_first_when_capacity_appears(
    settings: Settings, processes: ServiceProcesses
) -> None:
    from shared.events import Clinical, RiskFactor, Vitals

    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            # No centre yet: everyone waits, and the ARS is alerted.
            await gp.publish(referral("w-routine-1"), correlation_id="a")
            at_risk = referral("w-asap").model_copy(
                update={
                    "clinical": Clinical(
                        symptomatic=True,
                        risk_factors=(RiskFactor.CHRONIC_RESPIRATORY,),
                        vitals=Vitals(spo2=95, respiratory_rate=18),
                    )
                }
            )
            await gp.publish(at_risk, correlation_id="b")
            await gp.publish(referral("w-routine-2"), correlation_id="c")
        await tap.wait_for(lambda es: len([e for e in es if e.type == "referral.waitlisted"]) == 3)
        # One alert while the waiting list lasts (raised by the first patient), not one
        # per patient; the waiting list itself counts them all.
        [alert] = tap.of_type("capacity.alert")
        assert alert.data["departement"] == "35" and alert.data["kind"] == "waiting_list"
        assert [e.data["waiting_in_departement"] for e in tap.of_type("referral.waitlisted")][
            -1
        ] == 3
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            # One box, one slot a day: capacity for some, not all.
            await ars.publish(
                centre("rennes-w", "35238", boxes=1, hours="08:00-08:20"), correlation_id="w"
            )
        await tap.wait_for(lambda es: len([e for e in es if e.type == "slot.assigned"]) >= 1)
    priorities = {
        e.data["referral_id"]: e.data["priority"] for e in tap.of_type("referral.waitlisted")
    }
    [first] = tap.of_type("slot.assigned")[:1]
    assert priorities[first.data["referral_id"]] == "asap", "the most urgent is served first"
