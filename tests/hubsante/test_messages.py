"""The door's reading and writing of the hub's format, against the hub's own files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from aiguillage.hubsante import cases, messages, schema
from shared.events import Decision, Sex

HUB = Path(__file__).parent / "data"  # the hub's published files (Apache 2.0, LICENSE_HEADER.txt)
CLIENT, LRM = "fr.health.aiguillage", "fr.health.samuA"


def wrapped(use_case: str, content: dict[str, Any], kind: str = "Report") -> dict[str, Any]:
    return messages.envelope(LRM, CLIENT, kind, use_case, content)


@pytest.mark.parametrize("path", sorted((HUB / "failing").glob("*.json")), ids=lambda p: p.name)
def test_every_failing_message_fails(path: Path) -> None:
    assert schema.errors(json.loads(path.read_text()))


@pytest.mark.parametrize(
    "path", sorted((HUB / "examples/RS-EDA").glob("*.json")), ids=lambda p: p.name
)
def test_every_case_example_wrapped_validates(path: Path) -> None:
    content = json.loads(path.read_text())["createCaseHealth"]
    assert schema.errors(wrapped("createCaseHealth", content)) == []


def test_what_the_door_sends_validates() -> None:
    sent = [
        messages.ack(CLIENT, LRM, f"{LRM}_x"),
        messages.error(CLIENT, LRM, messages.ErrorCode.INVALID_MESSAGE, "bad", f"{LRM}_x", {}),
        messages.appointment(
            CLIENT,
            LRM,
            appointment_id="c.rdv.1",
            method="CreateAppointment",
            status="booked",
            start="2026-12-01T09:30:00.123456+00:00",
            end="2026-12-01T09:50:00+00:00",
            centre_id="rennes-poterie",
            centre_name="École de la Poterie",
            regulator={"regulatorName": "X", "regulatorFirstname": "", "regulatorEmail": ""},
        ),
        messages.case_note(CLIENT, LRM, "fr.health.samuA.DRFR1", "Aiguillage : refus"),
    ]
    for message in sent:
        assert schema.errors(message) == [], message["distributionKind"]
        assert message["distributionID"].startswith(f"{CLIENT}_")


def test_age_gives_a_consistent_birth_date() -> None:
    assert cases.birth_date("P65Y", date(2024, 1, 4)) == date(1959, 1, 4)
    assert cases.birth_date("P21M", date(2024, 3, 31)) == date(2022, 6, 30)
    assert cases.birth_date("P10D", date(2024, 1, 4)) == date(2023, 12, 25)


def test_an_oriented_case_becomes_a_centre_15_referral() -> None:
    case = json.loads(
        (HUB / "examples/RS-EDA/RS-EDA_partageDossier_DidierMorel.01a.json").read_text()
    )["createCaseHealth"]
    case["decision"] = [
        {
            "operator": {"role": "MEDECIN", "label": "Dr Martin"},
            "creation": "2024-01-04T08:10:00+01:00",
            "decisionType": "ORIENT",
            "orientationType": "SANTE",
        }
    ]
    decision = cases.last_decision(case)
    assert decision is not None and decision.decision is Decision.ORIENT
    referral = cases.referral(case, LRM, decision)
    assert referral.referrer.kind.value == "centre_15" and referral.referrer.identifier == LRM
    assert referral.reference == case["caseId"]
    assert referral.patient.birth_date == date(1959, 1, 4)
    assert referral.patient.sex is Sex.MALE and referral.patient.commune_insee == "77360"
    assert referral.clinical.symptomatic and referral.clinical.symptoms


def test_a_case_without_names_is_insufficient() -> None:
    case = json.loads(
        (HUB / "examples/RS-EDA/RS-EDA_partageDossier_MonsieurX.01.json").read_text()
    )["createCaseHealth"]
    decision = cases.RegulatorDecision(Decision.ORIENT, False, "Dr", None)
    with pytest.raises(cases.Insufficient):
        cases.referral(case, LRM, decision)
