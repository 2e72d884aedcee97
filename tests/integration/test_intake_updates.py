"""A referral corrected by its referrer (``referral.updated``, issue 36) through intake's
broker door, with a real broker and database: the SAMU's own referral gets the
corrected name, birth date and commune, the referral keeps its pseudonym, and the new
commune (alone) goes on the bus as ``patient.relocated``; another SAMU's update, or a
commune outside the SAMU's départements, is refused and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest

from services.intake.app import build
from services.intake.handlers.identities import Vault
from services.intake.store import referrals
from shared.events import ReferralSubmitted, ReferralUpdated, Referrer, ReferrerKind
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.helpers import Tap, referral, running


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


def samu_referral(samu: str, reference: str) -> ReferralSubmitted:
    own = Referrer(kind=ReferrerKind.CENTRE_15, identifier=samu, reply_to=samu)
    return referral(reference).model_copy(update={"referrer": own})


async def test_a_samu_corrects_its_own_referral(settings: Settings, intake: ServiceRuntime) -> None:
    s = settings
    keys = ("reply.#", "patient.relocated", "referral.received", "contact.notifier")
    async with (
        Tap(s.broker_url, s.namespace, *keys) as tap,
        EventPublisher(s.broker_url, s.namespace, "lrm35", actor="samu-35") as samu35,
        EventPublisher(s.broker_url, s.namespace, "lrm22", actor="samu-22") as samu22,
    ):
        await samu35.publish(samu_referral("samu-35", "case-1"), correlation_id="c")
        await tap.wait_for(lambda es: len(tap.of_type("submission.acknowledged")) == 1)
        [ack] = tap.of_type("submission.acknowledged")
        referral_id = str(ack.data["referral_id"])
        [received] = tap.of_type("referral.received")
        # Another SAMU's update: refused, as an unknown referral would be.
        await samu22.publish(
            ReferralUpdated(referral_id=referral_id, first_name="Intrus"), correlation_id="x"
        )
        # Its own SAMU, with a commune outside its départements: refused.
        await samu35.publish(
            ReferralUpdated(referral_id=referral_id, commune_insee="22278"), correlation_id="y"
        )
        await tap.wait_for(lambda es: len(tap.of_type("request.refused")) == 2)
        # Its own SAMU: a corrected name and birth date, and the patient in Saint-Malo.
        correction = ReferralUpdated(
            referral_id=referral_id,
            first_name="Éloïse-Marie",
            birth_date=date(1985, 7, 17),
            commune_insee="35288",
        )
        await samu35.publish(correction, correlation_id=referral_id)
        await tap.wait_for(lambda es: len(tap.of_type("patient.relocated")) == 1)
        await tap.wait_for(lambda es: len(tap.of_type("patient.contact")) == 2)

    refusals = {
        (m.routing_key, e.data["error_code"])
        for m, e in zip(tap.messages, tap.envelopes, strict=True)
        if e.type == "request.refused"
    }
    assert refusals == {
        ("reply.samu-22.request.refused", "sender_inconsistent"),
        ("reply.samu-35.request.refused", "outside_territory"),
    }
    [moved] = tap.of_type("patient.relocated")
    assert moved.data == {
        "referral_id": referral_id,
        # The pseudonym the referral was received with, although the identity changed.
        "patient_ref": received.data["patient_ref"],
        "commune_insee": "35288",
        "departement": "35",
        "previous_commune_insee": "35238",
    }
    # The notifier, which keeps the only other copy of the names, is told them: the names
    # alone, marked a correction (its phone, e-mail and consent stay as they were).
    first, renamed = tap.of_type("patient.contact")
    assert first.data["corrected"] is False and first.data["phone"]
    assert renamed.data["corrected"] is True
    assert (renamed.data["first_name"], renamed.data["last_name"]) == (
        "Éloïse-Marie",
        "Dupont-Lajoie",
    )
    # Left out while None (shared.events.versions.omitted_none): absent, never a value.
    assert renamed.data.get("phone") is None and renamed.data.get("referrer") is None
    async with intake.database.transaction() as session:
        sealed = await referrals.identity(session, referral_id)
        row = await referrals.referral(session, referral_id)
        assert sealed is not None and row is not None
        # Sealed at rest (issue 34), the whole row re-sealed by the correction.
        person = await Vault.of(intake.settings).person(session, sealed)
    assert (person.first_name, person.last_name, person.birth_date) == (
        "Éloïse-Marie",
        "Dupont-Lajoie",
        date(1985, 7, 17),
    )
    assert (row.commune_insee, row.departement, row.patient_ref) == (
        "35288",
        "35",
        received.data["patient_ref"],
    )
