"""Issue 36, the four services as processes: a GP's software posts a FHIR transaction
Bundle to intake, regulation orients it, the scheduler books it, and the GP reads the
Appointment back over FHIR (the centre as its Location); then withdraws it with
``$cancel``, and the Appointment reads cancelled, the ServiceRequest revoked."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.fhir_examples import bundle
from tests.helpers import centre

pytestmark = pytest.mark.e2e

CENTRE = "rennes-fhir"


async def _appointment(gp: httpx.AsyncClient, referral_id: str, status: str) -> dict[str, Any]:
    """The referral's Appointment once it has ``status`` (regulation and the scheduler
    work meanwhile)."""
    deadline = time.monotonic() + 60
    while True:
        response = await gp.get("/fhir/Appointment", params={"based-on": referral_id})
        assert response.status_code == 200, response.text
        found = response.json()
        if found["total"] and found["entry"][0]["resource"]["status"] == status:
            booked: dict[str, Any] = found["entry"][0]["resource"]
            return booked
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def test_a_fhir_bundle_is_booked_read_back_and_withdrawn(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre(CENTRE, "35238"), correlation_id=CENTRE)
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    token = issue_token(s, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{processes.ports['intake']}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        timeout=10,
    ) as gp:
        sent = await gp.post("/fhir", json=bundle("fhir-e2e"))
        assert sent.status_code == 200, sent.text
        referral_id = sent.json()["entry"][0]["resource"]["id"]

        booked = await _appointment(gp, f"ServiceRequest/{referral_id}", "booked")
        assert booked["basedOn"] == [{"reference": f"ServiceRequest/{referral_id}"}]
        location = next(c for c in booked["contained"] if c["resourceType"] == "Location")
        assert location["identifier"][0]["value"] == CENTRE
        assert booked["start"] < booked["end"]
        request = (await gp.get(f"/fhir/ServiceRequest/{referral_id}")).json()
        assert request["status"] == "active"
        assert request["extension"][0]["valueCode"] == "appointment"

        reason = {
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueCode": "patient_recovered"}],
        }
        withdrawn = await gp.post(f"/fhir/ServiceRequest/{referral_id}/$cancel", json=reason)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["status"] == "revoked"
        cancelled = await _appointment(gp, referral_id, "cancelled")
        assert cancelled["id"] == booked["id"]
