"""Async SQLAlchemy engine and sessions: SQLite (aiosqlite) by default,
PostgreSQL (asyncpg) when a URL says so. The same code runs on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time anyway, and queueing in the
        # pool is cheaper and clearer than "database is locked" retries.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Freed and overwritten cells are zeroed: a row deleted or rewritten (an
            # identity sealed, a contact emptied once published) leaves nothing readable.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    # No pre-ping: it costs a round trip per transaction. A connection found dead
    # raises a disconnect error, which invalidates the whole pool, and the consumer
    # holds the message and tries again (database_unavailable).
    return create_async_engine(url, pool_size=10, max_overflow=10)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The server processes of this pool's connections (PostgreSQL): a notification
        # sent by one of them is this process's own commit, already known in-process.
        self.backend_pids: set[int] = set()
        # Told each transaction's time, begin to commit (shared.metrics), when set.
        self.observe: Callable[[float], None] | None = None
        if not self.is_sqlite:

            @event.listens_for(self.engine.sync_engine, "connect")
            def _remember_pid(dbapi_connection: Any, record: Any) -> None:
                pid = int(dbapi_connection.driver_connection.get_server_pid())
                record.info["backend_pid"] = pid
                self.backend_pids.add(pid)

            @event.listens_for(self.engine.sync_engine, "close")
            def _forget_pid(_dbapi_connection: Any, record: Any) -> None:
                self.backend_pids.discard(record.info.get("backend_pid", -1))

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @property
    def asyncpg_dsn(self) -> str:
        """The PostgreSQL URL as asyncpg itself reads it (for a connection of its own)."""
        url = make_url(self.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on exit, rolled back on error."""
        observe = self.observe
        if observe is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        began = perf_counter()
        async with self.sessions() as session, session.begin():
            yield session
        observe(perf_counter() - began)

    async def dispose(self) -> None:
        await self.engine.dispose()


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every datetime we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
