"""The data keys that seal the contacts (wrapped: ``shared.sealing``), which one seals
now, and the contacts a rotation or the first sealing still has to (re)seal.

The current key's row is read FOR SHARE by a sealing transaction and updated by a
rotation (PostgreSQL; SQLite has one writer): a rotation waits for the transactions
sealing under the old key, and those after it see the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow
from services.notifier.store.tables import (
    SEALED_FIELDS,
    contact_key_current,
    contact_keys,
    contacts,
)

_SLOT = 1
_CURRENT = (
    select(contact_key_current.c.key_id)
    .where(contact_key_current.c.slot == _SLOT)
    .with_for_update(read=True)
)
_KEY = select(contact_keys).where(contact_keys.c.id == bindparam("key_id"))
_ANY_KEY = select(contact_keys.c.id).limit(1)
_ADD_KEY = insert(contact_keys)
_SWITCH = (
    update(contact_key_current)
    .where(contact_key_current.c.slot == _SLOT)
    .values(key_id=bindparam("new_key"))
)
_FIRST = {
    name: dialect.insert(contact_key_current)
    .values(slot=_SLOT, key_id=bindparam("new_key"))
    .on_conflict_do_nothing(index_elements=[contact_key_current.c.slot])
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
# The contacts to (re)seal: under another key than ``key_id``, or never sealed; by
# referral, from where the last batch stopped (resumable), each row locked and skipped
# if another transaction holds it (PostgreSQL): the pipeline never waits on a rotation.
_STALE = (
    select(contacts)
    .where(
        contacts.c.referral_id > bindparam("after"),
        or_(contacts.c.key_id.is_(None), contacts.c.key_id != bindparam("key_id")),
    )
    .order_by(contacts.c.referral_id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
_RESEAL = (
    update(contacts)
    .where(contacts.c.referral_id == bindparam("which"))
    .values(
        {
            **{f"sealed_{name}": bindparam(f"new_sealed_{name}") for name in SEALED_FIELDS},
            "key_id": bindparam("new_key_id"),
            # The plain columns of the release before, emptied once sealed.
            **{name: None for name in SEALED_FIELDS},
        }
    )
)
_BY_KEY = select(contacts.c.key_id, func.count()).group_by(contacts.c.key_id)


async def current(session: AsyncSession) -> str | None:
    """The id of the data key that seals now, its row held until the transaction ends."""
    return await session.scalar(_CURRENT)


async def key(session: AsyncSession, key_id: str) -> AnyRow | None:
    return (await session.execute(_KEY, {"key_id": key_id})).first()


async def any_key(session: AsyncSession) -> bool:
    return await session.scalar(_ANY_KEY) is not None


async def add_key(
    session: AsyncSession, key_id: str, wrapped: str, kek_id: str, now: datetime
) -> None:
    await session.execute(
        _ADD_KEY, {"id": key_id, "wrapped": wrapped, "kek_id": kek_id, "created_at": now}
    )


async def make_first(session: AsyncSession, key_id: str) -> None:
    """``key_id`` seals from now on, unless a key already does (a concurrent first)."""
    dialect = session.get_bind().dialect.name
    await session.execute(_FIRST[dialect], {"new_key": key_id})


async def switch(session: AsyncSession, key_id: str) -> None:
    """``key_id`` seals from now on (a rotation): waits for the transactions sealing
    under the key before it."""
    await session.execute(_SWITCH, {"new_key": key_id})


async def stale(session: AsyncSession, key_id: str, after: str, limit: int) -> Sequence[AnyRow]:
    """At most ``limit`` contacts not under ``key_id``, after ``after`` by referral id."""
    return (await session.execute(_STALE, {"key_id": key_id, "after": after, "limit": limit})).all()


async def reseal(session: AsyncSession, referral_id: str, values: dict[str, Any]) -> None:
    """The contact's sealed values and key (``values`` by column), plain emptied."""
    await session.execute(
        _RESEAL, {"which": referral_id, **{f"new_{k}": v for k, v in values.items()}}
    )


async def rows_by_key(session: AsyncSession) -> dict[str | None, int]:
    """How many contacts each data key seals (None: not sealed yet)."""
    return {k: n for k, n in (await session.execute(_BY_KEY)).all()}
