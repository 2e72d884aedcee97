"""Referrals at their final states in every service's database, old and recent, for
the purge's tests (issue 34): rows as the services write them, dated by the test."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import insert

from services.intake.handlers.identities import Person, Vault
from services.intake.store import tables as intake
from services.intake.store.referrals import add_identity
from services.notifier.store import tables as notifier
from services.regulation.store import tables as regulation
from services.scheduler.store import tables as scheduler
from shared.db import Database
from shared.migrations import upgrade
from shared.settings import Settings

NAME = "Zéphirine Purgeable"
PHONE = "+33612345678"
EMAIL = "zephirine@example.org"
NIR = "260017512345678"
# The development keys: what intake seals with when nothing is set.
VAULT = Vault.of(Settings(_env_file=None))  # type: ignore[call-arg]


async def migrated(url: str, service: str) -> Database:
    db = Database(url)
    await upgrade(db, f"services.{service}:migrations")
    return db


async def seed_intake(
    db: Database,
    referral: str,
    status: str,
    at: datetime,
    patient: str | None = None,
    happened: str | None = None,
) -> None:
    async with db.transaction() as s:
        await s.execute(
            insert(intake.referrals).values(
                id=referral,
                referrer_kind="gp",
                referrer_id="10001234567",
                reference=f"ref-{referral}",
                fingerprint="f" * 64,
                patient_ref=patient or f"p-{referral}",
                commune_insee="35238",
                departement="35",
                status=status,
                detail={"centre_id": "c1", "reasons": ["dyspnée"], "priority": "urgent"},
                received_at=at - timedelta(days=2),
                updated_at=at,
            )
        )
        person = Person(
            first_name="Zéphirine",
            last_name="Purgeable",
            birth_date=date(1960, 1, 2),
            sex="female",
            nir=NIR,
            phone=PHONE,
            email=EMAIL,
            address="1 rue de la Purge, Rennes",
        )
        sealed = await VAULT.sealed(s, referral, person)
        await add_identity(s, referral_id=referral, sex=person.sex, sealed=sealed)
        # Its history as intake writes it: received, then what the status says (a
        # withdrawal reads "cancelled" in the referrals' table, "withdrawn" here).
        entries = (("received", at - timedelta(days=2)), (happened or status, at))
        for n, (label, when) in enumerate(entries):
            await s.execute(
                insert(intake.status_history).values(
                    event_id=f"h{n}-{referral}",
                    referral_id=referral,
                    status=label,
                    detail={"reason": "toux sèche", "centre_id": "c1"},
                    at=when,
                )
            )


async def seed_regulation(
    db: Database, referral: str, decision: str, at: datetime, patient: str | None = None
) -> None:
    async with db.transaction() as s:
        await s.execute(
            insert(regulation.cases).values(
                referral_id=referral,
                patient_ref=patient or f"p-{referral}",
                age=66,
                commune_insee="35238",
                departement="35",
                referrer_kind="gp",
                purpose="consultation",
                clinical={"symptoms": ["fever", "cough"], "pregnant": False},
                received_at=at,
                current_decision_id=f"d-{referral}",
            )
        )
        await s.execute(
            insert(regulation.decisions).values(
                id=f"d-{referral}",
                referral_id=referral,
                decision=decision,
                priority="urgent",
                deadline=at + timedelta(hours=24),
                test_eligible=True,
                reasons=["fièvre", "âge > 65"],
                protocol_version="v1",
                decided_by="protocol",
                decided_at=at,
                comment="patient anxieuse",
            )
        )


async def seed_scheduler(
    db: Database, referral: str, at: datetime, centre: bool, patient: str | None = None
) -> None:
    async with db.transaction() as s:
        if centre:
            await s.execute(
                insert(scheduler.centres).values(
                    id="c1",
                    name="Centre de Rennes",
                    kind="temporary",
                    commune_insee="35238",
                    departement="35",
                    lat=48.11,
                    lon=-1.68,
                    opening_hours={},
                    boxes=1,
                    consultation_minutes=15,
                    first_day=at.date(),
                    status="active",
                    updated_at=at,
                )
            )
        await s.execute(
            insert(scheduler.regulations).values(
                referral_id=referral,
                reasons=["fièvre", "âge > 65"],
                protocol_version="v1",
                decided_by="protocol",
                regulated_at=at - timedelta(hours=2),
            )
        )
        await s.execute(
            insert(scheduler.appointments).values(
                id=f"a-{referral}",
                referral_id=referral,
                patient_ref=patient or f"p-{referral}",
                centre_id="c1",
                start=at - timedelta(minutes=15),
                end=at,
                box=1,
                priority="urgent",
                distance_km=2.0,
                status="done",
                created_at=at - timedelta(hours=1),
            )
        )
        await s.execute(
            insert(scheduler.consultation_outcomes).values(
                appointment_id=f"a-{referral}", outcome="seen", recorded_at=at, recorded_by="c1"
            )
        )


async def seed_notifier(
    db: Database, referral: str, at: datetime, patient: str | None = None
) -> None:
    async with db.transaction() as s:
        await s.execute(
            insert(notifier.contacts).values(
                referral_id=referral,
                patient_ref=patient or f"p-{referral}",
                first_name="Zéphirine",
                last_name="Purgeable",
                phone=PHONE,
                email=EMAIL,
                sms_consent=True,
            )
        )
        await s.execute(
            insert(notifier.notifications).values(
                id=f"n-{referral}",
                cause_event_id=f"e-{referral}",
                referral_id=referral,
                recipient_kind="patient",
                recipient=referral,
                channel="record",
                template="appointment",
                subject="Votre rendez-vous",
                body=f"Bonjour {NAME}, votre rendez-vous...",
                target={"phone": PHONE},
                status="sent",
                attempts=1,
                created_at=at - timedelta(hours=1),
                sent_at=at - timedelta(hours=1),
            )
        )
        await s.execute(
            insert(notifier.attempts).values(notification_id=f"n-{referral}", attempt=1, at=at)
        )
        await s.execute(
            insert(notifier.centre_appointments).values(
                appointment_id=f"a-{referral}",
                centre_id="c1",
                referral_id=referral,
                patient_ref=patient or f"p-{referral}",
                start=at - timedelta(minutes=15),
                end=at,
                box=1,
                priority="urgent",
                status="done",
            )
        )
