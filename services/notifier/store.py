"""The notifier's state, and the only module of the notifier that speaks SQL: the
centres and their appointments, the patients' contacts, who referred each patient,
the outcomes kept until that referrer is known, and every notification.

Each statement is built once, here, with its parameters bound per call
(``bindparam``): a message costs the execution, not the construction, and SQLAlchemy's
compiled cache keys on the one statement object. The same statements run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.tables import (
    cancellations,
    centre_appointments,
    centres,
    contacts,
    deferred_outcomes,
    notifications,
    referrers,
)
from shared.events import Channel, PatientContact, RecipientKind, ReferrerRef


@dataclass(frozen=True, slots=True)
class Referrer:
    """Who referred a patient, as the notifier keeps it."""

    referral_id: str
    kind: str  # a ReferrerKind value
    identifier: str
    reply_to: str | None
    webhook_url: str | None
    patient_channels: list[str] | None


@dataclass(frozen=True, slots=True)
class DeferredOutcome:
    """An outcome kept for a referrer not known yet."""

    cause_event_id: str
    status: str
    detail: dict[str, Any]


# A row of any shape: the callers read its columns by name.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# -- centres and their appointments -------------------------------------------------

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
    select(centre_appointments, contacts.c.first_name, contacts.c.last_name)
    .outerjoin(contacts, contacts.c.referral_id == centre_appointments.c.referral_id)
    .where(
        centre_appointments.c.centre_id == bindparam("centre_id"),
        centre_appointments.c.start >= bindparam("day_start"),
        centre_appointments.c.start < bindparam("day_end"),
    )
    .order_by(centre_appointments.c.start, centre_appointments.c.box)
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
    has the appointment's columns and the patient's ``first_name`` and ``last_name``
    (None while the contact has not arrived)."""
    return (
        await session.execute(
            _DAY_APPOINTMENTS, {"centre_id": centre_id, "day_start": start, "day_end": end}
        )
    ).all()


# -- contacts -----------------------------------------------------------------------

_CONTACT_EXISTS = select(contacts.c.referral_id).where(
    contacts.c.referral_id == bindparam("referral_id")
)
_INSERT_CONTACT = insert(contacts)
_CALL_BACK = select(contacts.c.first_name, contacts.c.last_name, contacts.c.phone).where(
    contacts.c.referral_id == bindparam("referral_id")
)


async def keep_contact(session: AsyncSession, contact: PatientContact) -> None:
    """The patient's contact, once: a repeated one is the same patient's."""
    exists = await session.scalar(_CONTACT_EXISTS, {"referral_id": contact.referral_id})
    if exists is None:
        await session.execute(
            _INSERT_CONTACT, contact.model_dump(mode="json", exclude={"referrer"})
        )


async def call_back(session: AsyncSession, referral_id: str) -> dict[str, str | None] | None:
    """What Centre 15 needs to call the patient back (names, phone), or None."""
    row = (await session.execute(_CALL_BACK, {"referral_id": referral_id})).first()
    if row is None:
        return None
    return {"first_name": row.first_name, "last_name": row.last_name, "phone": row.phone}


# -- referrers and what is kept for them --------------------------------------------

_REFERRER = select(referrers).where(referrers.c.referral_id == bindparam("referral_id"))
_REFERRER_KIND = select(referrers.c.kind).where(referrers.c.referral_id == bindparam("referral_id"))
_REFERRER_KNOWN = select(referrers.c.referral_id).where(
    referrers.c.referral_id == bindparam("referral_id")
)
_INSERT_REFERRER = insert(referrers)
_INSERT_DEFERRED = insert(deferred_outcomes)
_DEFERRED = (
    select(
        deferred_outcomes.c.cause_event_id, deferred_outcomes.c.status, deferred_outcomes.c.detail
    )
    .where(deferred_outcomes.c.referral_id == bindparam("referral_id"))
    .order_by(deferred_outcomes.c.deferred_at)
)
_DROP_DEFERRED = delete(deferred_outcomes).where(
    deferred_outcomes.c.referral_id == bindparam("referral_id")
)
_CENTRE_15_CAUSES = select(notifications.c.cause_event_id, notifications.c.recipient).where(
    notifications.c.referral_id == bindparam("referral_id"),
    notifications.c.recipient_kind == RecipientKind.CENTRE_15.value,
)


# The notices that say a patient had a place, or waits for one: a centre's new patient
# or moved patient (recorded whatever the patient's channels), the waiting list's.
_PLACE_TEMPLATES = ("centre.new_patient", "centre.rescheduled", "patient.waitlisted")
_TOLD_OF_A_PLACE = (
    select(notifications.c.id)
    .where(
        notifications.c.referral_id == bindparam("referral_id"),
        notifications.c.template.in_(_PLACE_TEMPLATES),
    )
    .limit(1)
)


async def told_of_a_place(session: AsyncSession, referral_id: str) -> bool:
    """The referral was booked once, or its patient told they wait (by its notices,
    found by the referral's index)."""
    found = await session.scalar(_TOLD_OF_A_PLACE, {"referral_id": referral_id})
    return found is not None


async def referrer(session: AsyncSession, referral_id: str) -> Referrer | None:
    """Who referred the patient, or None while its patient.contact is on its way."""
    row = (await session.execute(_REFERRER, {"referral_id": referral_id})).first()
    if row is None:
        return None
    return Referrer(
        referral_id=row.referral_id,
        kind=row.kind,
        identifier=row.identifier,
        reply_to=row.reply_to,
        webhook_url=row.webhook_url,
        patient_channels=row.patient_channels,
    )


async def referrer_kind(session: AsyncSession, referral_id: str) -> str | None:
    """The referrer's ``ReferrerKind`` value, or None while it is not known."""
    kind: str | None = await session.scalar(_REFERRER_KIND, {"referral_id": referral_id})
    return kind


async def referrer_known(session: AsyncSession, referral_id: str) -> bool:
    return await session.scalar(_REFERRER_KNOWN, {"referral_id": referral_id}) is not None


async def add_referrer(session: AsyncSession, referral_id: str, referrer: ReferrerRef) -> None:
    await session.execute(
        _INSERT_REFERRER,
        {
            "referral_id": referral_id,
            "kind": referrer.kind.value,
            "identifier": referrer.identifier,
            "reply_to": referrer.reply_to,
            "webhook_url": referrer.webhook_url,
            "patient_channels": (
                None if referrer.patient_channels is None else list(referrer.patient_channels)
            ),
        },
    )


async def defer_outcome(
    session: AsyncSession,
    *,
    cause_event_id: str,
    referral_id: str,
    status: str,
    detail: dict[str, Any],
    deferred_at: datetime,
) -> None:
    await session.execute(
        _INSERT_DEFERRED,
        {
            "cause_event_id": cause_event_id,
            "referral_id": referral_id,
            "status": status,
            "detail": detail,
            "deferred_at": deferred_at,
        },
    )


async def deferred(session: AsyncSession, referral_id: str) -> list[DeferredOutcome]:
    """What was kept for the referral's referrer, in the order it was kept."""
    rows = (await session.execute(_DEFERRED, {"referral_id": referral_id})).all()
    return [DeferredOutcome(r.cause_event_id, r.status, r.detail) for r in rows]


async def drop_deferred(session: AsyncSession, referral_id: str) -> None:
    await session.execute(_DROP_DEFERRED, {"referral_id": referral_id})


async def told_centre_15(session: AsyncSession, referral_id: str) -> set[tuple[str, str]]:
    """The events of this referral that a Centre 15 was told of on its own key, each with
    that key (``samu-35``, ``centre-15``)."""
    rows = (await session.execute(_CENTRE_15_CAUSES, {"referral_id": referral_id})).all()
    return {(r.cause_event_id, r.recipient) for r in rows}


# -- cancellations told -------------------------------------------------------------

_CANCELLATION = select(cancellations.c.withdrawal, cancellations.c.told).where(
    cancellations.c.referral_id == bindparam("referral_id"),
    cancellations.c.cause_event_id == bindparam("cause"),
)
_WITHDRAWN = (
    select(cancellations.c.cause_event_id)
    .where(
        cancellations.c.referral_id == bindparam("referral_id"),
        cancellations.c.withdrawal.is_(True),
    )
    .limit(1)
)
_INSERT_CANCELLATION = insert(cancellations)
_UPDATE_CANCELLATION = (
    update(cancellations)
    .where(
        cancellations.c.referral_id == bindparam("b_referral_id"),
        cancellations.c.cause_event_id == bindparam("b_cause"),
    )
    .values(withdrawal=bindparam("new_withdrawal"), told=bindparam("new_told"))
)
_APPOINTMENT_STATUSES = select(centre_appointments.c.status).where(
    centre_appointments.c.referral_id == bindparam("referral_id")
)
_TOLD_PATIENT = (
    select(notifications.c.id)
    .where(
        notifications.c.referral_id == bindparam("referral_id"),
        notifications.c.recipient_kind == RecipientKind.PATIENT.value,
    )
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A cancellation's cause as recorded: a withdrawal's, and whether the referrer (and
    the patient) were told of it."""

    withdrawal: bool
    told: bool


async def cancellation(session: AsyncSession, referral_id: str, cause: str) -> Cancellation | None:
    found = await session.execute(_CANCELLATION, {"referral_id": referral_id, "cause": cause})
    row = found.first()
    return None if row is None else Cancellation(bool(row.withdrawal), bool(row.told))


async def withdrawn(session: AsyncSession, referral_id: str) -> bool:
    """A withdrawal of this referral came already."""
    return await session.scalar(_WITHDRAWN, {"referral_id": referral_id}) is not None


async def record_cancellation(
    session: AsyncSession, referral_id: str, cause: str, state: Cancellation, *, new: bool
) -> None:
    """The cause's row added (``new``) or set to ``state``."""
    if new:
        values = {"referral_id": referral_id, "cause_event_id": cause}
        await session.execute(
            _INSERT_CANCELLATION, {**values, "withdrawal": state.withdrawal, "told": state.told}
        )
        return
    await session.execute(
        _UPDATE_CANCELLATION,
        {
            "b_referral_id": referral_id,
            "b_cause": cause,
            "new_withdrawal": state.withdrawal,
            "new_told": state.told,
        },
    )


async def appointment_statuses(session: AsyncSession, referral_id: str) -> set[str]:
    """The statuses of the referral's appointments the notifier heard of (booked,
    cancelled, fulfilled, noshow, escalated)."""
    return set((await session.scalars(_APPOINTMENT_STATUSES, {"referral_id": referral_id})).all())


async def told_patient(session: AsyncSession, referral_id: str) -> bool:
    """The patient was sent (or is being sent) a notice about this referral."""
    return await session.scalar(_TOLD_PATIENT, {"referral_id": referral_id}) is not None


# -- notifications ------------------------------------------------------------------

_INSERT_NOTIFICATION = insert(notifications)


async def add_sent(
    session: AsyncSession,
    *,
    notification_id: str,
    cause_event_id: str,
    referral_id: str | None,
    recipient_kind: RecipientKind,
    recipient: str,
    template: str,
    body: str,
    now: datetime,
) -> None:
    """A notification that travels on the broker: sent with this transaction's commit."""
    await session.execute(
        _INSERT_NOTIFICATION,
        {
            "id": notification_id,
            "cause_event_id": cause_event_id,
            "referral_id": referral_id,
            "recipient_kind": recipient_kind.value,
            "recipient": recipient,
            "channel": Channel.BROKER.value,
            "template": template,
            "body": body,
            "status": "sent",
            "attempts": 1,
            "created_at": now,
            "sent_at": now,
        },
    )


async def add_pending(
    session: AsyncSession,
    *,
    notification_id: str,
    cause_event_id: str,
    referral_id: str | None,
    recipient_kind: RecipientKind,
    recipient: str,
    channel: Channel,
    template: str,
    subject: str,
    body: str,
    target: dict[str, Any],
    next_attempt_at: datetime,
    created_at: datetime,
) -> None:
    """A notification for the outside world, for the dispatcher to send."""
    await session.execute(
        _INSERT_NOTIFICATION,
        {
            "id": notification_id,
            "cause_event_id": cause_event_id,
            "referral_id": referral_id,
            "recipient_kind": recipient_kind.value,
            "recipient": recipient,
            "channel": channel.value,
            "template": template,
            "subject": subject,
            "body": body,
            "target": target,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": next_attempt_at,
            "created_at": created_at,
        },
    )
