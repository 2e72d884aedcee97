"""What the notifier holds on one patient (issue 34): their contact, every
notification about their referrals, the centres' appointments; by pseudonym."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.notifier.store.tables import centre_appointments, contacts, notifications

_REFS: BindParameter[Any] = bindparam("refs", expanding=True)
_CONTACTS = select(contacts).where(contacts.c.patient_ref.in_(_REFS))
_APPOINTMENTS = (
    select(centre_appointments)
    .where(centre_appointments.c.patient_ref.in_(_REFS))
    .order_by(centre_appointments.c.start)
)
_NOTIFICATIONS = (
    select(notifications)
    .where(notifications.c.referral_id.in_(bindparam("ids", expanding=True)))
    .order_by(notifications.c.created_at)
)


async def contacts_of(session: AsyncSession, patient_refs: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_CONTACTS, {"refs": list(patient_refs)})).all()


async def appointments_of(session: AsyncSession, patient_refs: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_APPOINTMENTS, {"refs": list(patient_refs)})).all()


async def notifications_on(session: AsyncSession, referral_ids: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_NOTIFICATIONS, {"ids": list(referral_ids)})).all()
