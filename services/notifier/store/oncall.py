"""What the ARS's on-call contacts were told of each département's alerts (never who
they are: the settings hold that)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import oncall_notices as t
from shared.db import as_utc

_ROW = select(t.c.open).where(
    t.c.departement == bindparam("dep"), t.c.kind == bindparam("alert_kind")
)
_LAST_TOLD = select(func.max(t.c.told_at)).where(t.c.departement == bindparam("dep"))
_INSERT = insert(t)
# The bound names differ from the columns': an UPDATE reserves the column names for SET.
_OPEN = (
    update(t)
    .where(t.c.departement == bindparam("dep"), t.c.kind == bindparam("alert_kind"))
    .values(open=True)
)
_TOLD = (
    update(t)
    .where(t.c.departement == bindparam("dep"), t.c.kind == bindparam("alert_kind"))
    .values(told_at=bindparam("at"))
)
# Closed once: the one caller that closes it tells its end.
_CLOSE = (
    update(t)
    .where(
        t.c.departement == bindparam("dep"),
        t.c.kind == bindparam("alert_kind"),
        t.c.open.is_(True),
    )
    .values(open=False)
)


async def last_told(session: AsyncSession, departement: str) -> datetime | None:
    """When the département's on-call was last told an alert began (any cause)."""
    value = (await session.execute(_LAST_TOLD, {"dep": departement})).scalar()
    return as_utc(value) if isinstance(value, datetime) else None


async def open_alert(session: AsyncSession, departement: str, kind: str) -> None:
    """The alert of this cause runs: its end will be told."""
    params = {"dep": departement, "alert_kind": kind}
    if (await session.execute(_ROW, params)).first() is None:
        row = {"departement": departement, "kind": kind, "open": True, "told_at": None}
        await session.execute(_INSERT, row)
    else:
        await session.execute(_OPEN, params)


async def mark_told(session: AsyncSession, departement: str, kind: str, at: datetime) -> None:
    await session.execute(_TOLD, {"dep": departement, "alert_kind": kind, "at": at})


async def close_alert(session: AsyncSession, departement: str, kind: str) -> bool:
    """True for the one caller that closes an alert told as running."""
    result = await session.execute(_CLOSE, {"dep": departement, "alert_kind": kind})
    return bool(getattr(result, "rowcount", 0))
