"""Who referred each patient, and the outcomes kept until that referrer is known."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import deferred_outcomes, notifications, referrers
from shared.events import RecipientKind, ReferrerRef


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
