"""A referral's history and the status it comes to: every handler that learns what
happened to a referral records it here (``domain.status`` replays the history)."""

from __future__ import annotations

from typing import Any

from services.intake.domain import status as referral_status
from services.intake.store import history, referrals
from shared.consumer import Delivery
from shared.db import as_utc


async def record_status(
    delivery: Delivery,
    referral_id: str,
    happening: referral_status.Happening,
    detail: dict[str, Any],
) -> None:
    """Add the event to the referral's history, and set the status its whole history
    comes to (services/intake/domain/status.py): events of one referral arrive out of
    order between queues, and a replay by their own times does not depend on it (for
    what came through a door, its time of receipt: shared.consumer)."""
    session = delivery.session
    # The row's lock (PostgreSQL; SQLite has one writer anyway) puts the events of one
    # referral one after the other, from both queues and every replica: each replay
    # then reads the entries committed before it.
    if not await referrals.lock(session, referral_id):
        # Not a referral of ours (or not yet committed): retried, then dead-lettered.
        raise LookupError(f"status event for unknown referral {referral_id}")
    await add_entry(delivery, referral_id, happening, detail)
    current = await replayed(session, referral_id)
    if current is None:
        return
    await referrals.set_status(session, referral_id, current.status, current.detail, current.at)


async def replayed(session: Any, referral_id: str) -> referral_status.Current | None:
    """Where the referral's whole history, as committed, brings it: its state (which
    tells a withdrawal, final, from an appointment's cancellation, both "cancelled")."""
    rows = await history.history(session, referral_id)
    entries = (
        referral_status.Entry.from_row(r.status, r.detail or {}, as_utc(r.at), r.event_id)
        for r in rows
    )
    return referral_status.replay(e for e in entries if e is not None)


async def add_entry(
    delivery: Delivery,
    referral_id: str,
    happening: referral_status.Happening,
    detail: dict[str, Any],
) -> None:
    """The delivery's event, one entry of the referral's history (its status unset)."""
    await history.add_history(
        delivery.session,
        referral_id=referral_id,
        event_id=delivery.envelope.id,
        status=happening.value,
        detail=detail,
        at=delivery.occurred_at,
    )
