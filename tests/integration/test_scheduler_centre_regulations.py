"""What a centre reads of the decisions behind its patients (issue 30): the scheduler
keeps the decision that stands for each referral (a regulator's override replaces the
protocol's), and GET /centres/{id}/regulations gives a centre the reasons split into
findings and risk factors, the protocol version, who decided and when, for its own
appointments of the day only; on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from fastapi import FastAPI

from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.http.centres import router
from services.scheduler.http.state import SchedulerApi
from shared.auth import Role, authenticator, issue_token
from shared.db import Database
from shared.events import Reason, new_id
from shared.migrations import upgrade
from shared.paris import in_paris
from shared.settings import ServiceName, Settings
from tests.helpers import centre, handle, oriented, scheduler_queue

KEYS = Settings(auth_secret="x" * 40)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: Any, postgres: Any, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres":
        url = await postgres.create("scheduler")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}"
    db = Database(url)
    await upgrade(db, "services.scheduler:migrations")
    try:
        yield db
    finally:
        await db.dispose()


async def _publishes_nothing(*args: object, **kwargs: object) -> NoReturn:
    # A read: the route publishes nothing at the door (and this test has no broker).
    raise AssertionError("a read published at the door")


def _client(database: Database) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.scheduler = SchedulerApi(
        database, _publishes_nothing, authenticator(KEYS, ServiceName.SCHEDULER)
    )
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _as(role: Role, subject: str) -> dict[str, str]:
    token = issue_token(KEYS, role, subject, ServiceName.SCHEDULER)
    return {"Authorization": f"Bearer {token}"}


REASONS = (
    Reason(code="severity.spo2", message="SpO2 à 93 %", field="clinical.vitals.spo2"),
    Reason(code="risk.factor.diabetes", message="diabète", field="clinical.risk_factors"),
    Reason(code="orient", message="orienté vers un centre"),
)


async def test_a_centre_reads_the_decision_behind_its_own_patients_only(
    database: Database,
) -> None:
    handlers = SchedulerHandlers()
    await handle(database, scheduler_queue(handlers, "centres"), centre("rennes-a", "35238"))
    await handle(database, scheduler_queue(handlers, "centres"), centre("paris-b", "75115"))
    referrals = scheduler_queue(handlers, "referrals")
    first = oriented("r-1").model_copy(update={"reasons": REASONS})
    delivery = await handle(database, referrals, first)
    [slot] = [e for e in delivery.emitted if e.type == "slot.assigned"]
    assert slot.data["centre_id"] == "rennes-a"
    # A regulator confirms the orientation: their decision is the one that stands.
    override = first.model_copy(
        update={"decided_by": "dr-house", "decision_id": new_id(), "reasons": REASONS[1:2]}
    )
    await handle(database, referrals, override)
    await handle(database, referrals, oriented("r-2", insee="75115"))
    day = in_paris(datetime.fromisoformat(slot.data["start"])).date().isoformat()

    async with _client(database) as http:
        own = await http.get(
            "/centres/rennes-a/regulations",
            params={"day": day},
            headers=_as(Role.CENTRE, "rennes-a"),
        )
        other = await http.get("/centres/rennes-a/regulations", headers=_as(Role.CENTRE, "paris-b"))
        ars = await http.get("/centres/rennes-a/regulations", headers=_as(Role.ARS, "53"))
    assert own.status_code == 200, own.text
    [found] = own.json()["regulations"]  # not paris-b's patient
    assert found["appointment_id"] == slot.data["appointment_id"]
    assert found["risk_factors"] == [{"code": "risk.factor.diabetes", "message": "diabète"}]
    assert found["findings"] == []  # the override's reasons, not the protocol's
    assert (found["by"], found["protocol_version"]) == ("regulator", "1")
    assert "dr-house" not in own.text  # who decided, not which regulator
    assert datetime.fromisoformat(found["regulated_at"]).tzinfo is not None
    assert (other.status_code, ars.status_code) == (403, 403)


def test_the_reasons_are_split_as_the_centre_reads_them() -> None:
    from services.scheduler.http.centres import split_reasons

    split = split_reasons([r.model_dump(mode="json") for r in REASONS])
    assert [r["code"] for r in split["findings"]] == ["severity.spo2"]
    assert [r["code"] for r in split["risk_factors"]] == ["risk.factor.diabetes"]
    assert [r["code"] for r in split["other"]] == ["orient"]
