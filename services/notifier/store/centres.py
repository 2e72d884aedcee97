"""The centres as the ARS last described them, and their appointments: each centre's
day list, and what the notifier heard of each appointment (booked, cancelled, seen...).

Each statement is built once, with its parameters bound per call (``bindparam``): a
message costs the execution, not the construction, and SQLAlchemy's compiled cache keys
on the one statement object. The same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow
from services.notifier.store.tables import (
    centre_appointments,
    centres,
    contacts,
    referrers,
    restrictions,
)

_CENTRE_EXISTS = select(centres.c.id).where(centres.c.id == bindparam("centre_id"))
_INSERT_CENTRE = insert(centres)
# The bound names differ from the columns': an UPDATE reserves the column names for SET.
_UPDATE_CENTRE = (
    update(centres)
    .where(centres.c.id == bindparam("centre_id"))
    .values(
        name=bindparam("new_name"),
        address=bindparam("new_address"),
        commune_insee=bindparam("new_commune_insee"),
    )
)
_INSERT_APPOINTMENT = insert(centre_appointments)
_APPOINTMENT_STATUS = (
    update(centre_appointments)
    .where(centre_appointments.c.appointment_id == bindparam("b_appointment_id"))
    .values(status=bindparam("new_status"))
)
_APPOINTMENT_OUTCOME = (
    update(centre_appointments)
    .where(centre_appointments.c.appointment_id == bindparam("b_appointment_id"))
    .values(status=bindparam("new_status"), outcome_at=bindparam("new_outcome_at"))
)
_APPOINTMENT = select(centre_appointments).where(
    centre_appointments.c.appointment_id == bindparam("appointment_id")
)
_DAY_APPOINTMENTS = (
    select(
        centre_appointments,
        # The patient's names, sealed (issue 34; the plain ones of a contact kept before
        # sealing, until ``keys seal``): None while the contact has not arrived.
        contacts.c.first_name,
        contacts.c.last_name,
        contacts.c.sealed_first_name,
        contacts.c.sealed_last_name,
        contacts.c.key_id,
        # Who referred the patient (a kind, never who): the centre's page says it.
        referrers.c.kind.label("referrer_kind"),
        # Its patient restricted its processing (issue 34): listed for the care, not exported.
        restrictions.c.referral_id.is_not(None).label("restricted"),
    )
    .outerjoin(contacts, contacts.c.referral_id == centre_appointments.c.referral_id)
    .outerjoin(referrers, referrers.c.referral_id == centre_appointments.c.referral_id)
    .outerjoin(restrictions, restrictions.c.referral_id == centre_appointments.c.referral_id)
    .where(
        centre_appointments.c.centre_id == bindparam("centre_id"),
        centre_appointments.c.start >= bindparam("day_start"),
        centre_appointments.c.start < bindparam("day_end"),
    )
    .order_by(centre_appointments.c.start, centre_appointments.c.box)
)


# The centre as its page heads it: its name and address, not its id.
_CENTRE = select(centres.c.name, centres.c.address, centres.c.commune_insee).where(
    centres.c.id == bindparam("centre_id")
)
_APPOINTMENT_STATUSES = select(centre_appointments.c.status).where(
    centre_appointments.c.referral_id == bindparam("referral_id")
)


async def save_centre(
    session: AsyncSession, centre_id: str, *, name: str, address: str | None, commune_insee: str
) -> None:
    """The centre as the ARS last described it: added, or its description replaced."""
    exists = await session.scalar(_CENTRE_EXISTS, {"centre_id": centre_id})
    if exists is None:
        await session.execute(
            _INSERT_CENTRE,
            {"id": centre_id, "name": name, "address": address, "commune_insee": commune_insee},
        )
    else:
        await session.execute(
            _UPDATE_CENTRE,
            {
                "centre_id": centre_id,
                "new_name": name,
                "new_address": address,
                "new_commune_insee": commune_insee,
            },
        )


async def add_appointment(
    session: AsyncSession,
    *,
    appointment_id: str,
    centre_id: str,
    referral_id: str,
    patient_ref: str,
    start: datetime,
    end: datetime,
    box: int,
    priority: str,
    test_eligible: bool,
) -> None:
    """A booked appointment on the centre's day list."""
    await session.execute(
        _INSERT_APPOINTMENT,
        {
            "appointment_id": appointment_id,
            "centre_id": centre_id,
            "referral_id": referral_id,
            "patient_ref": patient_ref,
            "start": start,
            "end": end,
            "box": box,
            "priority": priority,
            "status": "booked",
            "test_eligible": test_eligible,
        },
    )


async def set_appointment_status(session: AsyncSession, appointment_id: str, status: str) -> None:
    """No effect for an appointment the notifier never heard of."""
    await session.execute(
        _APPOINTMENT_STATUS, {"b_appointment_id": appointment_id, "new_status": status}
    )


async def set_appointment_outcome(
    session: AsyncSession, appointment_id: str, status: str, recorded_at: datetime
) -> None:
    """The outcome the scheduler recorded, and when (a correction sets the status only:
    its window runs from the recording)."""
    await session.execute(
        _APPOINTMENT_OUTCOME,
        {"b_appointment_id": appointment_id, "new_status": status, "new_outcome_at": recorded_at},
    )


async def appointment(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """The appointment's row (every column of ``centre_appointments``), or None."""
    return (await session.execute(_APPOINTMENT, {"appointment_id": appointment_id})).first()


async def day_appointments(
    session: AsyncSession, centre_id: str, start: datetime, end: datetime
) -> Sequence[AnyRow]:
    """The centre's appointments starting in [start, end), by time then box; each row
    has the appointment's columns, the patient's ``sealed_first_name`` and
    ``sealed_last_name`` under ``key_id`` (or the plain ``first_name`` and ``last_name``
    of a contact kept before sealing; None while the contact has not arrived) and the
    ``referrer_kind``."""
    return (
        await session.execute(
            _DAY_APPOINTMENTS, {"centre_id": centre_id, "day_start": start, "day_end": end}
        )
    ).all()


async def appointment_statuses(session: AsyncSession, referral_id: str) -> set[str]:
    """The statuses of the referral's appointments the notifier heard of (booked,
    cancelled, fulfilled, noshow, escalated)."""
    return set((await session.scalars(_APPOINTMENT_STATUSES, {"referral_id": referral_id})).all())


async def centre_description(session: AsyncSession, centre_id: str) -> AnyRow | None:
    """The centre's name, address and commune as the ARS last described them."""
    return (await session.execute(_CENTRE, {"centre_id": centre_id})).first()
