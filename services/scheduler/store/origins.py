"""Where each oriented patient comes from (their département and commune, as
regulation gave them): to place them again when their centre closes, and to tell
whose SAMUs an escalation goes to."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.tables import origins

_ORIGIN_KNOWN = select(origins.c.referral_id).where(
    origins.c.referral_id == bindparam("referral_id")
)
_INSERT_ORIGIN = insert(origins)
# The patient's new place (patient.relocated): where a later move starts from.
_RELOCATE = (
    update(origins)
    .where(origins.c.referral_id == bindparam("which"))
    .values(departement=bindparam("new_departement"), commune_insee=bindparam("new_commune"))
)
_ORIGIN = select(origins.c.departement, origins.c.commune_insee).where(
    origins.c.referral_id == bindparam("referral_id")
)


async def remember_origin(
    session: AsyncSession, referral_id: str, departement: str, commune_insee: str
) -> None:
    """Where the patient comes from, to place them again if their centre closes."""
    exists = await session.scalar(_ORIGIN_KNOWN, {"referral_id": referral_id})
    if exists is None:
        await session.execute(
            _INSERT_ORIGIN,
            {
                "referral_id": referral_id,
                "departement": departement,
                "commune_insee": commune_insee,
            },
        )


async def referral_origin(session: AsyncSession, referral_id: str) -> tuple[str, str]:
    row = (await session.execute(_ORIGIN, {"referral_id": referral_id})).one()
    return row.departement, row.commune_insee


async def referral_departement(session: AsyncSession, referral_id: str) -> str | None:
    """The patient's département as regulation gave it, or None for a referral never
    oriented here."""
    row = (await session.execute(_ORIGIN, {"referral_id": referral_id})).first()
    return None if row is None else str(row.departement)


async def relocate_origin(
    session: AsyncSession, referral_id: str, departement: str, commune_insee: str
) -> None:
    """The patient is now elsewhere: a referral never oriented here has no origin, and
    gets none (regulation's orientation will give it)."""
    await session.execute(
        _RELOCATE,
        {"which": referral_id, "new_departement": departement, "new_commune": commune_insee},
    )
