"""The status of a referral, read where its referrer reads it (``GET /referrals/{id}``
on intake), through every transition: the four services as processes, driven by what
the ARS, the referrer and the centres publish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aiguillage.demo import wait_for_consumers
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import (
    CancelledBy,
    CentreSuspended,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Envelope,
    PatientEscalated,
    ReferralCancelled,
)
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.consultation_time import consultation_over
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e

GP = "10001234567"  # the referrer of tests.helpers.referral
RENNES, ST_GREGOIRE = "rennes-st", "st-gregoire-st"


class Reader:
    """Intake's HTTP API, as an actor with a token reads it."""

    def __init__(self, http: httpx.AsyncClient, secret: str, role: Role, subject: str) -> None:
        self.http = http
        token = issue_token(secret, role, subject, ServiceName.INTAKE)
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, referral_id: str) -> httpx.Response:
        return await self.http.get(f"/referrals/{referral_id}", headers=self.headers)

    async def until(
        self, referral_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = await self.get(referral_id)
            body: dict[str, Any] = response.json()
            if response.status_code == 200 and condition(body):
                return body
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)

    async def status_becomes(self, referral_id: str, status: str) -> dict[str, Any]:
        return await self.until(referral_id, lambda b: b["status"] == status)


async def _referral_id(tap: Tap, reference: str) -> str:
    def acked(es: list[Envelope]) -> bool:
        return any(
            e.type == "submission.acknowledged" and e.data["reference"] == reference for e in es
        )

    await tap.wait_for(acked, timeout=30)
    [ack] = [e for e in tap.of_type("submission.acknowledged") if e.data["reference"] == reference]
    referral_id: str = ack.data["referral_id"]
    return referral_id


def _history(body: dict[str, Any]) -> list[str]:
    return [h["status"] for h in body["history"]]


async def test_every_transition_of_a_referral_reads_through_intake(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    intake = f"http://127.0.0.1:{processes.ports['intake']}"
    async with (
        Tap(s.broker_url, s.namespace) as tap,
        httpx.AsyncClient(base_url=intake) as http,
        EventPublisher(s.broker_url, s.namespace, "ars") as ars,
        EventPublisher(s.broker_url, s.namespace, "gp", actor=f"referrer-{GP}") as gp,
    ):
        referrer = Reader(http, s.auth_secret, Role.REFERRER, f"gp:{GP}")
        samu = Reader(http, s.auth_secret, Role.CENTRE_15, "samu-35")
        # Two centres a few kilometres apart: a patient of one can be moved to the other.
        for centre_id, insee in ((RENNES, "35238"), (ST_GREGOIRE, "35278")):
            await ars.publish(centre(centre_id, insee, boxes=2), correlation_id=centre_id)
        await tap.wait_for(lambda es: len([e for e in es if e.type == "centre.activated"]) == 2)

        # -- booked, then moved: the centre is suspended, another is near ----------------
        await gp.publish(referral("st-moved", reply_to=GP), correlation_id="st-moved")
        moved_id = await _referral_id(tap, "st-moved")
        booked = await referrer.status_becomes(moved_id, "appointment")
        old = booked["detail"]["centre_id"]
        new = ST_GREGOIRE if old == RENNES else RENNES
        assert _history(booked) == ["received", "regulated", "appointment"]
        assert "test_eligible" in booked["detail"]
        await ars.publish(
            CentreSuspended(centre_id=old, reason="plus de personnel"), correlation_id=old
        )
        moved = await referrer.until(
            moved_id,
            lambda b: b["status"] == "appointment" and b["detail"]["centre_id"] == new,
        )
        detail = moved["detail"]
        assert detail["centre_name"] == f"Centre {new}" and detail["start"] and detail["end"]
        assert "centre_address" in detail and detail["previous_centre_id"] == old
        assert detail["appointment_id"] != booked["detail"]["appointment_id"]
        assert detail["test_eligible"] == booked["detail"]["test_eligible"]
        # The replaced appointment's cancellation is history, not the status.
        moved = await referrer.until(moved_id, lambda b: "appointment_replaced" in _history(b))
        assert moved["status"] == "appointment" and moved["detail"]["centre_id"] == new
        assert _history(moved) == [
            "received",
            "regulated",
            "appointment",
            "moved",
            "appointment_replaced",
        ]
        [move] = [h for h in moved["history"] if h["status"] == "moved"]
        assert (move["detail"]["previous_centre_id"], move["detail"]["centre_id"]) == (old, new)
        assert moved["message"].startswith("Rendez-vous le ")

        # -- cancelled by the referrer, in its own name ---------------------------------
        await gp.publish(
            ReferralCancelled(
                referral_id=moved_id, cancelled_by=CancelledBy.REFERRER, reason="patient guéri"
            ),
            correlation_id=moved_id,
        )
        cancelled = await referrer.status_becomes(moved_id, "cancelled")
        assert cancelled["detail"]["by"] == "referrer"
        assert (
            cancelled["message"]
            == "Demande annulée par le médecin adresseur. Motif : patient guéri."
        )
        # The scheduler frees the slot: its cancellation is history, the status stands.
        cancelled = await referrer.until(moved_id, lambda b: "appointment_cancelled" in _history(b))
        assert cancelled["status"] == "cancelled" and cancelled["detail"]["by"] == "referrer"
        assert _history(cancelled)[-2:] == ["withdrawn", "appointment_cancelled"]

        # -- seen, no-show and escalated by the centre ----------------------------------
        ids: dict[str, str] = {}
        appointments: dict[str, str] = {}
        for reference in ("st-seen", "st-absent", "st-worse"):
            await gp.publish(referral(reference, reply_to=GP), correlation_id=reference)
            ids[reference] = await _referral_id(tap, reference)
            body = await referrer.status_becomes(ids[reference], "appointment")
            assert body["detail"]["centre_id"] == new  # the other one is suspended
            appointments[reference] = body["detail"]["appointment_id"]
        # Their time has come: "vu" from the slot's start, "absent" from its end.
        for reference in ("st-seen", "st-absent"):
            await consultation_over(s.data_dir, appointments[reference])
        async with EventPublisher(s.broker_url, s.namespace, "centre", actor=f"centre-{new}") as c:
            await c.publish(
                ConsultationCompleted(
                    appointment_id=appointments["st-seen"],
                    referral_id=ids["st-seen"],
                    centre_id=new,
                    test_prescribed=True,
                ),
                correlation_id=ids["st-seen"],
            )
            await c.publish(
                ConsultationNoShow(
                    appointment_id=appointments["st-absent"],
                    referral_id=ids["st-absent"],
                    centre_id=new,
                ),
                correlation_id=ids["st-absent"],
            )
            await c.publish(
                PatientEscalated(
                    referral_id=ids["st-worse"],
                    centre_id=new,
                    appointment_id=appointments["st-worse"],
                    reason="désaturation à 89 %",
                ),
                correlation_id=ids["st-worse"],
            )
        seen = await referrer.status_becomes(ids["st-seen"], "seen")
        assert seen["detail"]["centre_id"] == new and seen["detail"]["test_prescribed"] is True
        absent = await referrer.status_becomes(ids["st-absent"], "no_show")
        assert absent["detail"]["appointment_id"] == appointments["st-absent"]
        # The patient came after all: the centre corrects it, and the status follows.
        async with EventPublisher(s.broker_url, s.namespace, "centre", actor=f"centre-{new}") as c:
            await c.publish(
                ConsultationCorrected(
                    appointment_id=appointments["st-absent"],
                    referral_id=ids["st-absent"],
                    centre_id=new,
                    outcome=ConsultationOutcome.SEEN,
                    reason="arrivé en retard",
                ),
                correlation_id=ids["st-absent"],
            )
        corrected = await referrer.status_becomes(ids["st-absent"], "seen")
        assert corrected["detail"]["previous_outcome"] == "no_show"
        assert _history(corrected)[-2:] == ["no_show", "corrected_to_seen"]
        worse = await referrer.status_becomes(ids["st-worse"], "escalated")
        assert (worse["detail"]["by"], worse["detail"]["centre_id"]) == ("centre", new)
        assert _history(worse)[-1] == "escalated_by_centre"
        # Centre 15 calls the patient back: it reads who and where.
        called = await samu.status_becomes(ids["st-worse"], "escalated")
        assert called["identity"]["last_name"] == "Dupont-Lajoie"
        assert called["identity"]["commune"]["name"] == "Rennes"
        assert (await samu.get(ids["st-seen"])).status_code == 404

        # -- escalated by the protocol: SpO2 88 % ----------------------------------------
        await gp.publish(
            referral("st-severe", severe=True, reply_to=GP), correlation_id="st-severe"
        )
        severe_id = await _referral_id(tap, "st-severe")
        severe = await referrer.status_becomes(severe_id, "escalated")
        assert severe["detail"]["by"] == "protocol" and severe["detail"]["decision"] == "escalate"
        assert _history(severe) == ["received", "escalated"]
        assert "identity" not in severe
        assert (await samu.status_becomes(severe_id, "escalated"))["identity"]["phone"]

        # -- waitlisted: no centre within reach -------------------------------------------
        await gp.publish(referral("st-far", insee="13055", reply_to=GP), correlation_id="st-far")
        far_id = await _referral_id(tap, "st-far")
        far = await referrer.status_becomes(far_id, "waitlisted")
        assert _history(far) == ["received", "regulated", "waitlisted"]
