"""Personal data never reaches a log line."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest
import structlog
from sqlalchemy.exc import DataError

from shared.events import PatientIdentity
from shared.logging import REDACTED, configure_logging, scrub_text

SECRETS = ["Dupont-Lajoie", "Éloïse", "185057800608491", "06 12 34 56 78", "eloise@exemple.fr"]


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    configure_logging("test", "DEBUG", json=True)
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(_sensitive=("Dupont-Lajoie", "Éloïse"))
    log.info(
        "patient Éloïse DUPONT-LAJOIE, NIR 1 85 05 78 006 084 91, tel +33 6 12 34 56 78",
        first_name="Éloïse",
        email="eloise@exemple.fr",
        nir="185057800608491",
        detail={"phone": "0612345678", "note": "écrire à eloise@exemple.fr"},
        items=["06.12.34.56.78"],
    )
    try:
        raise ValueError("bad value 185057800608491 for Dupont-Lajoie")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiguillage.stdlib").warning("stdlib: mail eloise@exemple.fr tel 0612345678")
    structlog.contextvars.clear_contextvars()
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_no_personal_data_in_any_line(lines: list[dict[str, object]]) -> None:
    assert len(lines) == 3
    text = json.dumps(lines, ensure_ascii=False).lower()
    for secret in SECRETS:
        assert secret.lower() not in text, secret
    for fragment in ["0612345678", "06.12.34.56.78", "+33 6 12 34 56 78", "1 85 05 78 006 084 91"]:
        assert fragment not in text
    assert REDACTED in text


def test_redaction_keeps_what_is_not_personal() -> None:
    text = "referral 3f2b, centre rennes-chu, 12 patients, 2020-03-25 09:20, département 35"
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "phone", ["+262692123456", "+590 590 27 12 34", "+32 470 12 34 56", "0692 12 34 56"]
)
def test_numbers_as_intake_keeps_them_go_too(phone: str) -> None:
    # E.164, overseas and abroad included: what intake stores and the notifier sends.
    assert scrub_text(f"sms to {phone} failed at 2020-03-25T09:20:00+00:00") == (
        f"sms to {REDACTED} failed at 2020-03-25T09:20:00+00:00"
    )


# What intake binds for the patient in hand, and an error quoting it the way SQLAlchemy
# quotes a failed statement's parameters.
PATIENT = ("Éloïse", "Dupont", date(1985, 5, 17), "285057800608491", "12 rue de la Paix, Rennes")
SQL_ERROR = str(
    DataError(
        "INSERT INTO identities (first_name, last_name, birth_date, nir, address) "
        "VALUES (?, ?, ?, ?, ?)",
        PATIENT,
        Exception("value too long for type character varying(21)"),
    )
)


def test_a_failed_statement_s_parameters_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    assert "datetime.date(1985, 5, 17)" in SQL_ERROR  # what the redactor must catch
    configure_logging("test", "DEBUG", json=True)
    structlog.contextvars.bind_contextvars(_sensitive=PATIENT)
    log = structlog.get_logger("t")
    try:
        raise DataError("INSERT INTO identities ...", PATIENT, Exception("too long"))
    except DataError:
        log.exception("insert failed")
    log.warning("retrying", error=SQL_ERROR)
    logging.getLogger("sqlalchemy.engine").error(SQL_ERROR)
    structlog.contextvars.clear_contextvars()
    text = capsys.readouterr().err
    assert text.count(REDACTED) >= 15
    for fragment in ("Éloïse", "Dupont", "1985", "2850578", "rue de la Paix", "Rennes"):
        assert fragment.lower() not in text.lower(), fragment
    assert "INSERT INTO identities" in text  # the error itself stays readable


def test_a_birth_date_is_redacted_in_every_form() -> None:
    text = "born 1985-05-17, le 17/05/1985, datetime.date(1985, 5, 17); seen 2020-03-25"
    assert scrub_text(text, [date(1985, 5, 17)]) == (
        f"born {REDACTED}, le {REDACTED}, {REDACTED}; seen 2020-03-25"
    )


def test_intake_binds_the_identity_as_given_and_as_checked() -> None:
    given = {
        "first_name": "Éloïse",
        "last_name": "Dupont-Lajoie",
        "birth_date": "1985-05-17",
        "nir": "2 85 05 78 006 084 41",
        "phone": "06 12 34 56 78",
        "email": "Eloise.DL@Exemple.FR",
        "address": "12 rue de la Paix, Rennes",
    }
    patient = PatientIdentity.model_validate(given)
    assert patient.nir == "285057800608441" and patient.email == "Eloise.DL@exemple.fr"
    sensitive = patient.personal_values(given=given)
    text = (
        f"{given!r} {patient!r} 17/05/1985 Dupont-Lajoie eloise.dl@exemple.fr "
        "12 RUE DE LA PAIX, RENNES"
    )
    scrubbed = scrub_text(text, sensitive)
    for value in [*given.values(), patient.nir, patient.email, "17/05/1985", "1985, 5, 17"]:
        assert str(value).lower() not in scrubbed.lower(), value


def test_regex_characters_are_literal_and_short_values_ignored() -> None:
    text = "M. O'Brien (Jr.) + [x]* a.b axb X, Obrien Jr"
    assert scrub_text(text, ["O'Brien (Jr.)", "[x]*", "a.b", "X", "", " "]) == (
        f"M. {REDACTED} + {REDACTED} {REDACTED} axb X, Obrien Jr"
    )


def test_the_longest_value_goes_whole() -> None:
    assert scrub_text("Dupont-Lajoie", ["Dupont", "Dupont-Lajoie"]) == REDACTED


def test_the_reader_of_an_identity_is_kept_and_the_patient_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The access trail says who read (a regulator's login, e-mail-like), while the
    patient's name and phone in the same line still go."""
    configure_logging("test", "DEBUG", json=True)
    structlog.contextvars.bind_contextvars(_sensitive=("Dupont-Lajoie", "Éloïse"))
    structlog.get_logger("t").info(
        "identity read by centre 15 for Éloïse Dupont-Lajoie, 06 12 34 56 78",
        referral_id="3f2b",
        reader="r.le-gall@samu35.fr",
        phone="06 12 34 56 78",
        note="rappeler eloise@exemple.fr",
    )
    structlog.contextvars.clear_contextvars()
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert line["reader"] == "r.le-gall@samu35.fr"
    assert line["phone"] == REDACTED and line["note"] == f"rappeler {REDACTED}"
    text = json.dumps(line, ensure_ascii=False).lower()
    for secret in ("dupont-lajoie", "éloïse", "06 12 34 56 78", "eloise@exemple.fr"):
        assert secret not in text, secret


def test_a_reader_field_still_loses_a_patient_s_own_values() -> None:
    from shared.logging import PersonalDataRedactor, _literals

    redactor = PersonalDataRedactor()
    cleaned = redactor._clean("reader", "Dupont 0612345678", _literals(["Dupont"]))
    assert cleaned == f"{REDACTED} {REDACTED}"


def test_at_debug_the_libraries_that_quote_raw_data_stay_at_info(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # aiosqlite logs each statement with its parameters, aiormq each frame with its
    # payload: a name there has no pattern and no key (tests/e2e/test_no_identity_leaks.py).
    configure_logging("test", "DEBUG", json=True)
    logging.getLogger("aiosqlite").debug("executing INSERT ... ('Zyxwvutsrqp',)")
    logging.getLogger("aiormq.connection").debug("Prepare to send b'Zyxwvutsrqp'")
    logging.getLogger("aiguillage.own").debug("our own debug line")
    text = capsys.readouterr().err
    assert "Zyxwvutsrqp" not in text
    assert "our own debug line" in text


def test_a_search_in_a_logged_url_goes() -> None:
    # The console's client logs each call: a referrer's list searched by a name.
    line = 'HTTP Request: GET http://intake/referrals?q=DUPONT%20Eloise&limit=100 "200 OK"'
    assert scrub_text(line) == (
        f'HTTP Request: GET http://intake/referrals?q={REDACTED}&limit=100 "200 OK"'
    )
    assert scrub_text("/territoire?departement=35&q=") == "/territoire?departement=35&q="
