"""A backup taken in the middle of a flow, the flow going on, everything stopped, the
backup restored into fresh databases, the services started again: they catch up from the
outboxes (published again by the restore) and the referrer sends again what it sent
since the backup began. Reconciled from the four databases: no referral lost, none
twice, and the services agree on where each one stands. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from aiguillage.backup import DEFAULT_REPLAY_MARGIN, backup, restore
from aiguillage.demo import wait_for_consumers
from aiguillage.observer import FINAL
from aiguillage.processes import ServiceProcesses
from services.intake.store.tables import referrals
from services.regulation.store.tables import cases
from services.scheduler.store.tables import appointments
from shared.db import Database
from shared.events import Envelope
from shared.messaging_tables import outbox
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.faults.conftest import Cluster

pytestmark = pytest.mark.faults

REFERRALS = 40


class Recorded(Cluster):
    """The burst's referrer, keeping what it sent and when (to send it again)."""

    def __init__(self, settings: Settings, urls: dict[str, str], logs: Path) -> None:
        super().__init__(settings, urls, logs)
        self.sent: list[tuple[datetime, Envelope]] = []

    async def send(self, gp: EventPublisher, envelope: Envelope) -> None:
        at = datetime.now(UTC)
        await super().send(gp, envelope)
        self.sent.append((at, envelope))


async def _rows(url: str, query: Any) -> list[Any]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            return list((await session.execute(query)).all())
    finally:
        await database.dispose()


async def world(urls: dict[str, str]) -> dict[str, Any]:
    """What the four databases say of the referrals."""
    intake = await _rows(
        urls["intake"], select(referrals.c.id, referrals.c.reference, referrals.c.status)
    )
    booked = await _rows(
        urls["scheduler"],
        select(appointments.c.referral_id).where(appointments.c.status == "booked"),
    )
    case_ids = await _rows(urls["regulation"], select(cases.c.referral_id))
    pending = 0
    for url in urls.values():
        pending += (
            await _rows(
                url,
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.published_at.is_(None), outbox.c.set_aside_at.is_(None)),
            )
        )[0][0]
    return {
        "references": Counter(r.reference for r in intake),
        "status": {r.id: r.status for r in intake},
        "booked": Counter(r.referral_id for r in booked),
        "cases": {r.referral_id for r in case_ids},
        "pending": pending,
    }


def disagreements(state: dict[str, Any]) -> list[str]:
    """Where the services do not agree on a referral."""
    problems = []
    ids = set(state["status"])
    for referral_id, status in state["status"].items():
        has_appointment = state["booked"][referral_id] == 1
        if (status == "appointment") != has_appointment:
            problems.append(f"{referral_id[:8]}: intake says {status}, booked={has_appointment}")
    problems += [f"{r[:8]}: booked twice" for r, n in state["booked"].items() if n > 1]
    problems += [f"{r[:8]}: booked, unknown to intake" for r in set(state["booked"]) - ids]
    problems += [f"{r[:8]}: a case unknown to intake" for r in state["cases"] - ids]
    problems += [f"{r[:8]}: never reached regulation" for r in ids - state["cases"]]
    return problems


async def settled(urls: dict[str, str], timeout: float = 150.0) -> dict[str, Any]:
    """Wait until every outbox is relayed and the services agree, twice in a row."""
    deadline = time.monotonic() + timeout
    calm = 0
    while True:
        state = await world(urls)
        calm = calm + 1 if state["pending"] == 0 and not disagreements(state) else 0
        if calm >= 3:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"not settled: {state['pending']} pending, {disagreements(state)[:5]}"
            )
        await asyncio.sleep(1.0)


def _with(settings: Settings, urls: dict[str, str], data: Path) -> Settings:
    update: dict[str, Any] = {f"{s}_database_url": url for s, url in urls.items()}
    return settings.model_copy(update={**update, "data_dir": data})


async def _backup_restore(
    settings: Settings, before: dict[str, str], after: dict[str, str], tmp: Path
) -> None:
    folder = tmp / "backup"
    cluster = Recorded(settings, before, tmp / "logs")
    await cluster.start()
    try:
        burst = asyncio.create_task(cluster.burst(REFERRALS, seed=35, pause=0.1))
        # Some referrals all the way through (every database has some), more coming.
        for _ in range(600):
            if sum(t.state in FINAL for t in cluster.observer.tracks.values()) >= 8:
                break
            await asyncio.sleep(0.05)
        assert not burst.done()
        # The services run on while each database is copied.
        manifest = await asyncio.to_thread(backup, _with(settings, before, tmp / "data"), folder)
        await burst
        await cluster.settle()
        was = await settled(before)
    finally:
        await cluster.stop()
    assert set(manifest["databases"]) == {s.value for s in ServiceName}
    # Flow went on after the backup began: the copy misses some of it.
    began = datetime.fromisoformat(manifest["started_at"])
    assert any(at > began for at, _ in cluster.sent)

    replayed = await asyncio.to_thread(
        restore, _with(settings, after, tmp / "data-restored"), folder
    )
    assert replayed["intake"] > 0
    processes = ServiceProcesses(
        {
            **cluster.processes.env,
            **{f"AIGUILLAGE_{s.upper()}_DATABASE_URL": u for s, u in after.items()},
        },
        tmp / "logs-restored",
    )
    processes.start()
    try:
        await wait_for_consumers(settings.broker_url, settings.namespace, timeout=90)
        # The referrer sends again what it sent since the backup began (less the margin).
        since = began - DEFAULT_REPLAY_MARGIN
        async with EventPublisher(settings.broker_url, settings.namespace, "gp") as gp:
            for at, envelope in cluster.sent:
                if at >= since:
                    await gp.publish_envelope(envelope, "referral.submitted")
        now = await settled(after)
    finally:
        processes.stop()
        for service in ServiceName:
            if "Traceback" in (log := processes.log(service)):
                print(f"--- {service} (restored) ---\n{log[-4000:]}")

    assert disagreements(was) == []
    # No referral lost, none twice: intake holds each one accepted before, once.
    assert set(now["references"]) == set(was["references"])
    assert max(now["references"].values()) == 1
    assert len(now["status"]) == len(was["status"]) > REFERRALS // 2
    assert disagreements(now) == []


async def test_backup_restore_on_sqlite(settings: Settings, tmp_path: Path) -> None:
    def files(folder: str) -> dict[str, str]:
        return {
            s.value: f"sqlite+aiosqlite:///{tmp_path / folder / s.value}.db" for s in ServiceName
        }

    (tmp_path / "before").mkdir()
    await _backup_restore(settings, files("before"), files("after"), tmp_path)


@pytest.mark.postgres
async def test_backup_restore_on_postgresql(
    settings: Settings, postgres: Any, tmp_path: Path
) -> None:
    before = {s.value: await postgres.create(s.value) for s in ServiceName}
    after = {s.value: await postgres.create(f"{s.value}_restored") for s in ServiceName}
    await _backup_restore(settings, before, after, tmp_path)
