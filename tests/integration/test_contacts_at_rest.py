"""The notifier's contacts at rest (issue 34): the names, phone and e-mail it keeps to
tell the patients and Centre 15 are sealed under its own data keys; a rotation re-seals
every contact while contacts keep coming in; a centre's day list still names its
patients, and each name it answers is written in the notifier's log of identity reads
(once per page within the window), which only the DPO reads; after the patients were
told and an escalation sent Centre 15 whom to call back, the notifier's database read
raw (the SQLite files' bytes, every PostgreSQL table as text) holds no name, phone or
e-mail in clear: not in the contacts, nor the notifications, nor the outbox.

The notifier runs in the test's process on the real broker (its consumers, relay and
dispatcher); the rotation is the command's own function on a connection of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

import services.notifier
from services.notifier.app import build
from services.notifier.store.tables import contacts, identity_reads, notifications
from shared.auth import Role, issue_token
from shared.db import Database
from shared.events import (
    Envelope,
    EventPayload,
    PatientContact,
    PatientEscalated,
    Priority,
    ReferrerKind,
    ReferrerRef,
    SlotAssigned,
)
from shared.messaging_tables import outbox
from shared.paris import PARIS
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.conftest import PostgresDatabases
from tests.helpers import Tap, running

FIRST, LAST = "Ermengarde", "Cachetrésor"
CENTRE = "rennes-scelle"
START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
DAY = START.astimezone(PARIS).date().isoformat()


def _contact(index: int) -> PatientContact:
    return PatientContact(
        referral_id=f"scelle-{index:02d}",
        patient_ref=f"p-scelle-{index:02d}",
        first_name=f"{FIRST}{chr(65 + index)}",
        last_name=f"{LAST}{index:02d}",
        phone=f"07987654{index:02d}",
        email=f"ermengarde.c{index:02d}@exemple.fr",
        sms_consent=True,
        referrer=ReferrerRef(kind=ReferrerKind.GP, identifier="gp-1", reply_to="gp-1"),
    )


def _clear_values(count: int) -> list[bytes]:
    found = [FIRST.encode(), LAST.encode(), b"Cachetr"]
    for index in range(count):
        contact = _contact(index)
        assert contact.phone is not None and contact.email is not None
        found += [
            contact.phone.encode(),
            f"+33{contact.phone[1:]}".encode(),
            contact.email.encode(),
        ]
    return found


def _slot(index: int) -> SlotAssigned:
    start = START + timedelta(minutes=20 * index)
    return SlotAssigned(
        centre_id=CENTRE,
        appointment_id=f"a-scelle-{index:02d}",
        referral_id=f"scelle-{index:02d}",
        patient_ref=f"p-scelle-{index:02d}",
        centre_name="École de la Poterie",
        centre_commune_insee="35238",
        centre_address="12 rue de la Poterie",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.ROUTINE,
        distance_km=2.5,
        test_eligible=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def flow_settings(
    request: pytest.FixtureRequest, settings: Settings, postgres: PostgresDatabases
) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        yield settings
        return
    url = await postgres.create("contacts")
    yield settings.model_copy(update={"notifier_database_url": url})


async def _publish(settings: Settings, payloads: list[EventPayload]) -> None:
    async with EventPublisher(settings.broker_url, settings.namespace, "t") as publisher:
        for payload in payloads:
            envelope = Envelope.wrap(payload, source="t", correlation_id=new_correlation())
            await publisher.publish_envelope(envelope, payload.routing_key())


def new_correlation() -> str:
    return f"c-{datetime.now(UTC).timestamp()}"


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.1)


async def _count(database: Database, query: Any) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(query) or 0)


async def test_contacts_sealed_rotated_read_logged_and_never_in_clear(
    flow_settings: Settings,
) -> None:
    settings = flow_settings
    runtime = build(settings)
    async with running(runtime):
        db = runtime.database
        await _publish(settings, [p for i in range(6) for p in (_contact(i), _slot(i))])

        async def six_contacts() -> bool:
            return await _count(db, select(func.count()).select_from(contacts)) == 6

        await _until(six_contacts)
        # The rotation (the command's function, its own connection) while more come in.
        command_db = Database(settings.database_url(ServiceName.NOTIFIER))
        try:
            (new_key, resealed), _ = await asyncio.gather(
                services.notifier.rotate_contact_key(
                    command_db, services.notifier.ContactVault.of(settings), batch=2
                ),
                _publish(settings, [p for i in range(6, 10) for p in (_contact(i), _slot(i))]),
            )

            async def ten_under_the_new_key() -> bool:
                async with command_db.transaction() as session:
                    by_key = await services.notifier.contacts_by_key(session)
                return by_key == {new_key: 10}

            await _until(ten_under_the_new_key)
        finally:
            await command_db.dispose()
        assert resealed >= 6
        # A centre hands patient 0 back: Centre 15 is told whom to call back.
        escalated = PatientEscalated(
            referral_id="scelle-00",
            centre_id=CENTRE,
            appointment_id="a-scelle-00",
            reason="aggravation",
            departement="35",
        )
        async with Tap(settings.broker_url, settings.namespace, "reply.samu-35.#") as samu:
            async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
                back = Envelope.wrap(escalated, source="scheduler", correlation_id="scelle-00")
                await pub.publish_envelope(back, escalated.routing_key(), exchange="events")
            await _day_list_names_each_patient_and_logs_it(runtime, settings)
            told = await samu.wait_for(lambda es: bool(es), timeout=30)
        # It carried whom to call back, in clear, on the broker: at rest, no more.
        assert told[0].data["detail"]["patient"]["last_name"] == f"{LAST}00"
        await _until(lambda: _all_told(db))
    await _nothing_in_clear(settings)


async def _all_told(database: Database) -> bool:
    """Every notice sent (or refused), every event published: the outbox's bodies that
    named a patient are emptied then."""
    unsent = (
        select(func.count())
        .select_from(notifications)
        .where(notifications.c.status.in_(("pending", "sending")))
    )
    pending = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    return await _count(database, unsent) == 0 and await _count(database, pending) == 0


async def _day_list_names_each_patient_and_logs_it(runtime: Any, settings: Settings) -> None:
    centre = issue_token(settings, Role.CENTRE, CENTRE, ServiceName.NOTIFIER)
    dpo = issue_token(settings, Role.DPO, "dpo:d.p.o@exemple.fr", ServiceName.NOTIFIER)
    transport = httpx.ASGITransport(app=runtime.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        as_centre = {
            "Authorization": f"Bearer {centre}",
            "X-Aiguillage-Account": "accueil@poterie.fr",
            "X-Aiguillage-Page": "/centre",
        }
        path = f"/centres/{CENTRE}/appointments"
        for _ in range(2):  # read twice within the window: written once
            answer = await http.get(path, params={"day": DAY}, headers=as_centre)
            assert answer.status_code == 200, answer.text
        listed = {a["referral_id"]: a["patient_name"] for a in answer.json()["appointments"]}
        expected = {
            c.referral_id: f"{c.first_name} {c.last_name}" for c in map(_contact, range(10))
        }
        assert listed == expected
        async with runtime.database.transaction() as session:
            logged = (await session.execute(select(identity_reads))).all()
        assert sorted(r.referral_id for r in logged) == sorted(expected)
        assert {(r.reader_role, r.reader, r.account, r.page) for r in logged} == {
            ("centre", CENTRE, "accueil@poterie.fr", "/centre")
        }
        # The log is the DPO's: a centre may not read it.
        refused = await http.get("/identity-reads", headers={"Authorization": f"Bearer {centre}"})
        assert refused.status_code == 403
        as_dpo = {"Authorization": f"Bearer {dpo}"}
        one = await http.get("/identity-reads", params={"referral_id": "scelle-03"}, headers=as_dpo)
        assert [r["referral_id"] for r in one.json()["reads"]] == ["scelle-03"]
        assert one.json()["reads"][0]["route"] == "GET /centres/{id}/appointments"
        every = await http.get(
            "/identity-reads", params={"account": "accueil@poterie.fr"}, headers=as_dpo
        )
        assert len(every.json()["reads"]) == 10
        # Another person of the same centre (its token's subject, another account): read.
        other = {**as_centre, "X-Aiguillage-Account": "infirmiere@poterie.fr"}
        assert (await http.get(path, params={"day": DAY}, headers=other)).status_code == 200
        all_reads = await http.get("/identity-reads", headers=as_dpo)
        assert len(all_reads.json()["reads"]) == 20


async def _nothing_in_clear(settings: Settings) -> None:
    url = settings.database_url(ServiceName.NOTIFIER)
    if url.startswith("sqlite"):
        raw = _sqlite_bytes(Path(settings.data_dir))
    else:
        raw = await _postgres_tables(url)
    leaked = [value.decode() for value in _clear_values(10) if value in raw]
    assert not leaked, f"in clear in the notifier's database: {leaked[:5]}"


def _sqlite_bytes(folder: Path) -> bytes:
    """The notifier's SQLite files as they lie on the disk (the database, its WAL)."""
    files = sorted(folder.glob("notifier.db*"))
    assert files
    return b"".join(path.read_bytes() for path in files)


async def _postgres_tables(url: str) -> bytes:
    """Every row of every table of the notifier's PostgreSQL database, as text."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            tables = (
                await session.scalars(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public'"
                    )
                )
            ).all()
            rows = []
            for table in tables:
                rows += (await session.scalars(text(f'SELECT t::text FROM "{table}" t'))).all()
    finally:
        await database.dispose()
    return "\n".join(rows).encode()
