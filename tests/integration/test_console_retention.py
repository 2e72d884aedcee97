"""The console's own retention (issue 34), with an injected clock, on SQLite and
PostgreSQL, through ``aiguillage purge --service console``'s function: its audit, the
failed log-ins and the sessions ended a year ago go, the recent ones stay; an account
disabled a year ago goes with its sessions, one disabled lately or enabled again stays;
the purge's record says what went (counts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiguillage.commands.purge import Target, purge_service
from aiguillage.console.people import AccountStore, accounts, audit, login_failures, sessions
from shared.auth import Role
from shared.events import utcnow
from shared.retention import PurgeOptions, purges
from shared.settings import Settings
from tests.conftest import PostgresDatabases

PASSWORD = "un mot de passe assez long"
OPTIONS = PurgeOptions(batch=1, pause_seconds=0)

Urls = Callable[[str], Awaitable[str]]


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresDatabases) -> Urls:
    async def sqlite(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"

    return sqlite if request.param == "sqlite" else postgres.create


async def _people(store: AccountStore, start: datetime) -> None:
    """At ``start``: four accounts, a session and a failed log-in, an audit entry; one
    account disabled, one disabled and enabled again. A year later: another session,
    another entry, an account disabled."""
    for login in ("actif", "parti", "revenu", "recent"):
        await store.add(f"{login}@ars.fr", login, Role.ARS, "53", PASSWORD)
    store.clock = lambda: start
    assert await store.log_in("actif@ars.fr", PASSWORD, "10.0.0.1") is not None
    assert await store.log_in("parti@ars.fr", PASSWORD, "10.0.0.2") is not None
    assert await store.log_in("actif@ars.fr", "pas le bon", "10.0.0.9") is None
    actif = await store.get("actif@ars.fr")
    assert actif is not None
    await store.record(actif, "activate_centre", region="53")
    assert await store.disable("parti@ars.fr") == 1
    await store.disable("revenu@ars.fr")
    await store.reset("revenu@ars.fr", PASSWORD)
    later = start + timedelta(days=300)
    store.clock = lambda: later
    assert await store.log_in("actif@ars.fr", PASSWORD, "10.0.0.1") is not None
    await store.record(actif, "change_capacity", region="53")


async def test_the_console_keeps_its_traces_and_disabled_accounts_a_year(urls: Urls) -> None:
    url = await urls("console")
    start = utcnow()
    store = AccountStore(url)
    try:
        await store.migrate()
        await _people(store, start)
        async with store.database.transaction() as session:
            # Disabled just before the second purge's year: kept by it.
            await session.execute(
                accounts.update()
                .where(accounts.c.login == "recent@ars.fr")
                .values(disabled=True, disabled_at=start + timedelta(days=100))
            )
    finally:
        await store.close()
    settings = Settings(_env_file=None, console_database_url=url)  # type: ignore[call-arg]
    early = await purge_service(settings, Target.CONSOLE, start + timedelta(days=300), OPTIONS)
    assert early.total == 0
    report = await purge_service(settings, Target.CONSOLE, start + timedelta(days=400), OPTIONS)
    assert report.counts == {
        "audit": {"console_audit": 1, "console_login_failures": 1, "console_sessions": 2},
        "accounts": {"console_accounts": 1},
    }
    store = AccountStore(url)
    try:
        async with store.database.transaction() as session:
            left = {
                table.name: len((await session.execute(sa.select(table))).all())
                for table in (audit, login_failures, sessions)
            }
            logins = set((await session.scalars(sa.select(accounts.c.login))).all())
            runs = (await session.execute(sa.select(purges.c.counts, purges.c.complete))).all()
    finally:
        await store.close()
    assert left == {"console_audit": 1, "console_login_failures": 0, "console_sessions": 1}
    assert logins == {"actif@ars.fr", "revenu@ars.fr", "recent@ars.fr"}
    assert sorted((c, ok) for c, ok in runs if c) == [(report.counts, True)]
