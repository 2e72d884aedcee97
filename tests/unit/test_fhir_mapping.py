"""The FHIR door's mapping (services/intake/domain/fhir.py): FHIR in, the JSON door's
submission out, judged by the same rules; a referral's status out as a ServiceRequest
and an Appointment."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date
from typing import Any

from services.intake.domain import fhir
from services.intake.domain import submission as rules
from shared.events import Reason
from tests.fhir_examples import bundle

TODAY = date(2026, 12, 7)


def _read(body: dict[str, Any]) -> dict[str, Any]:
    read = fhir.submission(body)
    assert isinstance(read, dict), read
    return read


def test_a_transaction_bundle_reads_as_the_json_doors_submission() -> None:
    read = _read(bundle("u-1"))
    assert read["reference"] == "u-1"
    assert read["patient"] == {
        "first_name": "Jeanne",
        "last_name": "Martin",
        "birth_date": "1960-02-01",
        "sex": "female",
        "phone": "0612345678",
        "sms_consent": True,
        "commune_insee": "35238",
        "commune_name": "Rennes",
    }
    clinical = read["clinical"]
    assert clinical["symptomatic"] is True
    assert clinical["symptoms"] == ["toux"]
    assert clinical["risk_factors"] == ["chronic_respiratory"]
    assert clinical["vitals"] == {"spo2": 96}
    # The same rules as the JSON door's: accepted once the door names the referrer.
    verdict = rules.examine({**read, "referrer": {"kind": "gp", "identifier": "1"}}, TODAY)
    assert isinstance(verdict, rules.Accepted), verdict


def test_whole_vitals_stay_whole_and_signs_make_a_patient_symptomatic() -> None:
    body = bundle("u-2")
    vital = copy.deepcopy(body["entry"][3])
    vital["resource"]["code"]["coding"][0]["code"] = "9279-1"
    vital["resource"]["valueQuantity"] = {"value": 30.0}
    body["entry"][3:] = [vital]
    del body["entry"][2]  # no symptom
    body["entry"][1]["resource"]["reasonCode"] = [
        {"coding": [{"system": fhir.SEVERITY_SIGN, "code": "dyspnoea"}]},
        {"coding": [{"system": fhir.CLINICAL_FLAG, "code": "fatigue_bedridden"}]},
    ]
    clinical = _read(body)["clinical"]
    assert clinical["vitals"] == {"respiratory_rate": 30}
    assert isinstance(clinical["vitals"]["respiratory_rate"], int)
    assert clinical["severity_signs"] == ["dyspnoea"]
    assert clinical["symptomatic"] is True
    assert clinical["fatigue_bedridden"] is True
    assert "onset_date" not in clinical


def test_what_is_not_fhir_or_not_a_referral_is_said_on_its_element() -> None:
    assert fhir.submission([1]) == [
        fhir.Issue(
            "structure",
            "Envoyez un Bundle de type « transaction » ou une ServiceRequest.",
            "resourceType",
        )
    ]
    batch = bundle("u-3")
    batch["type"] = "batch"
    assert [i.expression for i in fhir.submission(batch)] == ["Bundle.type"]  # type: ignore[union-attr]
    unknown = bundle("u-4")
    unknown["entry"][1]["resource"]["colour"] = "blue"
    issues = fhir.submission(unknown)
    assert isinstance(issues, list)
    assert [i.expression for i in issues] == ["Bundle.entry[1].resource.colour"]
    draft = bundle("u-5")
    draft["entry"][1]["resource"]["status"] = "draft"
    assert [i.expression for i in fhir.submission(draft)] == ["ServiceRequest.status"]  # type: ignore[union-attr]


def test_the_rules_refusals_name_the_fhir_element() -> None:
    issues = fhir.issues_from_reasons(
        [
            Reason(code="missing_field", field="patient.last_name", message="Nom manquant."),
            Reason(code="invalid_spo2", field="clinical.vitals.spo2", message="SpO2 ?"),
            Reason(code="invalid", field="patient.phone.0", message="Téléphone ?"),
            Reason(code="odd", field="somewhere", message="?"),
        ]
    )
    assert [(i.code, i.expression) for i in issues] == [
        ("required", "Patient.name.family"),
        ("invalid", "Observation.where(code.coding.code='59408-5').valueQuantity"),
        ("invalid", "Patient.telecom"),
        ("invalid", "somewhere"),
    ]


def _referral(status: str, detail: dict[str, Any], *, final: bool = False) -> fhir.Referral:
    at = "2026-12-07T10:00:00+00:00"
    return fhir.Referral("r-1", "ref-1", status, detail, "Où elle en est.", final, at, at)


BOOKED = {
    "appointment_id": "a-1",
    "centre_id": "rennes-1",
    "centre_name": "Rennes Nord",
    "start": "2026-12-08T09:00:00+00:00",
    "end": "2026-12-08T09:20:00+00:00",
}


def test_a_referrals_status_as_a_service_request_and_its_appointment() -> None:
    assert fhir.service_request(_referral("received", {}))["status"] == "active"
    assert fhir.appointment(_referral("received", {})) is None
    booked = fhir.appointment(_referral("appointment", BOOKED))
    assert booked is not None
    assert booked["status"] == "booked"
    assert booked["participant"][0]["actor"] == {"reference": "#centre", "display": "Rennes Nord"}
    # The appointment cancelled (the patient will be moved): the request stays open.
    cancelled = _referral("cancelled", {**BOOKED, "by": "centre"})
    assert fhir.service_request(cancelled)["status"] == "active"
    assert fhir.appointment(cancelled)["status"] == "cancelled"  # type: ignore[index]
    # Withdrawn: the request is revoked, the appointment it had (the history's last
    # booking, the status no longer holds it) cancelled.
    withdrawn = _referral("cancelled", {"by": "referrer"}, final=True)
    assert fhir.service_request(withdrawn)["status"] == "revoked"
    assert fhir.appointment(withdrawn) is None
    moved = {**BOOKED, "appointment_id": "a-2", "centre_name": "Rennes Sud"}
    withdrawn = replace(withdrawn, history=(("appointment", BOOKED), ("moved", moved)))
    was = fhir.appointment(withdrawn)
    assert was is not None
    assert (was["id"], was["status"], was["participant"][0]["actor"]["display"]) == (
        "a-2",
        "cancelled",
        "Rennes Sud",
    )
    seen = _referral("seen", BOOKED, final=True)
    assert fhir.service_request(seen)["status"] == "completed"
    assert fhir.appointment(seen)["status"] == "fulfilled"  # type: ignore[index]
    assert fhir.appointment(_referral("no_show", BOOKED))["status"] == "noshow"  # type: ignore[index]


def test_an_operation_outcome_without_an_element_is_still_valid() -> None:
    body = fhir.operation_outcome([fhir.Issue("login", "Authentifiez-vous.")])
    assert body["issue"] == [
        {"severity": "error", "code": "login", "diagnostics": "Authentifiez-vous."}
    ]
