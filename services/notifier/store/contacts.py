"""The patients' contacts: the only copy of contact details outside intake, kept for
the patient notices and for Centre 15 to call an escalated patient back. Their names,
phone and e-mail are written sealed (``handlers/sealing.py``): this module stores and
reads the sealed columns, never a value in clear."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow
from services.notifier.store.tables import contacts

_CONTACT_EXISTS = select(contacts.c.referral_id).where(
    contacts.c.referral_id == bindparam("referral_id")
)
_INSERT_CONTACT = insert(contacts)
_CONTACT = select(contacts).where(contacts.c.referral_id == bindparam("referral_id"))


async def contact_known(session: AsyncSession, referral_id: str) -> bool:
    return await session.scalar(_CONTACT_EXISTS, {"referral_id": referral_id}) is not None


async def keep_contact(
    session: AsyncSession,
    *,
    referral_id: str,
    patient_ref: str,
    sms_consent: bool,
    sealed: dict[str, Any],
) -> None:
    """The patient's contact: ``sealed``, its ``sealed_<field>`` columns and ``key_id``."""
    await session.execute(
        _INSERT_CONTACT,
        {
            "referral_id": referral_id,
            "patient_ref": patient_ref,
            "sms_consent": sms_consent,
            **sealed,
        },
    )


async def contact(session: AsyncSession, referral_id: str) -> AnyRow | None:
    """The contact's row (every column of ``contacts``), or None."""
    return (await session.execute(_CONTACT, {"referral_id": referral_id})).first()
