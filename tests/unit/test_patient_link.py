"""The patient's link: signed, expiring, for one appointment; refused when tampered
with, expired, or signed with another key; never written to a log. And the referrer's
form: the referral it becomes, the reasons beside their fields, the commune search."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from aiguillage.console import referral_form as rf
from aiguillage.console.live import referral_change
from shared.events import Envelope
from shared.logging import scrub_text
from shared.patient_link import LinkRefused, issue_link, link_url, verify_link
from shared.settings import Environment, Settings, UnsafeSecrets

KEY = "k" * 40
APPOINTMENT = "3f1c1d2e-0000-4000-8000-000000000001"
REFERRAL = "3f1c1d2e-0000-4000-8000-000000000002"
LATER = int(time.time()) + 3600


def test_a_genuine_link_names_its_appointment_and_referral() -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    link = verify_link(KEY, token)
    assert (link.appointment_id, link.referral_id, link.expires) == (APPOINTMENT, REFERRAL, LATER)
    assert link_url("https://rdv.example/", token) == f"https://rdv.example/patient/{token}"
    # A datetime expiry is the same instant.
    moment = datetime.fromtimestamp(LATER, UTC)
    assert issue_link(KEY, APPOINTMENT, REFERRAL, moment) == token


@pytest.mark.parametrize("position", [3, 10, 45, 80, -1])
def test_any_altered_character_is_refused(position: int) -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    char = token[position]
    altered = token[:position] + ("0" if char != "0" else "1") + token[position + 1 :]
    altered = altered if position != -1 else token[:-1] + ("A" if char != "A" else "B")
    with pytest.raises(LinkRefused) as refused:
        verify_link(KEY, altered)
    assert not refused.value.expired


def test_another_appointment_under_the_same_signature_is_refused() -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    version, _, referral, expiry, signature = token.split(".")
    other = ".".join((version, "3f1c1d2e-0000-4000-8000-000000000009", referral, expiry, signature))
    with pytest.raises(LinkRefused):
        verify_link(KEY, other)
    # A later expiry under the old signature too.
    longer = token.replace(f".{LATER}.", f".{LATER + 86400}.")
    with pytest.raises(LinkRefused):
        verify_link(KEY, longer)


def test_an_expired_link_is_refused_as_expired() -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, int(time.time()) - 1)
    with pytest.raises(LinkRefused) as refused:
        verify_link(KEY, token)
    assert refused.value.expired
    # At the appointment's end, to the second.
    at = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    with pytest.raises(LinkRefused):
        verify_link(KEY, at, now=LATER)
    assert verify_link(KEY, at, now=LATER - 1).expires == LATER


@pytest.mark.parametrize(
    "token",
    ["", "p1", "p1....", "p2.a.b.1.x", "p1.a.b.notanumber.x", "x" * 500, "p1.a.b.1.x.y"],
)
def test_malformed_links_are_refused(token: str) -> None:
    with pytest.raises(LinkRefused):
        verify_link(KEY, token)


def test_another_key_and_no_key_refuse() -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    with pytest.raises(LinkRefused):
        verify_link("another-" + KEY, token)
    with pytest.raises(LinkRefused):
        verify_link("", token)
    with pytest.raises(ValueError, match="needs a key"):
        issue_link("", APPOINTMENT, REFERRAL, LATER)
    with pytest.raises(ValueError, match="letters, digits and dashes"):
        issue_link(KEY, "an.id", REFERRAL, LATER)


def test_the_link_never_reaches_a_log_line() -> None:
    token = issue_link(KEY, APPOINTMENT, REFERRAL, LATER)
    line = scrub_text(f"notice text: voir {link_url('http://x', token)} (lien personnel)")
    assert token not in line and "[redacted]" in line


def test_production_refuses_the_development_link_key() -> None:
    settings = Settings(
        environment=Environment.PRODUCTION,
        auth_secret="a" * 40,
        webhook_secret="b" * 40,
        pseudonym_secret="c" * 40,
        identity_kek="e" * 40,
        identity_lookup_key="f" * 40,
    )
    assert settings.secret_problems() == {
        "AIGUILLAGE_PATIENT_LINK_KEY": "is not set (its public development default)"
    }
    with pytest.raises(UnsafeSecrets):
        settings.check_secrets("the console")
    fine = settings.model_copy(update={"patient_link_key": "d" * 40})
    fine.model_fields_set.add("patient_link_key")
    assert fine.secret_problems() == {}


# -- the referrer's form -----------------------------------------------------------------


def test_the_form_becomes_intakes_referral_with_the_sessions_referrer() -> None:
    form = {
        "referrer.identifier": ["someone-else"],  # no such field: the session decides
        "patient.last_name": ["Le Bihan"],
        "patient.first_name": ["Maëlle"],
        "patient.birth_date": ["1979-04-02"],
        "patient.commune_insee": ["35238"],
        "patient.sms_consent": ["on"],
        "patient.phone": ["0611223344"],
        "clinical.symptomatic": ["on"],
        "clinical.symptoms": ["fièvre, toux , "],
        "clinical.severity_signs": ["dyspnoea"],
        "clinical.vitals.spo2": ["96,5"],
        "clinical.vitals.respiratory_rate": ["18"],
        "clinical.vitals.temperature_c": ["trente-huit"],
        "clinical.pregnancy_trimester": ["2"],
        "purpose": ["consultation"],
    }
    body = rf.build_referral(form, {"kind": "gp", "identifier": "100"}, "web-1")
    assert body["referrer"] == {"kind": "gp", "identifier": "100"}
    assert body["patient"]["sms_consent"] is True
    assert body["clinical"]["symptoms"] == ["fièvre", "toux"]
    assert body["clinical"]["vitals"] == {
        "spo2": 96.5,
        "respiratory_rate": 18,
        "temperature_c": "trente-huit",  # as typed: intake says why it is not a number
    }
    assert body["clinical"]["pregnancy_trimester"] == 2
    assert body["clinical"]["consultation_needed"] is False  # unchecked box


def test_reasons_land_beside_their_fields() -> None:
    errors = rf.errors_by_field(
        [
            {"code": "screening_not_offered", "field": "purpose", "message": "Pas de dépistage."},
            {"code": "commune_unknown_postcode", "field": "patient.commune_insee", "message": "X"},
            {"code": "invalid", "field": None, "message": "Y"},
        ]
    )
    assert errors == {"purpose": ["Pas de dépistage."], "patient.commune_name": ["X"], "": ["Y"]}
    assert rf.field_id("clinical.vitals.spo2") == "champ-clinical-vitals-spo2"


def test_a_referrer_accounts_actor_names_its_kind() -> None:
    assert rf.referrer_of_actor("gp-10001234567") == ("gp", "10001234567")
    assert rf.referrer_of_actor("sos_medecins-sos-rennes") == ("sos_medecins", "sos-rennes")
    assert rf.referrer_of_actor("10001234567") == ("gp", "10001234567")
    # A referrer account never speaks for Centre 15.
    assert rf.referrer_of_actor("centre_15-samu-35") == ("gp", "centre_15-samu-35")


def test_communes_by_name_or_postcode_bounded() -> None:
    assert rf.search_communes("r") == []
    by_name = rf.search_communes("rennes")
    assert by_name[0]["insee"] == "35238"
    assert rf.search_communes("35000")[0]["name"] == "Rennes"
    assert len(rf.search_communes("saint")) == rf.MAX_RESULTS
    assert rf.search_communes("st malo")[0]["insee"] == "35288"


def test_a_referrer_hears_of_referral_events_without_their_content() -> None:
    envelope = Envelope(type="slot.assigned", source="scheduler", correlation_id="r", data={})
    change = referral_change(envelope)
    assert change is not None and change.parts == ("referrals",)
    assert '"line": ""' in change.sse(private=True)
    other = Envelope(type="centre.activated", source="ars", correlation_id="c", data={})
    assert referral_change(other) is None


def test_the_notice_carries_a_link_that_verifies_until_the_appointment_ends() -> None:
    from services.notifier.domain import patient_notices
    from shared.patient_link import patient_link_for

    settings = Settings(patient_link_key=KEY, patient_link_base_url="https://rdv.example")
    end = datetime.fromtimestamp(LATER, UTC)
    url = patient_link_for(settings)(APPOINTMENT, REFERRAL, end)
    assert url.startswith("https://rdv.example/patient/p1.")
    link = verify_link(KEY, url.rsplit("/", 1)[1])
    assert (link.appointment_id, link.expires) == (APPOINTMENT, LATER)
    line = patient_notices.link_line(url)
    assert url in line and "annuler" in line and "autre créneau" in line
    assert patient_notices.link_line(None) == ""
