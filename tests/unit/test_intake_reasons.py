"""The rules that still run on a submission that fails the schema: on the raw data,
field by field, for the fields that did validate."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import date
from ipaddress import IPv4Address
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.intake.domain import submission as domain
from shared.events import Reason, ReferralSubmitted
from tests.strategies import valid_referral

TODAY = date(2020, 3, 25)


def every_reason(data: dict[str, Any]) -> set[tuple[str | None, str]]:
    """What intake answers: the schema's reasons, then the rules' on what validated."""
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)
    schema = domain.reasons_from_validation_error(caught.value)
    reasons: tuple[Reason, ...] = schema + domain.reasons_beyond_schema(data, TODAY, schema)
    return {(r.field, r.code) for r in reasons}


def broken(**patient: Any) -> dict[str, Any]:
    data = valid_referral()
    del data["patient"]["last_name"]  # the schema error that used to stop the rules
    data["patient"].update(patient)
    return data


def test_the_rules_run_beside_a_schema_error() -> None:
    data = broken(birth_date="2021-01-01", postcode="00000")
    del data["patient"]["commune_insee"]
    data["clinical"]["onset_date"] = "2020-03-30"
    data["clinical"]["vitals"] = {"spo2": 20, "respiratory_rate": 18}
    assert every_reason(data) == {
        ("patient.last_name", "missing_field"),
        ("patient.birth_date", "birth_date_in_future"),
        ("clinical.onset_date", "onset_in_future"),
        ("clinical.vitals.spo2", "vital_out_of_range"),
        ("patient.commune_insee", "commune_unknown_postcode"),
    }


def test_consent_and_screening_too() -> None:
    data = broken(phone=None, sms_consent=True)
    data["purpose"] = "screening"
    data["clinical"] = {"symptomatic": False}
    assert every_reason(data) == {
        ("patient.last_name", "missing_field"),
        ("patient.phone", "missing_consent_field"),
        ("purpose", "screening_not_offered"),
    }


def test_a_field_that_fails_the_schema_gets_no_rule_on_top() -> None:
    data = broken(birth_date="not a date", postcode="abc")
    del data["patient"]["commune_insee"]
    data["clinical"]["vitals"] = {"spo2": "high", "systolic_bp": 400}
    data["clinical"]["onset_date"] = 12
    reasons = every_reason(data)
    assert any(
        field == "patient.birth_date" and code.startswith("invalid_") for field, code in reasons
    )
    codes = {code for _, code in reasons}
    assert "birth_date_in_future" not in codes and "onset_in_future" not in codes
    # The commune cannot be resolved on a postcode the schema refused: no guess.
    assert not any(code.startswith("commune_") for code in codes)
    # The other vital did validate: its rule runs.
    assert ("clinical.vitals.systolic_bp", "vital_out_of_range") in reasons
    assert ("clinical.vitals.spo2", "invalid_float_parsing") in reasons


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d.update(patient="a string"),
        lambda d: d.update(clinical=None),
        lambda d: d["clinical"].update(vitals=[1, 2]),
        lambda d: d.update(purpose={"x": 1}),
        lambda d: d.pop("patient"),
    ],
)
def test_shapes_the_rules_cannot_read_are_left_to_the_schema(mangle: Any) -> None:
    data = copy.deepcopy(valid_referral())
    mangle(data)
    # No crash, and nothing but the schema's reasons about what it cannot read.
    assert every_reason(data)


def test_a_valid_submission_reads_the_same_through_both_paths() -> None:
    data = valid_referral()
    data["patient"]["birth_date"] = "2021-01-01"
    data["clinical"]["vitals"] = {"spo2": 140}
    submission = ReferralSubmitted.model_validate(data)
    refused = domain.check(submission, TODAY)
    assert isinstance(refused, domain.Refused)
    assert set(domain.reasons_beyond_schema(data, TODAY)) == set(refused.reasons)


# --- what the sender reads: French, the codes unchanged ------------------------------


def messages(data: dict[str, Any]) -> dict[tuple[str | None, str], str]:
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)
    schema = domain.reasons_from_validation_error(caught.value)
    reasons = schema + domain.reasons_beyond_schema(data, TODAY, schema)
    return {(r.field, r.code): r.message for r in reasons}


def test_the_schemas_refusals_are_told_in_french() -> None:
    data = broken(birth_date="2021-01-01", sms_consent=True, phone=None)
    data["clinical"]["symptoms"] = ["x" * 101]
    data["clinical"]["vitals"] = {"spo2": 20, "temperature_c": "hot"}
    data["referrer"]["kind"] = "pharmacist"
    data["surprise"] = 1
    said = messages(data)
    assert said[("patient.last_name", "missing_field")] == "Champ obligatoire manquant."
    assert said[("clinical.symptoms.0", "invalid_string_too_long")] == (
        "Texte trop long (au plus 100 caractères)."
    )
    assert said[("clinical.vitals.temperature_c", "invalid_float_parsing")] == (
        "Un nombre est attendu."
    )
    kinds = said[("referrer.kind", "unknown_referrer_kind")]
    assert kinds.startswith("Valeur inconnue ; valeurs possibles : ") and " ou " in kinds
    assert said[("surprise", "unknown_field")] == "Champ inconnu : il n'est pas accepté."
    # The rules beside them, French too.
    assert said[("patient.birth_date", "birth_date_in_future")] == (
        "La date de naissance est dans le futur."
    )
    assert said[("clinical.vitals.spo2", "vital_out_of_range")] == (
        "SpO2 20 : hors des valeurs plausibles (50 à 100)."
    )
    assert said[("patient.phone", "missing_consent_field")] == (
        "Consentement aux SMS donné sans numéro de téléphone."
    )


def test_a_custom_refusal_is_told_in_french_and_an_unlisted_one_not_in_english() -> None:
    data = valid_referral()
    data["patient"]["nir"] = "123"
    data["patient"]["birth_date"] = "1980-02-30"  # a type this list does not word
    said = messages(data)
    assert said[("patient.nir", "invalid_nir_format")].startswith("Le NIR comporte 15 caractères")
    assert said[("patient.birth_date", "invalid_date_from_datetime_parsing")] == (
        "Une date AAAA-MM-JJ est attendue."
    )
    # A type the list does not word reads "Valeur invalide.", never pydantic's English.
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(IPv4Address).validate_python("not an address")
    [reason] = domain.reasons_from_validation_error(caught.value)
    assert (reason.code, reason.message) == ("invalid_ip_v4_address", "Valeur invalide.")


def test_only_centre_15_attaches_a_regulators_decision() -> None:
    decision = {"regulator_id": "Dr Sophie Bernard", "decision": "orient", "priority": "urgent"}
    from_gp = valid_referral() | {"regulator_decision": decision}
    refused = domain.examine(from_gp, TODAY)
    assert isinstance(refused, domain.Refused)
    assert ("regulator_decision", "decision_not_allowed") in {
        (r.field, r.code) for r in refused.reasons
    }
    from_centre_15 = copy.deepcopy(from_gp)
    from_centre_15["referrer"] = {"kind": "centre_15", "identifier": "samu-35"}
    accepted = domain.examine(from_centre_15, TODAY)
    assert isinstance(accepted, domain.Accepted), accepted
    assert accepted.submission.regulator_decision is not None


def test_a_referral_without_a_decision_keeps_its_fingerprint() -> None:
    """A referral kept before the field existed is resubmitted without a conflict."""
    submission = ReferralSubmitted.model_validate(valid_referral())
    before = json.dumps(
        submission.model_dump(mode="json", exclude={"regulator_decision"}), sort_keys=True
    )
    assert domain.fingerprint(submission) == hashlib.sha256(before.encode()).hexdigest()
