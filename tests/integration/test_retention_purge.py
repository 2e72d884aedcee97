"""The purge (issue 34) with an injected clock, on every service's database: referrals
at their final states long ago lose their identity and clinical details, those final
recently or still open keep them, the pseudonymous record still counts in the ARS's
figures, and each run's audit says what it purged (counts, no content)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import services.intake
import services.notifier
import services.regulation
import services.scheduler
from services.intake.store import tables as intake
from services.notifier.store import tables as notifier
from services.regulation.store import tables as regulation
from services.scheduler.store import history
from services.scheduler.store import tables as scheduler
from shared.messaging_tables import inbox
from shared.retention import PurgeOptions, Retention, purges, run_purge
from shared.settings import Settings
from tests import retention_data as data
from tests.conftest import PostgresDatabases

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=100)  # past the 92 days
RECENT = NOW - timedelta(days=10)
OPTIONS = PurgeOptions(batch=1, pause_seconds=0)  # one row per transaction: many batches
RETENTION = Retention.of(Settings(_env_file=None))  # type: ignore[call-arg]


Urls = Callable[[str], Awaitable[str]]


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresDatabases) -> Urls:
    """A fresh database per service, on SQLite or PostgreSQL (both run the purge)."""

    async def sqlite(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    return sqlite if request.param == "sqlite" else postgres.create


async def test_intake_forgets_the_identity_of_a_referral_final_long_ago(urls: Urls) -> None:
    db = await data.migrated(await urls("intake"), "intake")
    try:
        await data.seed_intake(db, "old", "seen", OLD)
        await data.seed_intake(db, "old-withdrawn", "cancelled", OLD, happened="withdrawn")
        # An appointment cancelled reads "cancelled" too, and is not final: kept.
        await data.seed_intake(
            db, "old-cancelled", "cancelled", OLD, happened="appointment_cancelled"
        )
        await data.seed_intake(db, "recent", "no_show", RECENT)
        await data.seed_intake(db, "open", "appointment", NOW - timedelta(days=300))
        async with db.transaction() as s:
            for at in (NOW - timedelta(days=400), NOW - timedelta(days=300)):
                await s.execute(
                    intake.identity_reads.insert().values(
                        at=at,
                        referral_id="open",
                        patient_ref="p-open",
                        reader_role="centre_15",
                        reader="samu-35",
                        route="GET /referrals/{id}",
                    )
                )
        report = await run_purge(db, services.intake.purge_steps(RETENTION), NOW, OPTIONS)
        assert report.counts == {
            "identity": {"identities": 2},
            "clinical": {"referrals": 2},
            "access_log": {"identity_reads": 1},  # the year-old read; not the other
        }
        async with db.transaction() as s:
            kept = set((await s.scalars(select(intake.identities.c.referral_id))).all())
            rows = {r.id: r for r in await s.execute(select(intake.referrals))}
            history = {
                r.referral_id: r.detail for r in await s.execute(select(intake.status_history))
            }
            audit = (await s.execute(select(purges))).one()
        assert kept == {"recent", "open", "old-cancelled"}
        # The pseudonymous record stays: its state, its times, its centre and priority.
        assert rows["old"].status == "seen" and rows["old"].received_at is not None
        assert rows["old"].detail == {"centre_id": "c1", "priority": "urgent"}
        assert history["old"] == {"centre_id": "c1"}  # each entry's reason gone
        assert rows["recent"].detail["reasons"] == ["dyspnée"]
        assert history["open"]["reason"] == "toux sèche"
        assert audit.complete and audit.counts == report.counts
        assert data.NAME not in str(audit.counts)
        # Again: nothing more is due, nothing else goes.
        again = await run_purge(db, services.intake.purge_steps(RETENTION), NOW, OPTIONS)
        assert again.total == 0
    finally:
        await db.dispose()


async def test_regulation_forgets_clinical_details_of_decided_cases(urls: Urls) -> None:
    db = await data.migrated(await urls("regulation"), "regulation")
    try:
        await data.seed_regulation(db, "old", "orient", OLD)
        await data.seed_regulation(db, "held", "hold", OLD)
        await data.seed_regulation(db, "recent", "orient", RECENT)
        report = await run_purge(db, services.regulation.purge_steps(RETENTION), NOW, OPTIONS)
        assert report.counts == {"clinical": {"cases": 1}}
        async with db.transaction() as s:
            cases = {r.referral_id: r for r in await s.execute(select(regulation.cases))}
            decisions = {r.referral_id: r for r in await s.execute(select(regulation.decisions))}
        assert cases["old"].clinical == {} and cases["old"].clinical_purged_at is not None
        assert decisions["old"].reasons == [] and decisions["old"].comment is None
        assert decisions["old"].priority == "urgent" and decisions["old"].decision == "orient"
        assert cases["held"].clinical["symptoms"] == ["fever", "cough"]
        assert decisions["recent"].reasons == ["fièvre", "âge > 65"]
    finally:
        await db.dispose()


async def test_the_scheduler_keeps_what_the_ars_counts(urls: Urls) -> None:
    db = await data.migrated(await urls("scheduler"), "scheduler")
    try:
        await data.seed_scheduler(db, "old", OLD, centre=True)
        await data.seed_scheduler(db, "recent", RECENT, centre=False)
        day = (OLD - timedelta(hours=1), OLD + timedelta(hours=1))
        async with db.transaction() as s:
            before = await history.day_figures(s, *day)
        report = await run_purge(db, services.scheduler.purge_steps(RETENTION), NOW, OPTIONS)
        assert report.counts == {"clinical": {"regulations": 1}}
        async with db.transaction() as s:
            after = await history.day_figures(s, *day)
            reasons = set((await s.scalars(select(scheduler.regulations.c.referral_id))).all())
        assert reasons == {"recent"}
        assert after == before and after["35"]["booked"] == 1 and after["35"]["seen"] == 1
    finally:
        await db.dispose()


async def test_the_notifier_forgets_contacts_and_what_it_told_them(urls: Urls) -> None:
    db = await data.migrated(await urls("notifier"), "notifier")
    try:
        await data.seed_notifier(db, "old", OLD)
        await data.seed_notifier(db, "recent", RECENT)
        async with db.transaction() as s:
            await s.execute(
                inbox.insert().values(
                    consumer="notifier.x", event_id="e1", event_type="t", processed_at=OLD
                )
            )
        report = await run_purge(db, services.notifier.purge_steps(RETENTION), NOW, OPTIONS)
        assert report.counts == {"identity": {"contacts": 1}, "messaging": {"inbox": 1}}
        async with db.transaction() as s:
            contacts = set((await s.scalars(select(notifier.contacts.c.referral_id))).all())
            told = set((await s.scalars(select(notifier.notifications.c.referral_id))).all())
            tries = set((await s.scalars(select(notifier.attempts.c.notification_id))).all())
            seen = set((await s.scalars(select(notifier.centre_appointments.c.referral_id))).all())
        assert contacts == told == {"recent"} and tries == {"n-recent"}
        assert seen == {"old", "recent"}  # the centres' pseudonymous record stays
    finally:
        await db.dispose()
