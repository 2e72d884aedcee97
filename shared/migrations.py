"""Alembic, driven from code: each service keeps its migrations in
``services/<service>/migrations`` and upgrades its own database at start."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import structlog
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from shared.db import Database

log = structlog.get_logger(__name__)


def _config(script_location: str, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, script_location: str, revision: str = "head") -> None:
    """Upgrade the database to ``revision``; safe when several replicas start at once."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Replicas of one service share a database: one migrates, the others wait.
            key = zlib.crc32(script_location.encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        config = _config(script_location, connection)
        ahead = _unknown_revisions(config, connection)
        if ahead:
            # A later release migrated this database (a rolling update, this replica
            # the old one): its migrations only add to what this code reads (expand,
            # then contract a release later), so this code runs on it as it is.
            log.warning("database migrated by a later release", revisions=sorted(ahead))
            return
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


def _unknown_revisions(config: Config, connection: Connection) -> set[str]:
    """The database's current revisions that this code's scripts do not know."""
    current = MigrationContext.configure(connection).get_current_heads()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    return set(current) - known


def run_env(target_metadata: MetaData | Sequence[MetaData]) -> None:
    """Body of each service's ``migrations/env.py``."""
    connection: Connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
