"""kill -9 in the middle of a purge (issue 34), then a new run: the job is finished,
nothing due is left, nothing not due is deleted, and the audit of the killed run says
exactly what it purged before it died (each batch's count commits with the batch)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.notifier.store import tables as notifier
from shared.retention import purges
from tests import retention_data as data
from tests.integration.test_retention_purge import NOW, OLD, RECENT

pytestmark = pytest.mark.faults

DUE = 30
NOT_DUE = 5
COMMAND = [sys.executable, "-m", "aiguillage", "purge", "--service", "notifier"]


def _environment(url: str, pause_ms: int) -> dict[str, str]:
    return {
        **os.environ,
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_NOTIFIER_DATABASE_URL": url,
        "AIGUILLAGE_PURGE_PAUSE_MS": str(pause_ms),
        "AIGUILLAGE_LOG_JSON": "false",
    }


async def _purged_so_far(db: data.Database) -> int:
    async with db.transaction() as s:
        counts = (await s.scalars(select(purges.c.counts))).all()
    return sum(c.get("identity", {}).get("contacts", 0) for c in counts)


async def test_a_purge_killed_mid_way_is_finished_by_the_next(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
    db = await data.migrated(url, "notifier")
    try:
        for n in range(DUE):
            await data.seed_notifier(db, f"old-{n:02}", OLD - timedelta(minutes=n))
        for n in range(NOT_DUE):
            await data.seed_notifier(db, f"recent-{n}", RECENT)
        # One row per batch and a pause between batches: the kill lands mid-way.
        args = [*COMMAND, "--batch", "1", "--now", NOW.isoformat()]
        slow = await asyncio.create_subprocess_exec(
            *args, env=_environment(url, 300), cwd=Path(__file__).parents[2]
        )
        try:
            deadline = time.monotonic() + 60
            while await _purged_so_far(db) < 3:
                assert slow.returncode is None, "the purge ended before it was killed"
                assert time.monotonic() < deadline, "the purge never got going"
                await asyncio.sleep(0.05)
            os.kill(slow.pid, signal.SIGKILL)
        finally:
            await asyncio.wait_for(slow.wait(), timeout=30)
        async with db.transaction() as s:
            left = set((await s.scalars(select(notifier.contacts.c.referral_id))).all())
            first = (await s.execute(select(purges))).one()
        gone = DUE + NOT_DUE - len(left)
        assert 3 <= gone < DUE
        assert not first.complete and first.counts == {"identity": {"contacts": gone}}

        # A new run finishes the job.
        done = await asyncio.create_subprocess_exec(
            *COMMAND,
            "--now",
            NOW.isoformat(),
            env=_environment(url, 0),
            cwd=Path(__file__).parents[2],
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await asyncio.wait_for(done.communicate(), timeout=120)
        assert done.returncode == 0, errors.decode()[-2000:]
        async with db.transaction() as s:
            left = set((await s.scalars(select(notifier.contacts.c.referral_id))).all())
            told = set((await s.scalars(select(notifier.notifications.c.referral_id))).all())
            runs = (await s.execute(select(purges).order_by(purges.c.started_at))).all()
        assert left == told == {f"recent-{n}" for n in range(NOT_DUE)}
        assert [r.complete for r in runs] == [False, True]
        assert runs[1].counts == {"identity": {"contacts": DUE - gone}}
    finally:
        await db.dispose()
