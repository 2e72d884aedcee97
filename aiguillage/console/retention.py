"""The console's own retention (issue 34): its audit of actions, the trail of failed
log-ins and the sessions ended long ago (who logged in when) are kept
``AIGUILLAGE_RETENTION_CONSOLE_AUDIT_DAYS`` (a year: the CNIL's recommendation on access
logs, 6 months to a year); an account disabled ``AIGUILLAGE_RETENTION_DISABLED_ACCOUNT_DAYS``
ago (a year: as long as the audit that names it) is deleted with its sessions.

The same purge as the services' (``shared.retention.run_purge``: small batches by primary
key, each its own transaction, resumable), run by ``aiguillage purge`` (``--service
console``, or with all), and recorded in the console's ``purges`` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from aiguillage.console.people import accounts, audit, login_failures, sessions
from shared.retention import Category, FindDue, Purge, Retention, Step, cutoff

_IDS: BindParameter[Any] = sa.bindparam("ids", expanding=True)
_CUTOFF: BindParameter[Any] = sa.bindparam("cutoff")
_LIMIT: BindParameter[Any] = sa.bindparam("limit")

_AUDIT_DUE = sa.select(audit.c.id).where(audit.c.at <= _CUTOFF).order_by(audit.c.id).limit(_LIMIT)
_FAILURES_DUE = (
    sa.select(login_failures.c.id)
    .where(login_failures.c.at <= _CUTOFF)
    .order_by(login_failures.c.id)
    .limit(_LIMIT)
)
# A session ended (expired, or revoked) before the cut-off: a trace of a log-in, no more.
_SESSIONS_DUE = (
    sa.select(sessions.c.id)
    .where(sa.or_(sessions.c.expires_at <= _CUTOFF, sessions.c.revoked_at <= _CUTOFF))
    .order_by(sessions.c.id)
    .limit(_LIMIT)
)
_ACCOUNTS_DUE = (
    sa.select(accounts.c.id)
    .where(accounts.c.disabled.is_(True), accounts.c.disabled_at <= _CUTOFF)
    .order_by(accounts.c.id)
    .limit(_LIMIT)
)
_DELETE = {
    "console_audit": audit.delete().where(audit.c.id.in_(_IDS)),
    "console_login_failures": login_failures.delete().where(login_failures.c.id.in_(_IDS)),
    "console_sessions": sessions.delete().where(sessions.c.id.in_(_IDS)),
}
# An account enabled again meanwhile (``aiguillage accounts reset``) is not deleted.
_DELETE_ACCOUNT_SESSIONS = sessions.delete().where(
    sessions.c.account_id.in_(
        sa.select(accounts.c.id).where(accounts.c.id.in_(_IDS), accounts.c.disabled.is_(True))
    )
)
_DELETE_ACCOUNTS = accounts.delete().where(accounts.c.id.in_(_IDS), accounts.c.disabled.is_(True))


def _due(statement: Any, keep: timedelta) -> FindDue:
    async def find(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        found = await session.scalars(statement, {"cutoff": cutoff(now, keep), "limit": limit})
        return list(found.all())

    return find


def _delete(table: str) -> Purge:
    async def purge(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        await session.execute(_DELETE[table], {"ids": list(keys)})
        return len(keys)

    return purge


async def _delete_accounts(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
    await session.execute(_DELETE_ACCOUNT_SESSIONS, {"ids": list(keys)})
    result = await session.execute(_DELETE_ACCOUNTS, {"ids": list(keys)})
    return int(getattr(result, "rowcount", 0) or 0)


def purge_steps(retention: Retention) -> list[Step]:
    """The console's traces past their year, then the accounts disabled long enough."""
    traces = retention.console_audit
    return [
        Step(Category.AUDIT, "console_audit", _due(_AUDIT_DUE, traces), _delete("console_audit")),
        Step(
            Category.AUDIT,
            "console_login_failures",
            _due(_FAILURES_DUE, traces),
            _delete("console_login_failures"),
        ),
        Step(
            Category.AUDIT,
            "console_sessions",
            _due(_SESSIONS_DUE, traces),
            _delete("console_sessions"),
        ),
        Step(
            Category.ACCOUNTS,
            "console_accounts",
            _due(_ACCOUNTS_DUE, retention.disabled_accounts),
            _delete_accounts,
        ),
    ]
