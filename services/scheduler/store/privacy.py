"""What the scheduler holds on one patient (issue 34): their appointments (with their
outcomes and moves), their place on the waiting list, the regulations it booked on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.scheduler.store.tables import (
    appointment_moves,
    appointments,
    centres,
    consultation_outcomes,
    regulations,
    waitlist,
)

_APPOINTMENTS = (
    select(
        appointments,
        centres.c.name.label("centre_name"),
        consultation_outcomes.c.outcome,
        consultation_outcomes.c.recorded_at.label("outcome_at"),
    )
    .select_from(
        appointments.outerjoin(centres, centres.c.id == appointments.c.centre_id).outerjoin(
            consultation_outcomes, consultation_outcomes.c.appointment_id == appointments.c.id
        )
    )
    .where(appointments.c.patient_ref.in_(bindparam("refs", expanding=True)))
    .order_by(appointments.c.created_at)
)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_MOVES = select(appointment_moves).where(appointment_moves.c.referral_id.in_(_IDS))
_WAITING = select(waitlist).where(waitlist.c.patient_ref.in_(bindparam("refs", expanding=True)))
_REGULATIONS = select(regulations).where(regulations.c.referral_id.in_(_IDS))


async def appointments_of_patients(
    session: AsyncSession, patient_refs: Sequence[str]
) -> Sequence[Any]:
    return (await session.execute(_APPOINTMENTS, {"refs": list(patient_refs)})).all()


async def moves_of(session: AsyncSession, referral_ids: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_MOVES, {"ids": list(referral_ids)})).all()


async def waiting(session: AsyncSession, patient_refs: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_WAITING, {"refs": list(patient_refs)})).all()


async def regulations_of(session: AsyncSession, referral_ids: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_REGULATIONS, {"ids": list(referral_ids)})).all()
