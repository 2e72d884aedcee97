"""Identity at rest (issue 34): intake seals every identity field, a rotation re-seals
every row under a new data key while referrals keep coming in, every referral still
reads, and intake's database read raw (the SQLite files' bytes, every PostgreSQL table
as text) holds no name, NIR, phone or e-mail in clear.

Intake runs in the test's process with the real broker (its consumers and its relay);
the rotation is the command's own function on a database connection of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from services.intake import Vault, identities_by_key, rotate_identity_key
from services.intake.app import build
from services.intake.store import referrals
from services.intake.store.tables import identities
from shared.auth import Role, issue_token
from shared.db import Database
from shared.events.nir import nir_key
from shared.messaging_tables import outbox
from shared.settings import ServiceName, Settings
from tests.conftest import PostgresDatabases
from tests.helpers import running

FIRST, LAST = "Zéphyrine", "Quatrebarbes"


def _patient(index: int) -> dict[str, Any]:
    first13 = f"2850578006{index:03d}"
    return {
        "first_name": f"{FIRST}{chr(65 + index % 26)}",
        "last_name": f"{LAST}{index:02d}",
        "birth_date": "1985-05-17",
        "nir": f"{first13}{nir_key(first13):02d}",
        "phone": f"06998877{index:02d}",
        "email": f"zephyrine.q{index:02d}@exemple.fr",
        "address": f"{index} rue des Secrets-Bien-Gardés",
        "commune_insee": "35238",
        "sms_consent": True,
    }


def _body(index: int) -> dict[str, Any]:
    return {
        "referrer": {"kind": "gp", "identifier": "10001234567", "reply_to": "prop"},
        "reference": f"rest-{index}",
        "patient": _patient(index),
        "clinical": {"symptomatic": True, "vitals": {"spo2": 96}},
    }


# What must never be found in clear: each patient's names, NIR, phone, e-mail.
def _clear_values(count: int) -> list[bytes]:
    found: list[bytes] = [LAST.encode(), FIRST.encode()]
    for index in range(count):
        patient = _patient(index)
        found += [
            patient["nir"].encode(),
            patient["phone"].encode(),
            f"+33{patient['phone'][1:]}".encode(),
            patient["email"].encode(),
        ]
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
async def flow_settings(
    request: pytest.FixtureRequest, settings: Settings, postgres: PostgresDatabases
) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        yield settings
        return
    url = await postgres.create("identity")
    yield settings.model_copy(update={"intake_database_url": url})


async def _submit(http: httpx.AsyncClient, indexes: range) -> list[str]:
    made = []
    for index in indexes:
        answer = await http.post("/referrals", json=_body(index))
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["referral_id"])
    return made


async def _relayed(database: Database) -> None:
    """Until intake's relay has published every event staged (the contacts' bodies are
    emptied then)."""
    for _ in range(600):
        async with database.transaction() as session:
            pending = await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{pending} events never relayed")


async def test_identities_sealed_rotated_under_a_running_flow_and_never_in_clear(
    flow_settings: Settings,
) -> None:
    settings = flow_settings
    token = issue_token(settings, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    runtime = build(settings)
    async with running(runtime):
        transport = httpx.ASGITransport(app=runtime.http_app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://intake", headers=headers
        ) as http:
            made = await _submit(http, range(12))
            # The rotation (the command's function, its own connection) while more come in.
            command_db = Database(settings.database_url(ServiceName.INTAKE))
            try:
                (new_key, resealed), later = await asyncio.gather(
                    rotate_identity_key(command_db, Vault.of(settings), batch=5),
                    _submit(http, range(12, 24)),
                )
                made += later
                async with command_db.transaction() as session:
                    by_key = await identities_by_key(session)
            finally:
                await command_db.dispose()
            assert resealed >= 12
            # No row left under the old key, none in clear: every one under the new key.
            assert by_key == {new_key: 24}
            await _every_referral_reads(http, runtime.database, settings, made)
            await _relayed(runtime.database)
    await _nothing_in_clear(settings)


async def _every_referral_reads(
    http: httpx.AsyncClient, database: Database, settings: Settings, made: list[str]
) -> None:
    listed = (await http.get("/referrals", params={"limit": 200})).json()["referrals"]
    names = {r["referral_id"]: r["patient"] for r in listed}
    vault = Vault.of(settings)  # a fresh process's: the keys unwrapped from the database
    async with database.transaction() as session:
        for index, referral_id in enumerate(made):
            patient = _patient(index)
            assert names[referral_id] == {
                "first_name": patient["first_name"],
                "last_name": patient["last_name"],
            }
            row = (
                await session.execute(
                    select(identities).where(identities.c.referral_id == referral_id)
                )
            ).one()
            person = await vault.person(session, row)
            assert (person.nir, person.email, person.address) == (
                patient["nir"],
                patient["email"],
                patient["address"],
            )
            # The NIR is found by its keyed hash, never compared in clear.
            assert await referrals.by_nir_hash(session, vault.nir_hash(patient["nir"])) == [
                referral_id
            ]
    # A search by name reads the sealed names (no LIKE on a column any more).
    found = (await http.get("/referrals", params={"q": f"{LAST.lower()}07"})).json()
    assert [r["reference"] for r in found["referrals"]] == ["rest-7"]


async def _nothing_in_clear(settings: Settings) -> None:
    url = settings.database_url(ServiceName.INTAKE)
    if url.startswith("sqlite"):
        raw = _sqlite_bytes(Path(settings.data_dir))
    else:
        raw = await _postgres_tables(url)
    leaked = [value.decode() for value in _clear_values(24) if value in raw]
    assert not leaked, f"in clear in intake's database: {leaked[:5]}"


def _sqlite_bytes(folder: Path) -> bytes:
    """Intake's SQLite files as they lie on the disk (the database, its WAL if any)."""
    files = sorted(folder.glob("intake.db*"))
    assert files
    return b"".join(path.read_bytes() for path in files)


async def _postgres_tables(url: str) -> bytes:
    """Every row of every table of intake's PostgreSQL database, as text."""
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
