"""The data keys that seal identities (wrapped: ``shared.sealing``), which one seals
now, and the rows a rotation or the first sealing still has to (re)seal.

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

from services.intake.store import AnyRow
from services.intake.store.tables import (
    SEALED_FIELDS,
    identities,
    identity_key_current,
    identity_keys,
)

_SLOT = 1
_CURRENT = (
    select(identity_key_current.c.key_id)
    .where(identity_key_current.c.slot == _SLOT)
    .with_for_update(read=True)
)
_KEY = select(identity_keys).where(identity_keys.c.id == bindparam("key_id"))
_EVERY_KEY = select(identity_keys).order_by(identity_keys.c.created_at)
_ADD_KEY = insert(identity_keys)
_SWITCH = (
    update(identity_key_current)
    .where(identity_key_current.c.slot == _SLOT)
    .values(key_id=bindparam("new_key"))
)
_FIRST = {
    name: dialect.insert(identity_key_current)
    .values(slot=_SLOT, key_id=bindparam("new_key"))
    .on_conflict_do_nothing(index_elements=[identity_key_current.c.slot])
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
# The rows to (re)seal: under another key than ``key_id``, or never sealed; by id, from
# where the last batch stopped (resumable), each row locked and skipped if another
# transaction holds it (PostgreSQL), so that the pipeline never waits on a rotation.
_STALE = (
    select(identities)
    .where(
        identities.c.referral_id > bindparam("after"),
        or_(identities.c.key_id.is_(None), identities.c.key_id != bindparam("key_id")),
    )
    .order_by(identities.c.referral_id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
_RESEAL = (
    update(identities)
    .where(identities.c.referral_id == bindparam("which"))
    .values(
        {
            **{f"sealed_{name}": bindparam(f"new_sealed_{name}") for name in SEALED_FIELDS},
            "key_id": bindparam("new_key_id"),
            "nir_hash": bindparam("new_nir_hash"),
            # The plain columns of the release before, emptied once sealed.
            "first_name": None,
            "last_name": None,
            "birth_date": None,
            "nir": None,
            "phone": None,
            "email": None,
            "address": None,
        }
    )
)
_BY_KEY = select(identities.c.key_id, func.count()).group_by(identities.c.key_id)


async def current(session: AsyncSession) -> str | None:
    """The id of the data key that seals now, its row held until the transaction ends."""
    return await session.scalar(_CURRENT)


async def key(session: AsyncSession, key_id: str) -> AnyRow | None:
    return (await session.execute(_KEY, {"key_id": key_id})).first()


async def every_key(session: AsyncSession) -> Sequence[AnyRow]:
    return (await session.execute(_EVERY_KEY)).all()


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
    """At most ``limit`` identities not under ``key_id``, after ``after`` by referral id."""
    return (await session.execute(_STALE, {"key_id": key_id, "after": after, "limit": limit})).all()


async def reseal(session: AsyncSession, referral_id: str, values: dict[str, Any]) -> None:
    """The row's sealed values, key and NIR hash (``values`` by column), plain emptied."""
    await session.execute(
        _RESEAL, {"which": referral_id, **{f"new_{k}": v for k, v in values.items()}}
    )


async def rows_by_key(session: AsyncSession) -> dict[str | None, int]:
    """How many identities each data key seals (None: not sealed yet)."""
    return {k: n for k, n in (await session.execute(_BY_KEY)).all()}
