"""`aiguillage privacy restrict` (issue 34) on the real broker: intake records the
restriction and its relay publishes ``referral.restricted``; the notifier honours it:
the patient and their referrer are told nothing more of that referral, while the centre
still is (care needs it), and another referral of the same run is told as before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

import services.intake
from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.notifier.store.tables import notifications, restrictions
from shared.events import (
    Envelope,
    PatientContact,
    Priority,
    ReferrerKind,
    ReferrerRef,
    SlotAssigned,
)
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests import retention_data as data
from tests.helpers import running

REFERRER = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-1", reply_to="gp-1")


def _contact(referral_id: str) -> PatientContact:
    return PatientContact(
        referral_id=referral_id,
        patient_ref=f"p-{referral_id}",
        first_name="Zéphirine",
        last_name="Purgeable",
        phone=data.PHONE,
        email=data.EMAIL,
        sms_consent=True,
        referrer=REFERRER,
    )


def _slot(referral_id: str) -> SlotAssigned:
    start = datetime.now(UTC) + timedelta(hours=2)
    return SlotAssigned(
        centre_id="rennes-1",
        appointment_id=f"a-{referral_id}",
        referral_id=referral_id,
        patient_ref=f"p-{referral_id}",
        centre_name="École de la Poterie",
        centre_commune_insee="35238",
        centre_address="12 rue de la Poterie",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.ROUTINE,
        distance_km=2.5,
        test_eligible=True,
    )


async def _rows(runtime: ServiceRuntime, table: Any) -> list[Any]:
    async with runtime.database.transaction() as session:
        return list((await session.execute(select(table))).all())


async def _until(predicate: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.1)


async def test_a_restricted_referral_s_patient_and_referrer_are_told_nothing(
    settings: Settings,
) -> None:
    async with (
        running(build_intake(settings)) as intake,
        running(build_notifier(settings)) as notifier,
    ):
        for referral in ("kept", "free"):
            await data.seed_intake(intake.database, referral, "regulated", datetime.now(UTC))
        async with EventPublisher(settings.broker_url, settings.namespace, "t") as publisher:
            for referral in ("kept", "free"):
                contact = _contact(referral)
                envelope = Envelope.wrap(contact, source="t", correlation_id=referral)
                await publisher.publish_envelope(envelope, contact.routing_key())
            # The command's work: intake records it, its relay tells the notifier.
            assert await services.intake.restrict_referral(intake.database, "kept", "dpo")
            assert not await services.intake.restrict_referral(intake.database, "kept", "dpo")

            async def restricted() -> bool:
                return [r.referral_id for r in await _rows(notifier, restrictions)] == ["kept"]

            await _until(restricted)
            for referral in ("kept", "free"):
                slot = _slot(referral)
                envelope = Envelope.wrap(slot, source="t", correlation_id=referral)
                await publisher.publish_envelope(envelope, slot.routing_key())

        def told(rows: list[Any], referral: str) -> set[str]:
            return {r.recipient_kind for r in rows if r.referral_id == referral}

        async def both_handled() -> bool:
            rows = await _rows(notifier, notifications)
            return told(rows, "free") >= {"centre", "patient", "referrer"} and "centre" in told(
                rows, "kept"
            )

        await _until(both_handled)
        await asyncio.sleep(0.5)  # room for a wrong late notice
        assert told(await _rows(notifier, notifications), "kept") == {"centre"}
