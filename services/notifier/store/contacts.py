"""The patients' contacts: the only copy of contact details outside intake, kept for
the patient notices and for Centre 15 to call an escalated patient back."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import contacts
from shared.events import PatientContact

_CONTACT_EXISTS = select(contacts.c.referral_id).where(
    contacts.c.referral_id == bindparam("referral_id")
)
_INSERT_CONTACT = insert(contacts)
_KEPT = tuple(contacts.c.keys())
_RENAME_CONTACT = (
    update(contacts)
    .where(contacts.c.referral_id == bindparam("renamed_referral_id"))
    .values(first_name=bindparam("new_first_name"), last_name=bindparam("new_last_name"))
)
_CALL_BACK = select(contacts.c.first_name, contacts.c.last_name, contacts.c.phone).where(
    contacts.c.referral_id == bindparam("referral_id")
)


async def keep_contact(session: AsyncSession, contact: PatientContact) -> None:
    """The patient's contact, once: a repeated one is the same patient's."""
    exists = await session.scalar(_CONTACT_EXISTS, {"referral_id": contact.referral_id})
    if exists is None:
        # The table's own columns, named: a field the event gains later (``corrected``
        # says how to apply it, ``referrer`` whom to tell) is not a column to write.
        dumped = contact.model_dump(mode="json")
        await session.execute(_INSERT_CONTACT, {name: dumped[name] for name in _KEPT})


async def rename_contact(session: AsyncSession, contact: PatientContact) -> None:
    """A corrected name (``contact.corrected``): the channels are left as they were."""
    await session.execute(
        _RENAME_CONTACT,
        {
            "renamed_referral_id": contact.referral_id,
            "new_first_name": contact.first_name,
            "new_last_name": contact.last_name,
        },
    )


async def call_back(session: AsyncSession, referral_id: str) -> dict[str, str | None] | None:
    """What Centre 15 needs to call the patient back (names, phone), or None."""
    row = (await session.execute(_CALL_BACK, {"referral_id": referral_id})).first()
    if row is None:
        return None
    return {"first_name": row.first_name, "last_name": row.last_name, "phone": row.phone}
