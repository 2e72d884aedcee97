"""FHIR R4 ↔ intake's submission: plain functions, no I/O (issue 36, the FHIR door).

Inbound, a transaction ``Bundle`` (a ``Patient``, a ``ServiceRequest``, ``Observation``s
for symptoms and vitals) or a lone ``ServiceRequest`` with the ``Patient`` and the
``Observation``s ``contained``, is validated as FHIR (``fhir.resources``), then read
into the very dict the JSON door takes (``ReferralSubmitted``), which the same handler
judges: one set of rules. Its refusals name the FHIR element (``EXPRESSIONS``).

Outbound, a referral's status (the row and the history the JSON ``GET /referrals/{id}``
reads) becomes a ``ServiceRequest``, its booking an ``Appointment`` ``basedOn`` it, the
centre a contained ``Location`` managed by a contained ``Organization``; a refusal an
``OperationOutcome`` in French; the door itself a ``CapabilityStatement``.

The resources are built as dicts and validated by ``fhir.resources``' R4B models, which
for every resource used here are R4's (R4B changed none of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from services.intake.domain.submission import reasons_from_validation_error
from shared.events import Reason
from shared.labels import FHIR_SERVICE_REQUEST_NOTES

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
BASE = "https://aiguillage.fr/fhir"
# Our own code systems: the codes are the JSON door's (shared/events/vocabulary.py).
SEVERITY_SIGN = f"{BASE}/CodeSystem/severity-sign"
RISK_FACTOR = f"{BASE}/CodeSystem/risk-factor"
CLINICAL_FLAG = f"{BASE}/CodeSystem/clinical-flag"
STATUS_EXTENSION = f"{BASE}/StructureDefinition/referral-status"
SMS_CONSENT = f"{BASE}/StructureDefinition/sms-consent"
COMMUNE_INSEE = f"{BASE}/StructureDefinition/commune-insee"
APPOINTMENT_SYSTEM = f"{BASE}/sid/appointment"
CENTRE_SYSTEM = f"{BASE}/sid/centre"
REFERENCE_SYSTEM = f"{BASE}/sid/referrer-reference"
# The patient's NIR as INS (ANS: the OID of INS-NIR).
INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
LOINC = "http://loinc.org"
SYMPTOM = "75325-1"
# The vitals by LOINC code: SpO2 (pulse oximetry, or arterial), breaths per minute,
# systolic pressure, body temperature (°C).
VITALS = {
    "59408-5": "spo2",
    "2708-6": "spo2",
    "9279-1": "respiratory_rate",
    "8480-6": "systolic_bp",
    "8310-5": "temperature_c",
}
INTEGER_VITALS = frozenset({"respiratory_rate", "systolic_bp"})
FLAGS = ("fatigue_bedridden", "health_professional")

# The JSON door's fields, as the FHIR elements that carry them: a refusal by the rules
# names what the referrer's software sent.
EXPRESSIONS: Mapping[str, str] = {
    "reference": "ServiceRequest.identifier",
    "patient": "Patient",
    "patient.first_name": "Patient.name.given",
    "patient.last_name": "Patient.name.family",
    "patient.birth_date": "Patient.birthDate",
    "patient.sex": "Patient.gender",
    "patient.nir": "Patient.identifier",
    "patient.phone": "Patient.telecom",
    "patient.email": "Patient.telecom",
    "patient.sms_consent": f"Patient.extension('{SMS_CONSENT}')",
    "patient.commune_insee": f"Patient.address.extension('{COMMUNE_INSEE}')",
    "patient.postcode": "Patient.address.postalCode",
    "patient.commune_name": "Patient.address.city",
    "patient.address": "Patient.address.line",
    "clinical": "ServiceRequest",
    "clinical.symptoms": f"Observation.where(code.coding.code='{SYMPTOM}')",
    "clinical.onset_date": "Observation.effectiveDateTime",
    "clinical.severity_signs": "ServiceRequest.reasonCode",
    "clinical.risk_factors": "ServiceRequest.reasonCode",
    "clinical.vitals.spo2": "Observation.where(code.coding.code='59408-5').valueQuantity",
    "clinical.vitals.respiratory_rate": (
        "Observation.where(code.coding.code='9279-1').valueQuantity"
    ),
    "clinical.vitals.systolic_bp": "Observation.where(code.coding.code='8480-6').valueQuantity",
    "clinical.vitals.temperature_c": ("Observation.where(code.coding.code='8310-5').valueQuantity"),
    "purpose": "ServiceRequest.code",
    "referrer": "ServiceRequest.requester",
    "referrer.identifier": "ServiceRequest.requester",
}


@dataclass(frozen=True)
class Issue:
    """One issue of an OperationOutcome: FHIR's issue type, the element, the French."""

    code: str
    diagnostics: str
    expression: str | None = None


@dataclass(frozen=True)
class Referral:
    """What a referral's referrer may read of it (intake's row, replayed)."""

    referral_id: str
    reference: str
    status: str
    detail: Mapping[str, Any]
    message: str
    final: bool
    received_at: str
    updated_at: str
    # Its history, oldest first: (what happened, its detail), where a booking the
    # status no longer holds (withdrawn, escalated...) is still found.
    history: tuple[tuple[str, Mapping[str, Any]], ...] = ()


def issues_from_reasons(reasons: Iterable[Reason]) -> list[Issue]:
    """The rules' refusals (the JSON door's reasons), each on the FHIR element."""
    issues = []
    for reason in reasons:
        field = reason.field or ""
        expression = EXPRESSIONS.get(field)
        while expression is None and "." in field:
            field = field.rsplit(".", 1)[0]
            expression = EXPRESSIONS.get(field)
        code = "required" if reason.code == "missing_field" else "invalid"
        issues.append(Issue(code, reason.message, expression or reason.field))
    return issues


def _fhir_issues(exc: ValidationError, root: str) -> list[Issue]:
    """``fhir.resources``' errors, in French (the JSON door's words), on the element."""
    issues = []
    for reason in reasons_from_validation_error(exc):
        path = root
        for part in (reason.field or "").split("."):
            if not part:
                continue
            path += f"[{part}]" if part.isdigit() else f".{part}"
        code = "required" if reason.code == "missing_field" else "structure"
        issues.append(Issue(code, reason.message, path))
    return issues


def submission(body: Any) -> dict[str, Any] | list[Issue]:
    """A FHIR body read as the JSON door's submission (its referrer left to the door),
    or every issue that stops it being read."""
    kind = body.get("resourceType") if isinstance(body, dict) else None
    if kind == "Bundle":
        try:
            bundle = Bundle.model_validate(body)
        except ValidationError as exc:
            return _fhir_issues(exc, "Bundle")
        if bundle.type != "transaction":
            return [Issue("invalid", "Le Bundle doit être de type « transaction ».", "Bundle.type")]
        resources = [e.get("resource") for e in body.get("entry") or []]
    elif kind == "ServiceRequest":
        try:
            ServiceRequest.model_validate(body)
        except ValidationError as exc:
            return _fhir_issues(exc, "ServiceRequest")
        resources = [body, *(body.get("contained") or [])]
    else:
        text = "Envoyez un Bundle de type « transaction » ou une ServiceRequest."
        return [Issue("structure", text, "resourceType")]
    return _read(r for r in resources if isinstance(r, dict))


def _read(resources: Iterable[dict[str, Any]]) -> dict[str, Any] | list[Issue]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    issues = [
        Issue("required", f"Il faut exactement une ressource {name} (reçu : {count}).", name)
        for name in ("ServiceRequest", "Patient")
        if (count := len(by_type.get(name, []))) != 1
    ]
    if issues:
        return issues
    request, patient = by_type["ServiceRequest"][0], by_type["Patient"][0]
    if request.get("status") != "active" or request.get("intent") != "order":
        text = "Une demande d'orientation a le statut « active » et l'intention « order »."
        return [Issue("invalid", text, "ServiceRequest.status")]
    identifiers = request.get("identifier") or [{}]
    return {
        "reference": identifiers[0].get("value"),
        "patient": _patient(patient),
        "clinical": _clinical(request, by_type.get("Observation", [])),
    }


def _patient(patient: dict[str, Any]) -> dict[str, Any]:
    names = patient.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    telecom = patient.get("telecom") or []
    phones = [t for t in telecom if t.get("system") in ("phone", "sms")]
    phones.sort(key=lambda t: t.get("use") != "mobile")
    address = (patient.get("address") or [{}])[0]
    lines = [str(line) for line in address.get("line") or []]
    fields = {
        "first_name": " ".join(name.get("given") or []) or None,
        "last_name": name.get("family"),
        "birth_date": patient.get("birthDate"),
        "sex": patient.get("gender"),
        "nir": next(
            (i.get("value") for i in patient.get("identifier") or [] if i.get("system") == INS_NIR),
            None,
        ),
        "phone": phones[0].get("value") if phones else None,
        "email": next((t.get("value") for t in telecom if t.get("system") == "email"), None),
        "sms_consent": _extension(patient, SMS_CONSENT, "valueBoolean"),
        "commune_insee": _extension(address, COMMUNE_INSEE, "valueCode"),
        "postcode": address.get("postalCode"),
        "commune_name": address.get("city"),
        "address": ", ".join(lines) or None,
    }
    # Absent stays absent: the model's defaults, and its "missing" for what it needs.
    return {key: value for key, value in fields.items() if value is not None}


def _extension(element: dict[str, Any], url: str, value: str) -> Any:
    return next((e.get(value) for e in element.get("extension") or [] if e.get("url") == url), None)


def _codes(concepts: Iterable[dict[str, Any]], system: str) -> list[str]:
    return [
        str(c.get("code"))
        for concept in concepts
        for c in concept.get("coding") or []
        if c.get("system") == system
    ]


def _clinical(request: dict[str, Any], observations: list[dict[str, Any]]) -> dict[str, Any]:
    reasons = request.get("reasonCode") or []
    symptoms: list[str] = []
    onsets: list[str] = []
    vitals: dict[str, Any] = {}
    for observation in observations:
        codes = {
            c.get("code")
            for c in (observation.get("code") or {}).get("coding") or []
            if c.get("system") == LOINC
        }
        if SYMPTOM in codes:
            value = observation.get("valueCodeableConcept") or {}
            coding = (value.get("coding") or [{}])[0]
            said = value.get("text") or coding.get("display") or coding.get("code")
            if said:
                symptoms.append(str(said))
            if isinstance(observation.get("effectiveDateTime"), str):
                onsets.append(observation["effectiveDateTime"][:10])
        for code in codes & VITALS.keys():
            vitals[VITALS[code]] = (observation.get("valueQuantity") or {}).get("value")
    for name in INTEGER_VITALS & vitals.keys():
        if isinstance(vitals[name], float) and vitals[name].is_integer():
            vitals[name] = int(vitals[name])
    signs = _codes(reasons, SEVERITY_SIGN)
    flags = set(_codes(reasons, CLINICAL_FLAG))
    clinical: dict[str, Any] = {
        "symptomatic": bool(symptoms or signs),
        "symptoms": symptoms,
        "severity_signs": signs,
        "risk_factors": _codes(reasons, RISK_FACTOR),
        "vitals": vitals,
        **{flag: flag in flags for flag in FLAGS},
    }
    if onsets:
        clinical["onset_date"] = min(onsets)
    return clinical


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """The refusal as FHIR says it: every issue, in French, on its element."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": issue.code,
                "diagnostics": issue.diagnostics,
                **({"expression": [issue.expression]} if issue.expression else {}),
            }
            for issue in issues
        ],
    }
    return _valid(OperationOutcome, body)


def _valid(model: Any, body: dict[str, Any]) -> dict[str, Any]:
    """What we send, checked by the same library that checks what we are sent."""
    model.model_validate(body)
    return body


# Our status, as a ServiceRequest's: the referral is being handled (active), was
# withdrawn (revoked), or the answer it asked for came (completed: a consultation, or a
# decision that ends our part: escalated to SAMU, home follow-up, refused).
REQUEST_STATUSES: Mapping[str, str] = {
    "received": "active",
    "regulated": "active",
    "held_for_regulator": "active",
    "waitlisted": "active",
    "appointment": "active",
    "escalated": "completed",
    "home_follow_up": "completed",
    "refused": "completed",
    "seen": "completed",
    "no_show": "completed",
}
APPOINTMENT_STATUSES: Mapping[str, str] = {
    "appointment": "booked",
    "seen": "fulfilled",
    "no_show": "noshow",
}


def service_request(referral: Referral) -> dict[str, Any]:
    """A referral as its referrer's software reads it: where it stands, in French too."""
    if referral.status == "cancelled":
        # A withdrawal ends the request; a cancelled appointment leaves it open.
        status = "revoked" if referral.final else "active"
    else:
        status = REQUEST_STATUSES.get(referral.status, "active")
    body = {
        "resourceType": "ServiceRequest",
        "id": referral.referral_id,
        "meta": {"lastUpdated": referral.updated_at},
        "extension": [{"url": STATUS_EXTENSION, "valueCode": referral.status}],
        "identifier": [{"system": REFERENCE_SYSTEM, "value": referral.reference}],
        "status": status,
        "intent": "order",
        "code": {"text": FHIR_SERVICE_REQUEST_NOTES["code"]},
        # The identity stays with intake: the referrer sent it, it is not sent back.
        "subject": {"display": FHIR_SERVICE_REQUEST_NOTES["subject"]},
        "authoredOn": referral.received_at,
        "note": [{"text": referral.message}],
    }
    return _valid(ServiceRequest, body)


# The history's entries that book an appointment (slot.assigned, a move).
BOOKINGS = frozenset({"appointment", "moved"})


def _booking(referral: Referral) -> tuple[Mapping[str, Any], str] | None:
    """The appointment the referral has, or last had, and its FHIR status: the status's
    own (booked, then fulfilled, no-show, cancelled); else the history's last booking,
    which the referral no longer holds (withdrawn, escalated...): cancelled."""
    detail = referral.detail
    if detail.get("appointment_id") and detail.get("start"):
        return detail, APPOINTMENT_STATUSES.get(referral.status, "cancelled")
    booked = [d for status, d in referral.history if status in BOOKINGS]
    if booked and booked[-1].get("appointment_id") and booked[-1].get("start"):
        return booked[-1], "cancelled"
    return None


def appointment(referral: Referral) -> dict[str, Any] | None:
    """The referral's booking, if it has had one (``None`` before any), with the centre
    as a Location and its Organization."""
    found = _booking(referral)
    if found is None:
        return None
    detail, status = found
    centre_id = str(detail.get("centre_id"))
    name = detail.get("centre_name") or centre_id
    location: dict[str, Any] = {
        "resourceType": "Location",
        "id": "centre",
        "identifier": [{"system": CENTRE_SYSTEM, "value": centre_id}],
        "name": name,
        "managingOrganization": {"reference": "#organisation"},
    }
    if detail.get("centre_address"):
        location["address"] = {"text": detail["centre_address"]}
    organisation = {
        "resourceType": "Organization",
        "id": "organisation",
        "identifier": [{"system": CENTRE_SYSTEM, "value": centre_id}],
        "name": name,
    }
    body = {
        "resourceType": "Appointment",
        "id": str(detail["appointment_id"]),
        "contained": [location, organisation],
        # As the SAS guide's FrAppointmentSAS: one identifier, with its system.
        "identifier": [{"system": APPOINTMENT_SYSTEM, "value": str(detail["appointment_id"])}],
        "status": status,
        "description": referral.message,
        "start": detail["start"],
        **({"end": detail["end"]} if detail.get("end") else {}),
        "basedOn": [{"reference": f"ServiceRequest/{referral.referral_id}"}],
        "participant": [
            {"actor": {"reference": "#centre", "display": name}, "status": "accepted"},
            {"actor": {"display": FHIR_SERVICE_REQUEST_NOTES["subject"]}, "status": "accepted"},
        ],
    }
    return _valid(Appointment, body)


def searchset(resources: Iterable[dict[str, Any]], base: str) -> dict[str, Any]:
    found = list(resources)
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in found
        ],
    }
    return _valid(Bundle, body)


def transaction_response(resource: dict[str, Any], created: bool) -> dict[str, Any]:
    """A transaction's answer: the ServiceRequest's entry (the Patient and Observations
    are the referral's, not resources of their own here)."""
    location = f"ServiceRequest/{resource['id']}"
    body = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {
                "resource": resource,
                "response": {
                    "status": "201 Created" if created else "200 OK",
                    "location": location,
                },
            }
        ],
    }
    return _valid(Bundle, body)


def capability_statement(date: str) -> dict[str, Any]:
    """What the door does: a server of ServiceRequests (create, read, $cancel), of
    Appointments (search by based-on), and of transactions."""
    json_only = [FHIR_JSON, "json"]
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Aiguillage",
        "kind": "instance",
        "implementation": {"description": FHIR_SERVICE_REQUEST_NOTES["implementation"]},
        "fhirVersion": FHIR_VERSION,
        "format": json_only,
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": FHIR_SERVICE_REQUEST_NOTES["security"],
                    "service": [{"text": "Bearer"}],
                },
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {
                        "type": "ServiceRequest",
                        "interaction": [{"code": "create"}, {"code": "read"}],
                        "operation": [
                            {
                                "name": "cancel",
                                "definition": f"{BASE}/OperationDefinition/ServiceRequest-cancel",
                            }
                        ],
                    },
                    {
                        "type": "Appointment",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [{"name": "based-on", "type": "reference"}],
                    },
                ],
            }
        ],
    }
    return _valid(CapabilityStatement, body)
