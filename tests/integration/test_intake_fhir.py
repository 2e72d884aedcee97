"""Intake's FHIR R4 door (issue 36), against the real broker and database: a transaction
Bundle becomes a referral under the JSON door's rules, its booking is read back as an
Appointment, its refusals are OperationOutcomes in French naming the element, and a
referrer reads and withdraws its own referrals only."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest

from services.intake.app import build
from services.intake.domain import fhir
from shared.auth import Role, issue_token
from shared.events import Decision
from shared.runtime import ServiceRuntime
from shared.settings import Environment, ServiceName, Settings
from tests.fhir_examples import bundle
from tests.helpers import running
from tests.integration.test_intake_http import _on_bus, _regulated, _slot

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}


def bearer(settings: Settings, subject: str, role: Role = Role.REFERRER) -> dict[str, str]:
    token = issue_token(settings, role, subject, ServiceName.INTAKE)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A GP's FHIR client (gp:10001234567), intake running on the real broker."""
    runtime: ServiceRuntime = build(settings)
    async with running(runtime):
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://intake",
            headers={**bearer(settings, "gp:10001234567"), **FHIR},
        ) as client:
            yield client


async def _submitted(http: httpx.AsyncClient, reference: str) -> str:
    response = await http.post("/fhir", json=bundle(reference))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    entry = answer["entry"][0]
    assert entry["response"]["status"] == "201 Created"
    return str(entry["resource"]["id"])


async def _appointments(http: httpx.AsyncClient, referral_id: str) -> dict[str, Any]:
    response = await http.get(
        "/fhir/Appointment", params={"based-on": f"ServiceRequest/{referral_id}"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    found: dict[str, Any] = response.json()
    return found


async def test_a_transaction_bundle_is_a_referral_whose_appointment_is_read_back(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    referral_id = await _submitted(http, "fhir-1")
    request = (await http.get(f"/fhir/ServiceRequest/{referral_id}")).json()
    ServiceRequest.model_validate(request)
    assert request["status"] == "active"
    assert request["identifier"][0]["value"] == "fhir-1"
    # The same referral the JSON door shows: the same rules, the same store.
    as_json = (await http.get(f"/referrals/{referral_id}")).json()
    assert as_json["status"] == "received"
    assert as_json["reference"] == "fhir-1"
    # Sent again: the same referral, not a second one.
    again = await http.post("/fhir", json=bundle("fhir-1"))
    assert again.json()["entry"][0]["response"]["status"] == "200 OK"
    assert again.json()["entry"][0]["resource"]["id"] == referral_id
    assert (await _appointments(http, referral_id))["total"] == 0

    now = datetime.now(UTC)
    start = (now + timedelta(hours=3)).replace(microsecond=0)
    await _on_bus(
        settings,
        (_regulated(referral_id, Decision.ORIENT), now),
        (_slot(referral_id, "appt-fhir", "rennes-f", start), now + timedelta(seconds=1)),
    )
    deadline = time.monotonic() + 20
    while (found := await _appointments(http, referral_id))["total"] == 0:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)
    booked = found["entry"][0]["resource"]
    Appointment.model_validate(booked)
    assert booked["status"] == "booked"
    assert booked["basedOn"] == [{"reference": f"ServiceRequest/{referral_id}"}]
    assert booked["identifier"] == [{"system": fhir.APPOINTMENT_SYSTEM, "value": "appt-fhir"}]
    assert datetime.fromisoformat(booked["start"]) == start
    location = next(c for c in booked["contained"] if c["resourceType"] == "Location")
    assert location["name"] == "Centre rennes-f"
    assert location["address"]["text"] == "1 place de la Mairie"
    assert booked["participant"][0]["actor"]["reference"] == "#centre"
    assert "Rendez-vous" in booked["description"]


async def test_an_invalid_resource_gets_an_operation_outcome_naming_the_element(
    http: httpx.AsyncClient,
) -> None:
    wrong = bundle("fhir-bad")
    wrong["entry"][0]["resource"]["birthDate"] = "1960-13-01"
    response = await http.post("/fhir", json=wrong)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    OperationOutcome.model_validate(outcome)
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[0].resource.birthDate"]
    assert outcome["issue"][0]["diagnostics"] == "Valeur invalide."

    # Valid FHIR, refused by the JSON door's rules: the element it is about.
    future = bundle("fhir-future")
    future["entry"][0]["resource"]["birthDate"] = "2999-01-01"
    refused = (await http.post("/fhir/ServiceRequest", json=future)).json()
    assert refused["resourceType"] == "OperationOutcome"
    issues = {i["expression"][0]: i["diagnostics"] for i in refused["issue"]}
    assert "Patient.birthDate" in issues
    assert "naissance" in issues["Patient.birthDate"], issues

    without_patient = bundle("fhir-np")
    del without_patient["entry"][0]
    missing = (await http.post("/fhir", json=without_patient)).json()
    assert missing["issue"] == [
        {
            "severity": "error",
            "code": "required",
            "diagnostics": "Il faut exactement une ressource Patient (reçu : 0).",
            "expression": ["Patient"],
        }
    ]
    # A lone ServiceRequest is not a transaction: refused, and not recorded.
    lone = bundle("fhir-not-a-bundle")["entry"][1]["resource"]
    wrong_door = await http.post("/fhir", json=lone)
    assert wrong_door.status_code == 422
    assert wrong_door.json()["issue"][0]["expression"] == ["resourceType"]
    own = (await http.get("/referrals", headers={"Content-Type": "application/json"})).json()
    assert "fhir-not-a-bundle" not in str(own)
    not_fhir = await http.post("/fhir/ServiceRequest", content=b"{not json")
    assert not_fhir.status_code == 422
    assert not_fhir.json()["issue"][0]["expression"] == ["resourceType"]


async def test_a_lone_service_request_with_its_patient_contained(http: httpx.AsyncClient) -> None:
    resources = [e["resource"] for e in bundle("fhir-lone")["entry"]]
    patient, request, *observations = copy.deepcopy(resources)
    request["contained"] = [{**patient, "id": "p"}, *observations]
    request["subject"] = {"reference": "#p"}
    for observation in observations:
        observation["subject"] = {"reference": "#p"}
    response = await http.post("/fhir/ServiceRequest", json=request)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"].endswith(f"/fhir/ServiceRequest/{created['id']}")
    symptoms = (await http.get(f"/referrals/{created['id']}")).json()
    assert symptoms["reference"] == "fhir-lone"


async def test_the_capability_statement_lists_what_the_door_does(http: httpx.AsyncClient) -> None:
    response = await http.get("/fhir/metadata", headers={"Authorization": ""})
    assert response.status_code == 200
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert rest["interaction"] == [{"code": "transaction"}]
    supported = {r["type"]: r for r in rest["resource"]}
    assert [i["code"] for i in supported["ServiceRequest"]["interaction"]] == ["create", "read"]
    assert supported["ServiceRequest"]["operation"][0]["name"] == "cancel"
    assert supported["Appointment"]["searchParam"] == [{"name": "based-on", "type": "reference"}]


async def test_a_referrer_reads_and_withdraws_its_own_referrals_only(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    referral_id = await _submitted(http, "fhir-own")
    other = bearer(settings, "gp:999")
    read = await http.get(f"/fhir/ServiceRequest/{referral_id}", headers=other)
    assert read.status_code == 404
    assert read.json()["issue"][0]["code"] == "not-found"
    assert (
        await http.get("/fhir/Appointment", params={"based-on": referral_id}, headers=other)
    ).json()["total"] == 0
    reason = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueCode": "seen_elsewhere"}],
    }
    refused = await http.post(
        f"/fhir/ServiceRequest/{referral_id}/$cancel", json=reason, headers=other
    )
    assert refused.status_code == 404
    assert refused.json()["resourceType"] == "OperationOutcome"
    # Still the owner's, untouched by the refusal.
    assert (await http.get(f"/referrals/{referral_id}")).json()["status"] == "received"
    anonymous = await http.get(f"/fhir/ServiceRequest/{referral_id}", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.json()["issue"][0]["code"] == "login"
    centre = bearer(settings, "rennes", Role.CENTRE)
    forbidden = await http.get(f"/fhir/ServiceRequest/{referral_id}", headers=centre)
    assert forbidden.status_code == 403
    assert forbidden.json()["resourceType"] == "OperationOutcome"

    no_reason = await http.post(
        f"/fhir/ServiceRequest/{referral_id}/$cancel", json={"resourceType": "Parameters"}
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["issue"][0]["expression"] == ["Parameters.parameter('reason')"]
    withdrawn = await http.post(f"/fhir/ServiceRequest/{referral_id}/$cancel", json=reason)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "revoked"
    again = await http.post(f"/fhir/ServiceRequest/{referral_id}/$cancel", json=reason)
    assert again.json()["status"] == "revoked"
    status = (await http.get(f"/referrals/{referral_id}")).json()
    assert status["status"] == "cancelled"
    assert status["detail"]["by"] == "referrer"


async def test_past_its_quota_a_referrer_is_told_in_french_when_to_come_back(
    settings: Settings,
) -> None:
    runtime = build(settings.model_copy(update={"referrer_per_minute": 1}))
    async with running(runtime):
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://intake",
            headers={**bearer(settings, "gp:10001234567"), **FHIR},
        ) as client:
            assert (await client.post("/fhir", json=bundle("quota-1"))).status_code == 200
            refused = await client.post("/fhir", json=bundle("quota-2"))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    [issue] = refused.json()["issue"]
    assert issue["code"] == "throttled"
    assert issue["diagnostics"].startswith("Trop de demandes de cet adresseur : réessayez dans")


async def test_an_unregistered_referrer_is_refused_in_production(settings: Settings) -> None:
    runtime = build(settings)
    # The handlers judge as in production (the service itself would not start on the
    # tests' public secrets): an unregistered referrer is refused.
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})
    runtime.http_app.state.intake.handlers.settings = production
    async with running(runtime):
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://intake",
            headers={**bearer(settings, "gp:10001234567"), **FHIR},
        ) as client:
            refused = await client.post("/fhir", json=bundle("unknown-1"))
    assert refused.status_code == 403
    [issue] = refused.json()["issue"]
    assert (issue["code"], issue["expression"]) == ("forbidden", ["ServiceRequest.requester"])
    assert "n'est pas enregistré" in issue["diagnostics"]
