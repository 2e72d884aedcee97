"""A patient's phone number is a real one, kept in E.164; SMS consent needs a mobile."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.domain import submission as domain
from shared.events import Reason, ReferralSubmitted
from shared.events.phone import e164, takes_sms
from tests.strategies import valid_referral

TODAY = date(2020, 3, 25)


@pytest.mark.parametrize(
    ("given", "kept", "mobile"),
    [
        # Mainland mobiles and landlines, however they are spelt.
        ("06 12 34 56 78", "+33612345678", True),
        ("07.58.12.34.56", "+33758123456", True),
        ("+33 (0)6 12 34 56 78", "+33612345678", True),
        ("0033612345678", "+33612345678", True),
        ("01 23 45 67 89", "+33123456789", False),
        ("02-99-28-43-21", "+33299284321", False),
        ("09 72 12 34 56", "+33972123456", False),  # an internet box: no SMS
        ("0800 12 34 56", "+33800123456", False),  # toll-free: the mainland's
        # Overseas, in their national form: their own country code.
        ("0692 12 34 56", "+262692123456", True),  # La Réunion, mobile
        ("0262 12 34 56", "+262262123456", False),  # La Réunion, landline
        ("0639 01 23 45", "+262639012345", True),  # Mayotte, mobile (+262, not +269)
        ("0269 61 23 45", "+262269612345", False),  # Mayotte: not the mainland's 02
        ("0690 12 34 56", "+590690123456", True),  # Guadeloupe, mobile
        ("0590 27 12 34", "+590590271234", False),  # Guadeloupe, landline
        ("0696 12 34 56", "+596696123456", True),  # Martinique
        ("0694 12 34 56", "+594694123456", True),  # Guyane
        # Abroad: the international form.
        ("+32 470 12 34 56", "+32470123456", True),
        ("+262 692 12 34 56", "+262692123456", True),
    ],
)
def test_a_valid_number_is_kept_in_e164(given: str, kept: str, mobile: bool) -> None:
    assert e164(given) == kept
    assert takes_sms(kept) is mobile
    patient = _submitted(phone=given, sms_consent=False).patient
    assert patient.phone == kept


@pytest.mark.parametrize(
    "given",
    ["abc", "06 12 34 56 7", "06 12 34 56 78 9", "0000000000", "+", "12345", "+33 1"],
)
def test_what_is_no_number_is_refused_in_french(given: str) -> None:
    assert e164(given) is None and not takes_sms(given)
    with pytest.raises(ValidationError) as caught:
        _submitted(phone=given)
    [reason] = domain.reasons_from_validation_error(caught.value)
    assert (reason.code, reason.field) == ("invalid_phone", "patient.phone")
    assert reason.message.startswith("Numéro de téléphone invalide : un numéro français")
    # One message whatever the value: it never quotes it (it travels into logs).
    assert reason.message == domain.reasons_from_validation_error(_refusal("abc"))[0].message


def test_a_blank_number_is_no_number() -> None:
    """A practice's empty form field says "no number", as it always did."""
    assert _submitted(phone="  ", sms_consent=False).patient.phone is None
    result = domain.check(_submitted(phone="", sms_consent=True), TODAY)
    assert isinstance(result, domain.Refused)
    assert [r.code for r in result.reasons] == ["missing_consent_field"]


def test_sms_consent_for_a_landline_is_refused_not_dropped() -> None:
    result = domain.check(_submitted(phone="01 23 45 67 89", sms_consent=True), TODAY)
    assert isinstance(result, domain.Refused)
    [reason] = result.reasons
    assert (reason.code, reason.field) == ("sms_to_landline", "patient.phone")
    assert "n'est pas un mobile" in reason.message and "retirez le consentement" in reason.message
    # The same number without consent, or a mobile with it, is accepted.
    assert isinstance(
        domain.check(_submitted(phone="01 23 45 67 89", sms_consent=False), TODAY),
        domain.Accepted,
    )
    overseas = domain.check(_submitted(phone="0692 12 34 56", sms_consent=True), TODAY)
    assert isinstance(overseas, domain.Accepted)
    assert overseas.submission.patient.phone == "+262692123456"


def test_every_reason_at_once_with_a_bad_number() -> None:
    """Beside a schema error, the landline rule still runs; a number the schema refused
    is not judged again."""
    data = valid_referral()
    del data["patient"]["last_name"]
    data["patient"] |= {"phone": "01 23 45 67 89", "sms_consent": True}
    assert _every_reason(data) == {
        ("patient.last_name", "missing_field"),
        ("patient.phone", "sms_to_landline"),
    }
    data["patient"]["phone"] = "abc"
    assert _every_reason(data) == {
        ("patient.last_name", "missing_field"),
        ("patient.phone", "invalid_phone"),
    }


def _submitted(**patient: Any) -> ReferralSubmitted:
    data = valid_referral()
    data["patient"].update(patient)
    return ReferralSubmitted.model_validate(data)


def _refusal(phone: str) -> ValidationError:
    try:
        _submitted(phone=phone)
    except ValidationError as refused:
        return refused
    raise AssertionError(f"{phone!r} was accepted")


def _every_reason(data: dict[str, Any]) -> set[tuple[str | None, str]]:
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)
    schema = domain.reasons_from_validation_error(caught.value)
    reasons: tuple[Reason, ...] = schema + domain.reasons_beyond_schema(data, TODAY, schema)
    return {(r.field, r.code) for r in reasons}
