"""Intake's rules: what makes a referral acceptable, with every reason at once."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from services.intake.domain import submission as domain
from shared.events import ReferralSubmitted

TODAY = date(2020, 3, 25)


def submission(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "referrer": {"kind": "gp", "identifier": "10001234567", "reply_to": "cab-1"},
        "reference": "ref-1",
        "patient": {
            "first_name": "Jeanne",
            "last_name": "Martin",
            "birth_date": "1950-02-01",
            "sex": "female",
            "phone": "0612345678",
            "sms_consent": True,
            "commune_insee": "35238",
        },
        "clinical": {"symptomatic": True, "onset_date": "2020-03-23", "vitals": {"spo2": 96}},
    }
    for path, value in changes.items():
        target = base
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]  # type: ignore[assignment]
        target[leaf] = value
    return base


def check(data: dict[str, object]) -> domain.Accepted | domain.Refused:
    return domain.check(ReferralSubmitted.model_validate(data), TODAY)


def codes(result: domain.Accepted | domain.Refused) -> set[str]:
    assert isinstance(result, domain.Refused)
    return {r.code for r in result.reasons}


def test_a_good_referral_is_accepted_with_its_commune_and_age() -> None:
    result = check(submission())
    assert isinstance(result, domain.Accepted)
    assert result.commune.name == "Rennes" and result.commune.departement == "35"
    assert result.age == 70


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {
                "purpose": "screening",
                "clinical": {"symptomatic": False, "vitals": {"spo2": 98}},
            },
            {"screening_not_offered"},
        ),
        ({"patient__birth_date": "2020-04-01"}, {"birth_date_in_future"}),
        ({"patient__birth_date": "1880-01-01"}, {"birth_date_implausible"}),
        ({"clinical__onset_date": "2020-03-26"}, {"onset_in_future"}),
        ({"clinical__vitals": {"spo2": 140}}, {"vital_out_of_range"}),
        ({"clinical__vitals": {"respiratory_rate": 2}}, {"vital_out_of_range"}),
        ({"clinical__vitals": {"systolic_bp": 400}}, {"vital_out_of_range"}),
        ({"clinical__vitals": {"temperature_c": 50}}, {"vital_out_of_range"}),
        ({"patient__phone": None}, {"missing_consent_field"}),
        ({"patient__commune_insee": "99999"}, {"commune_unknown_insee"}),
        ({"patient__commune_insee": None}, {"commune_missing"}),
    ],
)
def test_refusals_have_stable_codes(changes: dict[str, object], expected: set[str]) -> None:
    assert codes(check(submission(**changes))) == expected


def test_every_reason_at_once() -> None:
    result = check(
        submission(
            purpose="screening",
            patient__birth_date="2021-01-01",
            clinical={"symptomatic": False, "vitals": {"spo2": 20, "respiratory_rate": 200}},
        )
    )
    # Not screening_not_offered: vitals this far out are a typing error or a severe
    # patient, and the corrected referral must reach regulation, not a screening refusal.
    assert codes(result) == {"birth_date_in_future", "vital_out_of_range"}
    assert isinstance(result, domain.Refused)
    assert {r.field for r in result.reasons} >= {
        "clinical.vitals.spo2",
        "clinical.vitals.respiratory_rate",
    }


# --- a screening request: intake refuses it only when nothing clinical shows -----------

NOTHING: dict[str, object] = {"symptomatic": False, "symptoms": [], "vitals": {"spo2": 98}}


def test_a_screening_request_showing_nothing_at_all_is_refused() -> None:
    for clinical in (NOTHING, {"symptomatic": False}):
        result = check(submission(purpose="screening", clinical=clinical))
        assert codes(result) == {"screening_not_offered"}


@pytest.mark.parametrize(
    "clinical",
    [
        pytest.param(NOTHING | {"vitals": {"spo2": 88}}, id="spo2-88"),
        pytest.param(NOTHING | {"vitals": {"spo2": 94}}, id="spo2-below-normal"),
        pytest.param(NOTHING | {"severity_signs": ["confusion"]}, id="confusion"),
        pytest.param(NOTHING | {"vitals": {"respiratory_rate": 26}}, id="respiratory-rate"),
        pytest.param(NOTHING | {"vitals": {"systolic_bp": 85}}, id="systolic-bp"),
        pytest.param(NOTHING | {"vitals": {"temperature_c": 39.2}}, id="fever"),
        pytest.param(NOTHING | {"fatigue_bedridden": True}, id="fatigue"),
        pytest.param(NOTHING | {"symptoms": ["cough"]}, id="a-symptom"),
        pytest.param(NOTHING | {"symptomatic": True}, id="symptomatic"),
    ],
)
def test_a_screening_request_that_could_hold_a_sign_goes_on_to_regulation(
    clinical: dict[str, object],
) -> None:
    # Regulation decides with the protocol: it escalates a sign, refuses plain screening.
    result = check(submission(purpose="screening", clinical=clinical))
    assert isinstance(result, domain.Accepted)
    assert result.submission.purpose == "screening"


def test_confusion_at_81_on_a_screening_request_goes_on_to_regulation() -> None:
    result = check(
        submission(
            purpose="screening",
            patient__birth_date="1939-01-10",
            clinical={"symptomatic": False, "severity_signs": ["confusion"]},
        )
    )
    assert isinstance(result, domain.Accepted) and result.age == 81


def test_ambiguous_postcode_is_refused_with_the_candidates_or_resolved_by_name() -> None:
    refused = check(submission(patient__commune_insee=None, patient__postcode="35760"))
    assert codes(refused) == {"commune_ambiguous_postcode"}
    assert isinstance(refused, domain.Refused)
    assert "Saint-Grégoire" in refused.reasons[0].message
    assert "Montgermont" in refused.reasons[0].message
    resolved = check(
        submission(
            patient__commune_insee=None,
            patient__postcode="35760",
            patient__commune_name="st gregoire",
        )
    )
    assert isinstance(resolved, domain.Accepted) and resolved.commune.insee == "35278"


def test_schema_errors_become_reasons_for_every_field() -> None:
    data = submission(referrer={"kind": "pharmacist", "identifier": "x"})
    data["patient"] = {"first_name": ""}
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)
    reasons = domain.reasons_from_validation_error(caught.value)
    by_field = {r.field: r.code for r in reasons}
    assert by_field["referrer.kind"] == "unknown_referrer_kind"
    assert by_field["patient.last_name"] == "missing_field"
    assert by_field["patient.birth_date"] == "missing_field"
    assert by_field["patient.first_name"] == "invalid_string_too_short"


def test_pseudonym_is_stable_keyed_and_not_the_identity() -> None:
    a = ReferralSubmitted.model_validate(submission())
    b = ReferralSubmitted.model_validate(
        submission(patient__first_name="JEANNE", patient__last_name="martin ")
    )
    assert domain.pseudonym("k", a) == domain.pseudonym("k", b)
    assert domain.pseudonym("k", a) != domain.pseudonym("other-key", a)
    assert "martin" not in domain.pseudonym("k", a).lower()


def test_fingerprint_changes_with_content() -> None:
    a = ReferralSubmitted.model_validate(submission())
    b = ReferralSubmitted.model_validate(submission(clinical__vitals={"spo2": 95}))
    assert domain.fingerprint(a) == domain.fingerprint(
        ReferralSubmitted.model_validate(submission())
    )
    assert domain.fingerprint(a) != domain.fingerprint(b)


@pytest.mark.parametrize(
    ("birth", "age"), [("1950-03-25", 70), ("1950-03-26", 69), ("1950-03-24", 70)]
)
def test_age_on_the_day(birth: str, age: int) -> None:
    assert domain.age_on(date.fromisoformat(birth), TODAY) == age
