"""What people read from the notifier: French, Paris time labelled, the place said
right, the referrer named, the test the centre prescribes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notifier.domain import patient_notices, templates
from services.notifier.domain.patient_notices import Visit
from services.regulation.domain.protocol import default_protocol
from services.regulation.domain.rules import Case, decide
from shared.events import Clinical, Purpose, ReferrerKind

WINTER = datetime(2020, 3, 24, 15, 40, tzinfo=UTC)  # UTC+1 in Paris
SUMMER = datetime(2020, 7, 2, 14, 40, tzinfo=UTC)  # UTC+2 in Paris


@pytest.mark.parametrize(
    ("instant", "read"),
    [
        (WINTER, "24/03/2020 à 16h40 (heure de Paris)"),
        (SUMMER, "02/07/2020 à 16h40 (heure de Paris)"),
        # Stored naive, meaning UTC (SQLite gives them back so).
        (datetime(2020, 3, 24, 15, 40), "24/03/2020 à 16h40 (heure de Paris)"),
    ],
)
def test_times_are_paris_time_and_say_so(instant: datetime, read: str) -> None:
    assert templates.local_time(instant) == read


def test_every_notice_gives_paris_time_labelled() -> None:
    visit = Visit(WINTER, "École de la Poterie", None, "35238")
    patients = [
        patient_notices.appointment(visit, "gp", None),
        patient_notices.moved(visit, SUMMER, "service", "centre suspendu : fermeture", None),
        *(patient_notices.cancelled(WINTER, by, "motif", "gp") for by in ("patient", "service")),
    ]
    texts = [
        templates.centre_new_patient("pat-1", WINTER, "asap", 2, True),
        templates.centre_rescheduled("pat-1", WINTER, "rennes-cleunay"),
        templates.centre_cancelled("pat-1", WINTER, "centre suspendu : fermeture"),
        *(text for notice in patients for text in (notice.text, notice.sms)),
        templates.referrer_outcome(
            "appointment", {"start": WINTER.isoformat(), "centre_name": "X"}
        ),
    ]
    for text in texts:
        assert "16h40 (heure de Paris)" in text, text
        assert "15h40" not in text


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("École de la Poterie", "au centre « École de la Poterie »"),
        ("SOS Médecins Cleunay", "au centre « SOS Médecins Cleunay »"),
        ("Maison médicale de garde", "au centre « Maison médicale de garde »"),
        ("CHU Pontchaillou", "au CHU Pontchaillou"),
        (
            "Centre hospitalier privé de Saint-Grégoire",
            "au Centre hospitalier privé de Saint-Grégoire",
        ),
    ],
)
def test_the_place_takes_the_right_preposition(name: str, said: str) -> None:
    where = templates.where_at(name, "12 rue de la Poterie", "35238")
    assert where == f"{said}, 12 rue de la Poterie, Rennes"
    visit = Visit(WINTER, name, "12 rue de la Poterie", "35238")
    text = patient_notices.appointment(visit, "gp", None).text
    assert f"16h40 (heure de Paris) {said}, 12 rue de la Poterie, Rennes." in text
    assert "au École" not in text and "au Maison" not in text and "au SOS" not in text


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("centre_15", "à la suite de l'avis du Centre 15 (SAMU),"),
        ("sos_medecins", "à la suite de l'avis de SOS Médecins,"),
        ("emergency_department", "à la suite de l'avis du service des urgences,"),
        ("gp", "à la suite de l'avis de votre médecin,"),
        # Not known yet: nobody named rather than the wrong one.
        (None, "à la suite d'un avis médical,"),
    ],
)
def test_the_patient_notice_names_who_referred(kind: str | None, named: str) -> None:
    text = patient_notices.appointment(
        Visit(WINTER, "CHU Pontchaillou", None, "35238"), kind, None
    ).text
    assert text.startswith(f"Bonjour, {named} un rendez-vous")
    if kind != "gp":
        assert "votre médecin" not in text


def test_the_centre_is_told_the_test_to_prescribe_in_french() -> None:
    new = templates.centre_new_patient("pat-1", WINTER, "asap", 2, True)
    assert new == (
        "Nouveau patient orienté : pat-1, rendez-vous le 24/03/2020 à 16h40 (heure de Paris), "
        "box 2, priorité dès que possible. Test à prescrire : oui."
    )
    assert templates.centre_new_patient("pat-1", WINTER, "routine", 1).endswith(
        "priorité ordinaire. Test à prescrire : non."
    )
    moved = templates.centre_rescheduled("pat-1", WINTER, "rennes-cleunay", True)
    assert moved.endswith("Test à prescrire : oui.")


def test_the_referrer_outcome_carries_the_test_and_french_reasons() -> None:
    detail: dict[str, object] = {
        "start": WINTER.isoformat(),
        "centre_name": "École de la Poterie",
        "test_eligible": True,
    }
    assert templates.referrer_outcome("appointment", detail) == (
        "Rendez-vous attribué le 24/03/2020 à 16h40 (heure de Paris), École de la Poterie. "
        "Test à prescrire : oui."
    )
    assert templates.referrer_outcome("rescheduled", {**detail, "test_eligible": False}).endswith(
        "Test à prescrire : non."
    )
    # An outcome kept from before the verdict travelled says nothing of it.
    del detail["test_eligible"]
    assert "Test" not in templates.referrer_outcome("appointment", detail)
    cancelled = templates.referrer_outcome(
        "cancelled", {"reason": "centre suspendu : fermeture", "by": "service"}
    )
    assert cancelled == "Rendez-vous annulé (centre suspendu : fermeture)."


def _regulated(*reasons: tuple[str, str]) -> dict[str, object]:
    return {
        "reasons": "; ".join(message for _, message in reasons),
        "reason_details": [{"code": code, "message": message} for code, message in reasons],
    }


def test_the_referrer_is_told_regulations_french_reason() -> None:
    # The reasons as regulation words them under v1, not a copy of its wording here.
    def outcome(**clinical: object) -> dict[str, object]:
        case = Case(
            age=72,
            clinical=Clinical.model_validate({"symptomatic": True, **clinical}),
            referrer_kind=ReferrerKind.GP,
            purpose=Purpose.CONSULTATION,
        )
        made = decide(case, default_protocol(), WINTER)
        return _regulated(*((r.code, r.message) for r in made.reasons))

    held = templates.referrer_outcome("held_for_regulator", outcome())
    assert held.startswith("En attente de la décision d'un médecin régulateur. Motif : ")
    assert "un médecin régulateur décide" in held
    home = templates.referrer_outcome("home_follow_up", outcome(consultation_needed=False))
    assert home == (
        "Suivi à domicile par le médecin traitant. Motif : Le demandeur juge la consultation "
        "inutile : suivi à domicile par le médecin traitant."
    )
    refused = templates.referrer_outcome("refused", outcome(symptomatic=False))
    assert refused.startswith("Demande refusée : Aucun symptôme : ")
    assert "70 ans ou plus : à risque de forme grave." in refused  # the others follow
    # Without reasons (a regulator's, an older outcome): the plain text.
    assert templates.referrer_outcome("home_follow_up", {}) == (
        "Suivi à domicile par le médecin traitant."
    )


@pytest.mark.parametrize(
    "message",
    [
        "SpO2 88,5 % en air ambiant, en dessous de 90 %.",  # the protocol's French
        "SpO2 88.5 % in ambient air is below 90 %.",  # an outcome kept from before
    ],
)
def test_a_vitals_value_and_threshold_are_read_from_either_wording(message: str) -> None:
    detail = _regulated(("escalate", "…"), ("severity.spo2", message))
    assert templates.referrer_outcome("escalated", detail) == (
        "Orientation vers le SAMU / les urgences : SpO2 88,5 % (< 90 %). "
        "Le Centre 15 en est informé et rappelle le patient."
    )


def test_a_patient_who_cancelled_is_not_told_they_will_be_called_back() -> None:
    # Nobody calls anyone back after a cancellation (tests/unit/test_patient_notices.py
    # has every case): a centre withdrawn leads to the waiting list and its new notice.
    for by in ("patient", "referrer", "service", "regulator", "centre"):
        notice = patient_notices.cancelled(WINTER, by, "motif", "gp")
        assert "Vous serez recontacté" not in notice.text + notice.sms
    theirs = patient_notices.cancelled(WINTER, "patient", "motif", "gp").text
    assert "comme vous l'avez demandé" in theirs and "Personne ne vous recontactera" in theirs
