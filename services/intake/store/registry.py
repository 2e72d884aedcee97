"""The referrers the operator registered, and their submissions counted per window:
the statements (``domain.referrers`` says what a registration and a quota are).

The CLI (``aiguillage referrer``) reads and writes the registrations through
``services.intake``; the doors read them and count each submission (``handlers``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain.referrers import Registration, past_quota, windows
from services.intake.store.tables import registered_referrers, submission_counts

_KEY = (
    registered_referrers.c.kind == bindparam("referrer_kind"),
    registered_referrers.c.identifier == bindparam("referrer_id"),
)
_REGISTERED = select(registered_referrers).where(*_KEY)
_REGISTER = insert(registered_referrers)
_REMOVE = delete(registered_referrers).where(*_KEY)
_EVERY = select(registered_referrers.c.kind, registered_referrers.c.identifier).order_by(
    registered_referrers.c.kind, registered_referrers.c.identifier
)


async def registered(session: AsyncSession, kind: str, identifier: str) -> Registration | None:
    parameters = {"referrer_kind": kind, "referrer_id": identifier}
    row = (await session.execute(_REGISTERED, parameters)).first()
    if row is None:
        return None
    return Registration(
        row.kind,
        row.identifier,
        row.name,
        row.reply_to,
        row.webhook_url,
        tuple(row.patient_channels or ()),
    )


async def register(session: AsyncSession, registration: Registration, now: datetime) -> bool:
    """Add or replace a registration; True when it is new."""
    found = await registered(session, registration.kind, registration.identifier)
    if found is not None:
        await remove(session, registration.kind, registration.identifier)
    await session.execute(
        _REGISTER,
        {
            "kind": registration.kind,
            "identifier": registration.identifier,
            "name": registration.name,
            "reply_to": registration.reply_to,
            "webhook_url": registration.webhook_url,
            "patient_channels": list(registration.patient_channels),
            "registered_at": now,
        },
    )
    return found is None


async def remove(session: AsyncSession, kind: str, identifier: str) -> bool:
    result = await session.execute(_REMOVE, {"referrer_kind": kind, "referrer_id": identifier})
    return bool(getattr(result, "rowcount", 0))


async def every_registration(session: AsyncSession) -> list[Registration]:
    rows = (await session.execute(_EVERY)).all()
    found = [await registered(session, r.kind, r.identifier) for r in rows]
    return [r for r in found if r is not None]


async def count_submission(
    session: AsyncSession,
    kind: str,
    identifier: str,
    now: datetime,
    limits: dict[str, int],
) -> None:
    """Count one submission in each window; raise ``RateLimited`` if that passes a limit.

    The increment is one upsert of both windows' rows that returns the new counts: on
    PostgreSQL the rows' locks make concurrent submissions (replicas) count one after
    the other, so the limit holds exactly. The caller's transaction then rolls back on
    the raise, so a refused submission does not count."""
    spans = windows(now)
    statement = _COUNT[session.get_bind().dialect.name == "postgresql"]
    counts = dict(
        (
            await session.execute(
                statement,
                {
                    "kind": kind,
                    "identifier": identifier,
                    "minute_start": spans["minute"][0],
                    "day_start": spans["day"][0],
                },
            )
        ).all()
    )
    refused = past_quota(counts, spans, limits, now)
    if refused is not None:
        raise refused


def _count_statement(insert: Any) -> Any:
    """Both windows' rows in one upsert (the minute's and the day's), built once per
    dialect: a submission costs one statement's execution, not two constructions."""
    counted = submission_counts.c
    statement = insert(submission_counts).values(
        [
            {
                "referrer_kind": bindparam("kind"),
                "referrer_id": bindparam("identifier"),
                "span": span,
                "started_at": bindparam(f"{span}_start"),
                "count": 1,
            }
            # The minute's row first, always: a referrer's two rows are locked in one order.
            for span in ("minute", "day")
        ]
    )
    return statement.on_conflict_do_update(
        index_elements=[counted.referrer_kind, counted.referrer_id, counted.span],
        set_={
            # A new window starts from one; the current one counts on.
            "count": case(
                (counted.started_at == statement.excluded.started_at, counted.count + 1),
                else_=1,
            ),
            "started_at": statement.excluded.started_at,
        },
    ).returning(counted.span, counted.count)


# By "is PostgreSQL": the two dialects' upserts differ only in their construction.
_COUNT = {False: _count_statement(sqlite.insert), True: _count_statement(postgresql.insert)}
