"""Centre 15 hears of an escalation with no page open, and reads the patients it must
call back from intake, which keeps them: not from a console's memory."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from aiguillage.demo import wait_for_consumers
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.helpers import Tap, referral

pytestmark = pytest.mark.e2e


async def _escalations(processes: ServiceProcesses, s: Settings, role: Role) -> httpx.Response:
    token = issue_token(s, role, "samu-35", ServiceName.INTAKE)
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(
            f"http://127.0.0.1:{processes.ports['intake']}/escalations",
            headers={"Authorization": f"Bearer {token}"},
        )


async def test_an_escalation_reaches_centre_15_and_stays_listed_with_whom_to_call(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with (
        Tap(s.broker_url, s.namespace, "reply.samu-35.#") as centre_15,
        EventPublisher(s.broker_url, s.namespace, "gp") as gp,
    ):
        sent = await gp.publish(referral("c15-severe", severe=True), correlation_id="c15")
        await centre_15.wait_for(
            lambda es: any(e.data.get("status") == "escalated" for e in es), timeout=40
        )
    [told] = [e for e in centre_15.envelopes if e.data.get("status") == "escalated"]
    referral_id = told.data["referral_id"]
    # With whom to call, when the contact came first (the two travel apart).
    patient = told.data["detail"].get("patient")
    assert patient is None or patient["phone"] == "+33612345678"
    assert sent.id != referral_id  # the referral's id, not the submission's

    listed: list[dict[str, Any]] = []
    for _ in range(50):
        response = await _escalations(processes, s, Role.CENTRE_15)
        listed = response.json()["escalations"]
        if listed:
            break
    [escalation] = listed
    assert escalation["referral_id"] == referral_id
    assert escalation["identity"]["last_name"] == "Dupont-Lajoie"
    assert escalation["identity"]["phone"] == "+33612345678"  # E.164, as kept
    assert escalation["detail"]["by"] == "protocol"
    assert "SpO2" in json.dumps(escalation["detail"]["reasons"])  # the sign, named
    # Nobody else reads that list.
    assert (await _escalations(processes, s, Role.ARS)).status_code == 403
