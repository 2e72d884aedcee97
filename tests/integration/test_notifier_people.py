"""The notifier's people rules, on its real database (SQLite): a patient's address gets at
most AIGUILLAGE_CONTACT_MESSAGES_PER_DAY messages a day; a patient is told only by the
channels its referrer is registered for. The dispatcher alone, no broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import insert, select

from services.notifier.handlers.channels import Contact, PatientMessage, Webhook
from services.notifier.handlers.dispatcher import Dispatcher
from services.notifier.store.tables import contacts, notifications, referrers
from shared.db import Database
from shared.events import new_id, utcnow
from shared.messaging_tables import outbox
from shared.migrations import upgrade
from shared.outbox import OutboxRelay

PHONE = "06 12 34 56 78"


class _Relay:
    def notify(self, count: int = 1) -> None:
        pass


class FakeSms:
    name = "sms"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def reaches(self, contact: Contact) -> bool:
        return bool(contact.phone)

    async def send(self, contact: Contact, message: PatientMessage) -> None:
        self.sent.append(message.notification_id)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}")
    await upgrade(db, "services.notifier:migrations")
    yield db
    await db.dispose()


async def _patient(db: Database, phone: str, channels: list[str] | None) -> str:
    """A referral with its contact, its referrer and one pending SMS; its id."""
    referral_id = new_id()
    async with db.transaction() as session:
        await session.execute(
            insert(contacts).values(
                referral_id=referral_id,
                patient_ref="p",
                first_name="Jeanne",
                last_name="Martin",
                phone=phone,
                email=None,
                sms_consent=True,
            )
        )
        await session.execute(
            insert(referrers).values(
                referral_id=referral_id, kind="gp", identifier="1", patient_channels=channels
            )
        )
        await session.execute(
            insert(notifications).values(
                id=new_id(),
                cause_event_id=new_id(),
                referral_id=referral_id,
                recipient_kind="patient",
                recipient=referral_id,
                channel="sms",
                template="patient.new_patient",
                body="RDV",
                target={"referral_id": referral_id},
                status="pending",
                attempts=0,
                next_attempt_at=utcnow(),
                created_at=utcnow(),
            )
        )
    return referral_id


async def _failed(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        bodies = (
            await session.scalars(
                select(outbox.c.body).where(outbox.c.event_type == "notification.failed")
            )
        ).all()
    return [json.loads(b)["data"] for b in bodies]


def _dispatcher(db: Database, sms: FakeSms, dead: list[dict[str, Any]]) -> Dispatcher:
    async def dead_letter(document: dict[str, Any], error: str) -> None:
        dead.append(document)

    return Dispatcher(
        db,
        cast(OutboxRelay, _Relay()),
        {"sms": sms},
        Webhook("s"),
        dead_letter,
        contact_messages_per_day=3,
    )


async def test_a_patient_s_phone_gets_at_most_the_day_s_quota(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    sms, dead = FakeSms(), []  # type: ignore[var-annotated]
    dispatcher = _dispatcher(database, sms, dead)
    # Five referrals of the same patient (the same phone, spelt two ways).
    for n in range(5):
        await _patient(database, PHONE if n % 2 else "+33612345678", None)
        await dispatcher.dispatch_once()
    assert len(sms.sent) == 3
    failed = await _failed(database)
    assert [f["error_code"] for f in failed] == ["contact_quota", "contact_quota"]
    assert all(f["final"] for f in failed)
    assert dead == []  # a rule applied, nothing to mend
    # Another patient is not affected.
    await _patient(database, "0700000000", None)
    await dispatcher.dispatch_once()
    assert len(sms.sent) == 4
    # The address itself is nowhere in what the quota keeps, nor in the log.
    assert "612345678" not in capsys.readouterr().out
    async with database.transaction() as session:
        keys = (await session.execute(select(notifications.c.last_error))).scalars().all()
    assert not any("612345678" in (k or "") for k in keys)


async def test_a_patient_is_told_by_the_registered_channels_only(database: Database) -> None:
    sms, dead = FakeSms(), []  # type: ignore[var-annotated]
    dispatcher = _dispatcher(database, sms, dead)
    await _patient(database, PHONE, ["email"])  # registered without SMS
    await dispatcher.dispatch_once()
    assert sms.sent == []
    assert [f["error_code"] for f in await _failed(database)] == ["channel_not_allowed"]
    await _patient(database, "0700000001", ["sms"])
    await dispatcher.dispatch_once()
    assert len(sms.sent) == 1
