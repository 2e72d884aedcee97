"""Intake's people rules: referrers as registered (not as they describe themselves), a
referrer's quotas, request bodies bounded. Intake's HTTP router over a real database
(SQLite, and PostgreSQL for the shared counts), no broker needed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.intake.domain.referrers import RateLimited, Registration
from services.intake.handlers import IntakeHandlers
from services.intake.http import install
from services.intake.store.registry import register
from shared.auth import Role, issue_token
from shared.consumer import Delivery
from shared.db import Database
from shared.events import Envelope, ReferralSubmitted, new_id, utcnow
from shared.http import BodyLimit
from shared.messaging_tables import outbox
from shared.migrations import upgrade
from shared.outbox import OutboxRelay
from shared.senders import ActorKind, Sender, SenderRefused
from shared.settings import Environment, ServiceName, Settings
from tests.strategies import valid_referral

GP = ("gp", "10001234567")
REGISTERED = Registration(
    "gp", "10001234567", "Dr X", "gp-registered", "https://hooks.example.org/aiguillage", ("sms",)
)


class _Relay:
    def notify(self, count: int = 1) -> None:
        pass


async def _database(url: str) -> Database:
    database = Database(url)
    await upgrade(database, "services.intake:migrations")
    return database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _database(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    yield database
    await database.dispose()


def _app(settings: Settings, database: Database) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    handlers = IntakeHandlers(settings)
    install(app, handlers, database, cast(OutboxRelay, _Relay()), settings)
    return app


def _client(settings: Settings, database: Database) -> httpx.AsyncClient:
    token = issue_token(settings, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(settings, database)),
        base_url="http://intake",
        headers={"Authorization": f"Bearer {token}"},
    )


async def _staged(database: Database, event_type: str) -> list[dict[str, Any]]:
    async with database.transaction() as session:
        bodies = (
            await session.scalars(select(outbox.c.body).where(outbox.c.event_type == event_type))
        ).all()
    return [json.loads(b)["data"] for b in bodies]


async def test_the_registered_webhook_and_reply_key_travel_not_the_payload_s(
    settings: Settings, sqlite_db: Database
) -> None:
    """The submission names its own webhook (an internal address) and reply key: both
    are ignored; referral.received carries the registration, channels included."""
    async with sqlite_db.transaction() as session:
        await register(session, REGISTERED, utcnow())
    referral = valid_referral("reg-1")
    referral["referrer"] |= {"webhook_url": "http://10.0.0.1/steal", "reply_to": "someone-else"}
    async with _client(settings, sqlite_db) as http:
        response = await http.post("/referrals", json=referral)
    assert response.status_code == 201, response.text
    (received,) = await _staged(sqlite_db, "referral.received")
    assert received["referrer"] == {
        "kind": "gp",
        "identifier": "10001234567",
        "reply_to": "gp-registered",
        "webhook_url": "https://hooks.example.org/aiguillage",
        "patient_channels": ["sms"],
    }
    # Answered on the registered key too, never on the one the payload named.
    acks = await _staged(sqlite_db, "submission.acknowledged")
    assert [a["reply_to"] for a in acks] == ["gp-registered"]
    # A refused submission's webhook notice goes to the registered webhook as well.
    bad = valid_referral("reg-2")
    bad["referrer"]["webhook_url"] = "http://10.0.0.1/steal"
    del bad["patient"]["last_name"]
    async with _client(settings, sqlite_db) as http:
        assert (await http.post("/referrals", json=bad)).status_code == 422
    (rejected,) = await _staged(sqlite_db, "referral.rejected")
    assert rejected["referrer"]["webhook_url"] == "https://hooks.example.org/aiguillage"


async def test_an_unregistered_referrer_is_refused_in_production_only(
    settings: Settings, sqlite_db: Database
) -> None:
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})
    async with _client(production, sqlite_db) as http:
        response = await http.post("/referrals", json=valid_referral("unk-1"))
    assert response.status_code == 403
    assert response.json()["error_code"] == "unknown_referrer"
    assert await _staged(sqlite_db, "referral.received") == []
    # Development: it speaks for itself (the tests and the demo).
    async with _client(settings, sqlite_db) as http:
        assert (await http.post("/referrals", json=valid_referral("unk-1"))).status_code == 201
    (received,) = await _staged(sqlite_db, "referral.received")
    assert received["referrer"].get("patient_channels") is None  # None: left out
    # Registered, production accepts it.
    async with sqlite_db.transaction() as session:
        await register(session, REGISTERED, utcnow())
    async with _client(production, sqlite_db) as http:
        assert (await http.post("/referrals", json=valid_referral("unk-2"))).status_code == 201


async def test_the_broker_door_refuses_an_unknown_referrer_and_counts_the_same(
    settings: Settings, sqlite_db: Database
) -> None:
    production = settings.model_copy(
        update={"environment": Environment.PRODUCTION, "referrer_per_minute": 2}
    )
    handlers = IntakeHandlers(production)
    sender = Sender("referrer-10001234567", ActorKind.REFERRER, "10001234567")

    async def submit(reference: str) -> None:
        envelope = Envelope(
            id=new_id(),
            type=ReferralSubmitted.event_type,
            source="test",
            correlation_id=new_id(),
            data={**valid_referral(reference), "referrer": {"kind": "gp", "identifier": GP[1]}},
        )
        async with sqlite_db.transaction() as session:
            delivery = Delivery(session=session, envelope=envelope, source="intake")
            delivery.sender = sender
            await handlers.on_submitted(delivery)

    with pytest.raises(SenderRefused) as refused:
        await submit("b-1")
    assert refused.value.code == "unknown_referrer"
    async with sqlite_db.transaction() as session:
        await register(session, REGISTERED, utcnow())
    await submit("b-1")
    await submit("b-2")
    with pytest.raises(RateLimited) as limited:
        await submit("b-3")
    assert limited.value.code == "rate_limited"
    assert len(await _staged(sqlite_db, "referral.received")) == 2


async def test_past_the_rate_429_with_retry_after(
    settings: Settings, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per minute, then per day; each refusal says when to come back; a refused
    submission does not count; the count is in the database (a second app, a
    'replica' over the same database, sees it)."""
    limited = settings.model_copy(update={"referrer_per_minute": 3, "referrer_per_day": 5})
    noon = datetime.fromisoformat("2020-03-30T12:00:10+00:00")
    now = {"at": noon}
    monkeypatch.setattr("services.intake.http.referrals.utcnow", lambda: now["at"])
    async with _client(limited, sqlite_db) as http, _client(limited, sqlite_db) as replica:
        for n in range(2):
            assert (await http.post("/referrals", json=valid_referral(f"r-{n}"))).status_code == 201
        # Every attempt counts, an invalid one too.
        assert (await replica.post("/referrals", content=b"not json")).status_code == 422
        response = await replica.post("/referrals", json=valid_referral("r-3"))
        assert response.status_code == 429
        assert response.json()["error_code"] == "rate_limited"
        assert response.headers["retry-after"] == "50"  # the minute ends at 12:01:00
        now["at"] = noon.replace(minute=1)  # a new minute
        for n in range(2):
            assert (await http.post("/referrals", json=valid_referral(f"s-{n}"))).status_code == 201
        response = await http.post("/referrals", json=valid_referral("s-3"))
        assert response.status_code == 429
        # The day's five are spent: come back at midnight.
        assert int(response.headers["retry-after"]) == (12 * 3600 - 70)
    assert len(await _staged(sqlite_db, "referral.received")) == 4


async def test_413_past_the_body_size(settings: Settings, sqlite_db: Database) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    body = json.dumps(valid_referral("big") | {"padding": "x" * 4000}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    async with _client(small, sqlite_db) as http:
        declared = await http.post(
            "/referrals", content=body, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["error_code"] == "body_too_large"
        streamed = await http.post("/referrals", content=chunked())
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        ok = await http.post("/referrals", json=valid_referral("small"))
        assert ok.status_code == 201
    assert len(await _staged(sqlite_db, "referral.received")) == 1


async def test_the_counts_hold_on_postgresql(settings: Settings, postgres: Any) -> None:
    database = await _database(await postgres.create("intake_people"))
    try:
        limited = settings.model_copy(update={"referrer_per_minute": 2})
        handlers = IntakeHandlers(limited)
        for _ in range(2):
            async with database.transaction() as session:
                await handlers.admit(session, *GP, utcnow())
        with pytest.raises(RateLimited):
            async with database.transaction() as session:
                await handlers.admit(session, *GP, utcnow())
    finally:
        await database.dispose()
