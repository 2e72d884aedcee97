"""Each service purges on its own schedule (issue 34, AIGUILLAGE_PURGE_INTERVAL_MINUTES):
the notifier, running, deletes a contact past its retention with no command, and its
audit says the schedule did it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.notifier.app import build
from services.notifier.store.tables import contacts
from shared.retention import purges
from shared.settings import Settings
from tests import retention_data as data
from tests.helpers import running


async def test_the_running_notifier_purges_on_its_schedule(settings: Settings) -> None:
    configured = settings.model_copy(update={"purge_interval_minutes": 0.02})  # 1.2 s
    runtime = build(configured)
    now = datetime.now(UTC)
    async with running(runtime):
        await data.seed_notifier(runtime.database, "long-ago", now - timedelta(days=100))
        await data.seed_notifier(runtime.database, "lately", now - timedelta(days=1))
        for _ in range(300):
            async with runtime.database.transaction() as session:
                left = set((await session.scalars(select(contacts.c.referral_id))).all())
                runs = (await session.execute(select(purges))).all()
            if left == {"lately"} and any(r.complete for r in runs):
                break
            await asyncio.sleep(0.1)
    assert left == {"lately"}
    done = [r for r in runs if r.complete and r.counts]
    assert done and {r.trigger for r in done} == {"schedule"}
    assert done[0].counts["identity"] == {"contacts": 1}
