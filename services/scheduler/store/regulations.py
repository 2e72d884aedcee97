"""The decision that stands for each referral, as regulation gave it: kept so that the
centre receiving the patient reads the severity findings and risk factors regulation
found, the protocol version and when (GET /centres/{id}/regulations), whether the
patient was booked at once, from the waiting list or moved since."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.tables import appointments, regulations

_FORGET = delete(regulations).where(regulations.c.referral_id == bindparam("b_referral_id"))
_REMEMBER = insert(regulations)
# A centre's appointments of a day (any status: a cancelled one is still on its list)
# with the decision that stands for each; the day's bounds as the caller gives them.
_DAY = (
    select(
        appointments.c.id.label("appointment_id"),
        appointments.c.referral_id,
        regulations.c.reasons,
        regulations.c.protocol_version,
        regulations.c.decided_by,
        regulations.c.regulated_at,
    )
    .join(regulations, regulations.c.referral_id == appointments.c.referral_id)
    .where(
        appointments.c.centre_id == bindparam("centre_id"),
        appointments.c.start >= bindparam("day_start"),
        appointments.c.start < bindparam("day_end"),
    )
)


async def remember_regulation(
    session: AsyncSession,
    referral_id: str,
    *,
    reasons: Sequence[dict[str, Any]],
    protocol_version: str,
    decided_by: str,
    regulated_at: datetime,
) -> None:
    """The decision that now stands replaces the one before (a regulator's override)."""
    await session.execute(_FORGET, {"b_referral_id": referral_id})
    await session.execute(
        _REMEMBER,
        {
            "referral_id": referral_id,
            "reasons": list(reasons),
            "protocol_version": protocol_version,
            "decided_by": decided_by,
            "regulated_at": regulated_at,
        },
    )


async def day_regulations(
    session: AsyncSession, centre_id: str, day_start: datetime, day_end: datetime
) -> Sequence[Any]:
    """The decision behind each of a centre's appointments starting in [start, end)."""
    found = await session.execute(
        _DAY, {"centre_id": centre_id, "day_start": day_start, "day_end": day_end}
    )
    return found.all()
