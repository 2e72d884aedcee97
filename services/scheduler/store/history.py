"""A day as it went, per département (issue 30): appointments booked for it, the
consultations honoured and missed as centres recorded them, and the patients put on the
waiting list that day. Counts only: no identity leaves this module."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.tables import (
    appointments,
    centres,
    consultation_outcomes,
    waitlist_entries,
)

_IN_DAY = (appointments.c.start >= bindparam("start"), appointments.c.start < bindparam("end"))

# Booked for that day and not cancelled since (a moved appointment is cancelled, its
# replacement counted where it stands).
_BOOKED = (
    select(centres.c.departement, func.count())
    .select_from(appointments.join(centres, centres.c.id == appointments.c.centre_id))
    .where(*_IN_DAY, appointments.c.status != "cancelled")
    .group_by(centres.c.departement)
)
_OUTCOMES = (
    select(centres.c.departement, consultation_outcomes.c.outcome, func.count())
    .select_from(
        consultation_outcomes.join(
            appointments, appointments.c.id == consultation_outcomes.c.appointment_id
        ).join(centres, centres.c.id == appointments.c.centre_id)
    )
    .where(*_IN_DAY)
    .group_by(centres.c.departement, consultation_outcomes.c.outcome)
)
_WAITLISTED = (
    select(waitlist_entries.c.departement, func.count(distinct(waitlist_entries.c.referral_id)))
    .where(
        waitlist_entries.c.queued_at >= bindparam("start"),
        waitlist_entries.c.queued_at < bindparam("end"),
    )
    .group_by(waitlist_entries.c.departement)
)

FIGURES = ("booked", "seen", "no_show", "waitlisted")


async def day_figures(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """Per département code: booked, seen, no_show and waitlisted in [start, end)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    window = {"start": start, "end": end}
    for dep, count in await session.execute(_BOOKED, window):
        out[dep]["booked"] = int(count)
    for dep, outcome, count in await session.execute(_OUTCOMES, window):
        if outcome in ("seen", "no_show"):
            out[dep][outcome] = int(count)
    for dep, count in await session.execute(_WAITLISTED, window):
        out[dep]["waitlisted"] = int(count)
    return dict(out)
