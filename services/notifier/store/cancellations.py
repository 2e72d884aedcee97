"""The cancellations told: a withdrawal (referral.cancelled) and the appointment's
cancellation it causes come on two queues, in either order; each cause's row says
whether the referrer and the patient were told of it already."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import cancellations

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
