"""A held referral's patient now elsewhere (``patient.relocated``, issue 36): regulation
keeps the new commune, so that the regulator's later orientation books from there (its
``referral.regulated`` names the new commune and département). Regulation runs
in-process on the real broker and database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.regulation.app import build
from services.regulation.store.tables import cases
from shared.events import Decision, PatientRelocated, RegulationDecided
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.helpers import Tap, running
from tests.integration.test_regulation_override import held_referral, refer, regulated_of

pytestmark = pytest.mark.integration


async def test_a_held_patient_now_elsewhere_is_oriented_from_there(settings: Settings) -> None:
    s = settings
    async with (
        running(build(s)) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        await refer(s, tap, held_referral("moved-1"))
        [held] = regulated_of(tap, "moved-1")
        assert (held.data["decision"], held.data["commune_insee"]) == ("hold", "35238")
        async with EventPublisher(s.broker_url, s.namespace, "intake") as intake:
            moved = PatientRelocated(
                referral_id="moved-1",
                patient_ref="pat-moved-1",
                commune_insee="22278",
                departement="22",
                previous_commune_insee="35238",
            )
            await intake.publish(moved, correlation_id="moved-1")
        async with EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15:
            decided = RegulationDecided(
                referral_id="moved-1", regulator_id="DR-house", decision=Decision.ORIENT
            )
            await centre_15.publish(decided, correlation_id="moved-1")
        await tap.wait_for(lambda es: len(regulated_of(tap, "moved-1")) == 2, timeout=20)
        async with runtime.database.transaction() as session:
            case = (
                await session.execute(select(cases).where(cases.c.referral_id == "moved-1"))
            ).one()
    oriented = regulated_of(tap, "moved-1")[1]
    assert oriented.data["decision"] == "orient"
    assert (oriented.data["commune_insee"], oriented.data["departement"]) == ("22278", "22")
    assert (case.commune_insee, case.departement) == ("22278", "22")
