"""The purge at the end of a real flow (issue 34): referrals taken to their final
states through the four services as processes and the broker, then the clock moved
past the retention and `aiguillage purge` run beside the running services: identity and
clinical details are gone from every service's tables, the ARS's figures still count
the purged referrals, each service's audit says what it purged (counts, no content),
and a referral not final keeps its identity in intake."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from services.intake.store import tables as intake
from services.notifier.store import tables as notifier
from services.regulation.store import tables as regulation
from services.scheduler.store import tables as scheduler
from shared.auth import Role, issue_token
from shared.db import Database
from shared.events import CancelledBy, ConsultationCompleted, ReferralCancelled
from shared.paris import in_paris
from shared.publisher import EventPublisher
from shared.retention import purges
from shared.settings import ServiceName, Settings
from tests.consultation_time import consultation_over
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e

CENTRE = "rennes-purge"


async def _rows(settings: Settings, service: str, *columns: Any) -> list[Any]:
    db = Database(f"sqlite+aiosqlite:///{settings.data_dir / f'{service}.db'}")
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(*columns))).all())
    finally:
        await db.dispose()


async def _day(settings: Settings, processes: ServiceProcesses) -> dict[str, Any]:
    token = issue_token(settings, Role.ARS, "53", ServiceName.SCHEDULER)
    day = in_paris(datetime.now(UTC) - timedelta(minutes=30)).date()
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{processes.ports['scheduler']}/territory/days/{day}",
            params={"departement": "35"},
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    [figures] = response.json()["departements"]
    return dict(figures)


async def _statuses(settings: Settings) -> dict[str, str]:
    rows = await _rows(settings, "intake", intake.referrals.c.reference, intake.referrals.c.status)
    return {reference: status for reference, status in rows}


async def _final(settings: Settings, want: dict[str, str]) -> None:
    for _ in range(200):
        statuses = await _statuses(settings)
        if all(statuses.get(k) == v for k, v in want.items()):
            return
        await asyncio.sleep(0.3)
    history = await _rows(
        settings,
        "intake",
        intake.status_history.c.referral_id,
        intake.status_history.c.status,
        intake.status_history.c.at,
        intake.status_history.c.detail,
    )
    raise AssertionError(f"not final: {await _statuses(settings)} {history}")


async def _take_to_final_states(settings: Settings) -> dict[str, str]:
    """p-seen seen, p-withdrawn withdrawn, p-open booked; their referral ids."""
    s = settings
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre(CENTRE, "35238", boxes=3), correlation_id=CENTRE)
            await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            for reference in ("p-seen", "p-withdrawn", "p-open"):
                await gp.publish(referral(reference), correlation_id=reference)
        await tap.wait_for(lambda es: len([e for e in es if e.type == "slot.assigned"]) == 3, 60)
        ids = {
            e.data["reference"]: e.data["referral_id"]
            for e in tap.of_type("submission.acknowledged")
        }
        slots = {
            e.data["referral_id"]: e.data["appointment_id"] for e in tap.of_type("slot.assigned")
        }
    seen = ids["p-seen"]
    await consultation_over(s.data_dir, slots[seen])
    report = ConsultationCompleted(appointment_id=slots[seen], referral_id=seen, centre_id=CENTRE)
    async with EventPublisher(s.broker_url, s.namespace, "centre", actor=f"centre-{CENTRE}") as c:
        await c.publish(report, correlation_id=seen)
    withdrawal = ReferralCancelled(
        referral_id=ids["p-withdrawn"], cancelled_by=CancelledBy.REFERRER, reason="guéri"
    )
    async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
        await gp.publish(withdrawal, correlation_id=ids["p-withdrawn"])
    # A withdrawal reads "cancelled" in intake's table (its history says withdrawn).
    await _final(s, {"p-seen": "seen", "p-withdrawn": "cancelled", "p-open": "appointment"})
    return ids


async def _purge(settings: Settings, now: datetime) -> None:
    environment = {
        **os.environ,
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
        "AIGUILLAGE_PURGE_BATCH": "2",
    }
    done = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiguillage", "purge", "--now", now.isoformat()),
        env=environment,
        cwd=Path(__file__).parents[2],
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(done.communicate(), timeout=120)
    assert done.returncode == 0, errors.decode()[-2000:]


async def test_after_the_retention_only_the_pseudonymous_record_is_left(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    ids = await _take_to_final_states(s)
    before = await _day(s, processes)
    assert before["booked"] >= 2 and before["seen"] == 1

    # Past neither retention: nothing of theirs goes.
    await _purge(s, datetime.now(UTC) + timedelta(days=30))
    assert len(await _rows(s, "intake", intake.identities.c.referral_id)) == 3
    # Past both, the services still running beside the purge.
    await _purge(s, datetime.now(UTC) + timedelta(days=100))

    kept = {r.referral_id for r in await _rows(s, "intake", intake.identities.c.referral_id)}
    assert kept == {ids["p-open"]}  # not final: intake keeps it
    details = await _rows(s, "intake", intake.referrals.c.id, intake.referrals.c.detail)
    for referral_id, detail in details:
        if referral_id != ids["p-open"]:
            assert not {"reason", "reasons", "test_prescribed"} & set(detail)
    cases = await _rows(s, "regulation", regulation.cases.c.clinical)
    assert cases and all(c.clinical == {} for c in cases)
    reasons = await _rows(s, "regulation", regulation.decisions.c.reasons)
    assert all(r.reasons == [] for r in reasons)
    assert await _rows(s, "scheduler", scheduler.regulations.c.referral_id) == []
    assert await _rows(s, "notifier", notifier.contacts.c.referral_id) == []
    assert await _rows(s, "notifier", notifier.notifications.c.body) == []
    # The pseudonymous record: the referrals' states, and the ARS's figures unchanged.
    assert (await _statuses(s))["p-seen"] == "seen"
    assert await _day(s, processes) == before
    # Each service's audit: what it purged, counts only; the first run purged nothing.
    for service, category in (
        ("intake", "identity"),
        ("regulation", "clinical"),
        ("scheduler", "clinical"),
        ("notifier", "identity"),
    ):
        runs = await _rows(s, service, purges.c.counts, purges.c.complete, purges.c.clock)
        runs.sort(key=lambda r: r.clock)
        assert [r.complete for r in runs] == [True, True]
        assert category in runs[1].counts and category not in runs[0].counts
        assert "Éloïse" not in str(runs[1].counts)
