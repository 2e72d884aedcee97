"""Every service's migrations run on SQLite and on PostgreSQL, to the same tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from shared.db import Database
from shared.migrations import upgrade

SERVICES = ["intake", "regulation", "scheduler", "notifier"]


async def _tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_on_sqlite_and_postgres(service: str, tmp_path: Path, postgres) -> None:
    from importlib import import_module

    metadata = import_module(f"services.{service}.store.tables").metadata
    expected = set(metadata.tables) | {"outbox", "inbox", "refusals", "alembic_version"}
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, f"services.{service}:migrations")
            await upgrade(database, f"services.{service}:migrations")  # twice: a no-op
            assert await _tables(database) == expected, url
        finally:
            await database.dispose()


# An appointment booked before test eligibility was kept: each service's row as it was.
_BEFORE_TEST_ELIGIBLE = {
    "scheduler": (
        "0003",
        "appointments",
        'INSERT INTO appointments (id, referral_id, patient_ref, centre_id, start, "end", '
        "box, priority, distance_km, status, created_at) VALUES ('a-1', 'r-1', 'p-1', 'c-1', "
        ":t, :t, 1, 'routine', 1.0, 'booked', :t)",
    ),
    "notifier": (
        "0004",
        "centre_appointments",
        "INSERT INTO centre_appointments (appointment_id, centre_id, referral_id, patient_ref, "
        "start, \"end\", box, priority, status) VALUES ('a-1', 'c-1', 'r-1', 'p-1', :t, :t, 1, "
        "'routine', 'booked')",
    ),
}


@pytest.mark.parametrize("service", sorted(_BEFORE_TEST_ELIGIBLE))
async def test_appointments_from_before_test_eligibility_read_false(
    service: str, tmp_path: Path, postgres
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    revision, table, insert = _BEFORE_TEST_ELIGIBLE[service]
    location = f"services.{service}:migrations"
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, location, revision)
            async with database.engine.begin() as connection:
                await connection.execute(text(insert), {"t": datetime.now(UTC)})
            await upgrade(database, location)
            async with database.engine.connect() as connection:
                found = (await connection.execute(text(f"SELECT test_eligible FROM {table}"))).all()
            assert [bool(row[0]) for row in found] == [False], url
        finally:
            await database.dispose()
