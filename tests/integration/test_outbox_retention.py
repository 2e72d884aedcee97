"""The purge of outbox rows never published (issue 34): a row the broker refused (set
aside) or never relayed (pending) goes once past the retention of what it carries, a
patient's contact by the identity's, any other event by the clinical details'; the
published ones by the messaging window, as before. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from shared.messaging_tables import outbox
from shared.retention import PurgeOptions, Retention, messaging_steps, purges, run_purge
from shared.settings import Settings
from tests import retention_data as data
from tests.conftest import PostgresDatabases

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
RETENTION = Retention.of(Settings(_env_file=None))  # type: ignore[call-arg]
OPTIONS = PurgeOptions(batch=2, pause_seconds=0)

Urls = Callable[[str], Awaitable[str]]


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresDatabases) -> Urls:
    async def sqlite(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    return sqlite if request.param == "sqlite" else postgres.create


def _row(
    name: str, event_type: str, days: int, *, published: bool = False, set_aside: bool = False
) -> dict[str, object]:
    at = NOW - timedelta(days=days)
    return {
        "event_id": name,
        "event_type": event_type,
        "routing_key": event_type,
        "correlation_id": name,
        # What a refused contact keeps in clear until the purge: the reason for it.
        "body": '{"phone": "0612345678"}' if event_type == "patient.contact" else "{}",
        "created_at": at,
        "published_at": at if published else None,
        "attempts": 1,
        "last_error": "refused" if set_aside else None,
        "set_aside_at": at if set_aside else None,
    }


ROWS = [
    # A contact the broker refused, past the 92 days of an identity: gone.
    _row("contact-refused-old", "patient.contact", 100, set_aside=True),
    # An escalation's callback (names, phone), never relayed, past them too: gone.
    _row("outcome-pending-old", "referral.outcome", 93, set_aside=False),
    # A contact refused 10 days ago: past the messaging window, not the identity's.
    _row("contact-refused-recent", "patient.contact", 10, set_aside=True),
    # A referral's clinical details refused long ago: gone; lately: kept.
    _row("submitted-refused-old", "referral.submitted", 120, set_aside=True),
    _row("submitted-refused-recent", "referral.submitted", 30, set_aside=True),
    # Published: the messaging window (7 days), as before.
    _row("slot-published-old", "slot.assigned", 8, published=True),
    _row("slot-published-recent", "slot.assigned", 3, published=True),
]


async def test_unpublished_outbox_rows_go_past_the_retention_of_what_they_carry(
    urls: Urls,
) -> None:
    db = await data.migrated(await urls("notifier"), "notifier")
    try:
        async with db.transaction() as session:
            await session.execute(insert(outbox), ROWS)
        report = await run_purge(db, messaging_steps(RETENTION), NOW, OPTIONS)
        # A second run finds nothing more: what is left is not yet due.
        again = await run_purge(db, messaging_steps(RETENTION), NOW, OPTIONS)
        async with db.transaction() as session:
            left = set((await session.scalars(select(outbox.c.event_id))).all())
            audit = (await session.execute(select(purges.c.counts, purges.c.complete))).all()
    finally:
        await db.dispose()
    assert left == {"contact-refused-recent", "submitted-refused-recent", "slot-published-recent"}
    assert report.counts == {
        "messaging": {"outbox": 1},
        "identity": {"outbox": 2},
        "clinical": {"outbox": 1},
    }
    assert again.total == 0
    assert sorted((dict(c), ok) for c, ok in audit if c) == [(report.counts, True)]
