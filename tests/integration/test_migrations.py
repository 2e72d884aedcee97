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

    metadata = import_module(f"services.{service}.tables").metadata
    expected = set(metadata.tables) | {"outbox", "inbox", "refusals", "alembic_version"}
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, f"services.{service}:migrations")
            await upgrade(database, f"services.{service}:migrations")  # twice: a no-op
            assert await _tables(database) == expected, url
        finally:
            await database.dispose()
