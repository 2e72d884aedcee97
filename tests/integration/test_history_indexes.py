"""The indexes a database with a wave's history relies on (issue 32, bench/history.py)
are the ones the migrations make, on SQLite and on PostgreSQL, and the queries they are
for read them (not the whole table) on a table that holds a history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
from sqlalchemy import MetaData, inspect, text

from shared.db import Database
from shared.messaging_tables import metadata as messaging_metadata
from shared.migrations import upgrade

SERVICES = ["intake", "regulation", "scheduler", "notifier"]


def _declared(metadata: MetaData) -> dict[str, set[str]]:
    return {
        table.name: {index.name for index in table.indexes if index.name}
        for table in metadata.tables.values()
    }


async def _made(database: Database, tables: list[str]) -> dict[str, set[str]]:
    def read(connection: object) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {t: {i["name"] for i in inspector.get_indexes(t) if i["name"]} for t in tables}

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_declared_index_is_migrated(service: str, tmp_path: Path, postgres) -> None:
    declared = _declared(import_module(f"services.{service}.store.tables").metadata)
    declared |= _declared(messaging_metadata)
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, f"services.{service}:migrations")
            made = await _made(database, sorted(declared))
            missing = {t: names - made[t] for t, names in declared.items() if names - made[t]}
            assert not missing, (url, missing)
        finally:
            await database.dispose()


async def test_recent_demand_reads_its_index_not_the_appointments(postgres) -> None:
    """Five thousand appointments of the past days, twenty of the last hour: the policy's
    count of each candidate centre's recent bookings reads the index (it scanned every
    appointment ever booked at each booking)."""
    database = Database(await postgres.create("history_demand"))
    try:
        await upgrade(database, "services.scheduler:migrations")
        now = datetime.now(UTC)
        rows = [
            {
                "id": f"a-{i}",
                "ref": f"r-{i}",
                "centre": f"c-{i % 40}",
                "at": now - (timedelta(minutes=3 * i) if i < 20 else timedelta(days=1 + i / 500)),
            }
            for i in range(5000)
        ]
        async with database.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO appointments (id, referral_id, patient_ref, centre_id, start,"
                    ' "end", box, priority, distance_km, status, created_at)'
                    " VALUES (:id, :ref, 'p', :centre, :at, :at, 1, 'routine', 1.0,"
                    " 'fulfilled', :at)"
                ),
                rows,
            )
            await connection.execute(text("ANALYZE appointments"))
            plan = "\n".join(
                (
                    await connection.execute(
                        text(
                            "EXPLAIN SELECT centre_id, priority, count(*) FROM appointments"
                            " WHERE centre_id IN ('c-1', 'c-2', 'c-3') AND created_at >= :since"
                            " GROUP BY centre_id, priority"
                        ),
                        {"since": now - timedelta(hours=2)},
                    )
                ).scalars()
            )
        assert "ix_appointments_centre_created" in plan, plan
        assert "Seq Scan on appointments" not in plan, plan
    finally:
        await database.dispose()
