"""Intake's rules: what makes a referral acceptable, with every reason at once."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from services.intake import domain
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
        ({"purpose": "screening"}, {"screening_not_offered"}),
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
            clinical__vitals={"spo2": 20, "respiratory_rate": 200},
        )
    )
    assert codes(result) == {"screening_not_offered", "birth_date_in_future", "vital_out_of_range"}
    assert isinstance(result, domain.Refused)
    assert {r.field for r in result.reasons} >= {
        "clinical.vitals.spo2",
        "clinical.vitals.respiratory_rate",
    }


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
