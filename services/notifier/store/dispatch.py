"""The dispatcher's statements: the claim of the notifications that are due (SKIP
LOCKED on PostgreSQL), the contacts and referrers their patient notices need, the
record of each try's outcome, and the per-address daily quota.

The dispatcher runs outside any consumer's transaction: each function here runs in
the transaction its caller opened (``services/notifier/handlers/dispatcher.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow
from services.notifier.store.tables import (
    attempts,
    contact_quota,
    contacts,
    notifications,
    referrers,
    restrictions,
)

# Statements built once, their parameters bound per call (executemany for a group).
_DUE = (
    select(notifications)
    .where(
        notifications.c.status.in_(("pending", "sending")),
        notifications.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(notifications.c.next_attempt_at)
    .limit(bindparam("batch"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_CLAIM = (
    update(notifications)
    .where(notifications.c.id.in_(bindparam("ids", expanding=True)))
    .values(status="sending", next_attempt_at=bindparam("until"))
)
_CONTACTS = select(contacts).where(contacts.c.referral_id.in_(bindparam("ids", expanding=True)))
_REFERRERS = select(referrers.c.referral_id, referrers.c.patient_channels).where(
    referrers.c.referral_id.in_(bindparam("ids", expanding=True))
)
_INSERT_ATTEMPT = insert(attempts)
# The bound names differ from the columns': an UPDATE reserves the column names for SET.
_RECORD = (
    update(notifications)
    .where(notifications.c.id == bindparam("b_id"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        next_attempt_at=bindparam("due"),
        last_error=bindparam("error"),
        sent_at=bindparam("new_sent_at"),
    )
)
_WAIT = (
    update(notifications)
    .where(notifications.c.id == bindparam("b_id"))
    .values(status="pending", next_attempt_at=bindparam("due"), last_error=bindparam("error"))
)
_RESTRICTED = select(restrictions.c.referral_id).where(
    restrictions.c.referral_id.in_(bindparam("ids", expanding=True))
)
# A notice of a restricted referral (issue 34): never sent, its words and target emptied.
_WITHHOLD = (
    update(notifications)
    .where(notifications.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status="withheld",
        next_attempt_at=None,
        last_error=bindparam("reason"),
        subject="",
        body="",
        target={},
    )
)
# One more message to an address today, returning the new count. By "is SQLite": the
# two dialects' upserts differ only in their construction.
_TAKE_QUOTA = {
    is_sqlite: dialect.insert(contact_quota)
    .values(address_key=bindparam("b_key"), day=bindparam("b_day"), count=1)
    .on_conflict_do_update(
        index_elements=[contact_quota.c.address_key, contact_quota.c.day],
        set_={"count": contact_quota.c.count + 1},
    )
    .returning(contact_quota.c.count)
    for is_sqlite, dialect in ((False, postgresql), (True, sqlite))
}
_GIVE_BACK_QUOTA = (
    update(contact_quota)
    .where(
        contact_quota.c.address_key == bindparam("b_key"),
        contact_quota.c.day == bindparam("b_day"),
    )
    .values(count=contact_quota.c.count - 1)
)


async def claim_due(
    session: AsyncSession, now: datetime, batch: int, until: datetime, *, locked: bool
) -> Sequence[AnyRow]:
    """The notifications due by ``now`` (at most ``batch``, the earliest first), claimed
    (``sending``) until ``until``. ``locked``: SKIP LOCKED, so that two replicas never
    claim the same row at once (PostgreSQL; SQLite has one writer)."""
    query = _DUE_LOCKED if locked else _DUE
    rows = (await session.execute(query, {"now": now, "batch": batch})).all()
    if rows:
        await session.execute(_CLAIM, {"ids": [r.id for r in rows], "until": until})
    return rows


async def contacts_of(session: AsyncSession, referral_ids: list[str]) -> dict[str, AnyRow]:
    """The contacts of these referrals that have arrived, by referral."""
    found = await session.execute(_CONTACTS, {"ids": referral_ids})
    return {r.referral_id: r for r in found.all()}


async def registered_channels(
    session: AsyncSession, referral_ids: list[str]
) -> dict[str, list[str] | None]:
    """The patient channels the referrers of these referrals are registered for (None:
    any), by referral; a referral whose referrer has not arrived is absent."""
    found = await session.execute(_REFERRERS, {"ids": referral_ids})
    return {r.referral_id: r.patient_channels for r in found.all()}


async def restricted_among(session: AsyncSession, referral_ids: list[str]) -> set[str]:
    """Those of these referrals whose patient restricted their processing."""
    return set((await session.scalars(_RESTRICTED, {"ids": referral_ids})).all())


async def withhold(session: AsyncSession, ids: list[str], reason: str) -> None:
    """These notifications are not sent (``withheld``, with why), nothing of their
    content kept."""
    await session.execute(_WITHHOLD, {"ids": ids, "reason": reason})


async def record(
    session: AsyncSession, tries: list[dict[str, Any]], states: list[dict[str, Any]]
) -> None:
    """Each try's attempt row, and its notification's new state (``_RECORD``'s names)."""
    await session.execute(_INSERT_ATTEMPT, tries)
    await session.execute(_RECORD, states)


async def put_back(session: AsyncSession, waits: list[dict[str, Any]]) -> None:
    """Notices still waiting for what they need: pending again, their tries untouched."""
    await session.execute(_WAIT, waits)


async def take_quota(session: AsyncSession, key: str, day: date, *, is_sqlite: bool) -> int:
    """Count one more message to the address ``key`` on ``day``; the new count."""
    found = await session.execute(_TAKE_QUOTA[is_sqlite], {"b_key": key, "b_day": day})
    count: int = found.scalar_one()
    return count


async def give_back_quota(session: AsyncSession, key: str, day: date) -> None:
    """One message fewer to the address ``key`` on ``day`` (one that was not sent)."""
    await session.execute(_GIVE_BACK_QUOTA, {"b_key": key, "b_day": day})
