"""The purge of patients' contacts and the notifications about their referral past
their retention (issue 34): one batch per call, in the caller's transaction
(``domain.retention`` says which)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.notifier.store.tables import (
    attempts,
    centre_appointments,
    contacts,
    notifications,
)

_CUTOFF: BindParameter[Any] = bindparam("cutoff")
_DONE_FOR = or_(
    exists().where(centre_appointments.c.referral_id == contacts.c.referral_id),
    exists().where(notifications.c.referral_id == contacts.c.referral_id),
)
_DUE = (
    select(contacts.c.referral_id)
    .where(
        _DONE_FOR,
        ~exists().where(
            centre_appointments.c.referral_id == contacts.c.referral_id,
            centre_appointments.c.end > _CUTOFF,
        ),
        ~exists().where(
            notifications.c.referral_id == contacts.c.referral_id,
            notifications.c.created_at > _CUTOFF,
        ),
    )
    .order_by(contacts.c.referral_id)
    .limit(bindparam("limit"))
)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_DELETE_ATTEMPTS = delete(attempts).where(
    attempts.c.notification_id.in_(
        select(notifications.c.id).where(notifications.c.referral_id.in_(_IDS))
    )
)
_DELETE_NOTIFICATIONS = delete(notifications).where(notifications.c.referral_id.in_(_IDS))
_DELETE_CONTACTS = delete(contacts).where(contacts.c.referral_id.in_(_IDS))


async def contacts_due(session: AsyncSession, cutoff: datetime, limit: int) -> list[str]:
    """Referrals whose contact is kept though nothing was done for them since ``cutoff``."""
    return list((await session.scalars(_DUE, {"cutoff": cutoff, "limit": limit})).all())


async def delete_contacts(session: AsyncSession, referral_ids: Sequence[str]) -> int:
    """The contacts, and every notification about their referrals with its tries."""
    ids = list(referral_ids)
    await session.execute(_DELETE_ATTEMPTS, {"ids": ids})
    await session.execute(_DELETE_NOTIFICATIONS, {"ids": ids})
    await session.execute(_DELETE_CONTACTS, {"ids": ids})
    return len(ids)
