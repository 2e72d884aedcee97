"""The NIR is checked: its shape and its control key, each refused with its own code,
and never quoted back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.domain import submission as domain
from shared.events import PatientIdentity, ReferralSubmitted
from shared.events.nir import check_nir, nir_key

VALID = "285057800608441"  # tests/helpers.py's patient


def patient(nir: str | None) -> dict[str, Any]:
    return {"first_name": "Éloïse", "last_name": "Dupont", "birth_date": "1985-05-17", "nir": nir}


def submission(nir: str) -> dict[str, Any]:
    return {
        "referrer": {"kind": "gp", "identifier": "10001234567", "reply_to": "cab-1"},
        "reference": "ref-1",
        "patient": {**patient(nir), "commune_insee": "35238"},
        "clinical": {"symptomatic": True},
    }


def with_key(first13: str) -> str:
    return f"{first13}{nir_key(first13):02d}"


def test_the_key_is_97_minus_the_number_modulo_97() -> None:
    assert nir_key("2850578006084") == 41
    assert nir_key("1850578006084") == 91
    # Corsica: 2A counts as 19, 2B as 18.
    assert nir_key("185052A006084") == 97 - 1850519006084 % 97
    assert nir_key("185052B006084") == 97 - 1850518006084 % 97


@pytest.mark.parametrize(
    "nir",
    [
        VALID,
        "2 85 05 78 006 084 41",  # as printed on a carte Vitale
        with_key("185052A006084"),
        with_key("185052B006084").replace("B", "b"),  # lower case, kept upper
        with_key("3850578006084"),  # special and temporary registrations: 3, 4, 7, 8
        with_key("4850578006084"),
        with_key("7850578006084"),
        with_key("8850578006084"),
        with_key("1852078006084"),  # INSEE's months 20-42 and 50-99 (month unknown)
        with_key("1854278006084"),
        with_key("1855078006084"),
        with_key("1859978006084"),
        with_key("1851299351001"),  # born abroad: département 99
    ],
)
def test_a_valid_nir_is_kept_without_spaces(nir: str) -> None:
    kept = PatientIdentity.model_validate(patient(nir)).nir
    assert kept == nir.replace(" ", "").upper()
    assert kept is not None and len(kept) == 15


@pytest.mark.parametrize(
    "nir",
    [
        "28505780060844",  # 14 characters
        "2850578006084411",  # 16
        "585057800608441",  # sex digit 5
        "685057800608441",
        "285007800608441",  # month 00
        "285137800608441",  # month 13
        "285437800608441",  # month 43-49
        "285497800608441",
        "285052C00608441",  # only 2A and 2B
        "28505780060844X",
        "2-85-05-78-006-084-41",  # spaces only
        "２85057800608441",  # a full-width digit
        "",
    ],
)
def test_a_malformed_nir_is_refused_as_such(nir: str) -> None:
    assert _codes(nir) == {"invalid_nir_format"}


def test_a_wrong_key_is_refused_as_such() -> None:
    assert _codes("285057800608491") == {"invalid_nir_key"}
    assert _codes("2 85 05 78 006 084 42") == {"invalid_nir_key"}


def test_an_over_long_nir_is_refused_before_it_is_read() -> None:
    # 21 characters (15 and 6 spaces) is the column's length: beyond, not even parsed.
    assert _codes("2 85 05 78 006 084  41") == {"invalid_string_too_long"}


@pytest.mark.parametrize("nir", ["285057800608491", "285057800608", "2 85 05 78 006 084 42"])
def test_a_refusal_never_quotes_the_nir(nir: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(submission(nir))
    reasons = domain.reasons_from_validation_error(caught.value)
    told = json.dumps([r.model_dump(mode="json") for r in reasons])
    assert [r.field for r in reasons] == ["patient.nir"]
    for fragment in (nir, nir.replace(" ", ""), nir[:13]):
        assert fragment not in told
        # Nor the exception's text, should it reach a log or a dead letter.
        assert fragment not in str(caught.value)


def test_no_nir_is_no_nir() -> None:
    assert PatientIdentity.model_validate(patient(None)).nir is None


def test_the_pseudonym_is_the_same_with_or_without_spaces() -> None:
    spaced = ReferralSubmitted.model_validate(submission("2 85 05 78 006 084 41"))
    compact = ReferralSubmitted.model_validate(submission(VALID))
    assert domain.pseudonym("k", spaced) == domain.pseudonym("k", compact)


def test_check_nir_alone() -> None:
    assert check_nir(" 2 85 05 78 006 084 41 ") == VALID


def _codes(nir: str) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(submission(nir))
    return {r.code for r in domain.reasons_from_validation_error(caught.value)}
