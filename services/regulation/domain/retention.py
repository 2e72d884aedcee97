"""What regulation purges past its retention (issue 34): a case's clinical details
(its symptoms, signs and risk factors, each decision's reasons and comment), once its
standing decision is not a hold and is older than the retention. The decision itself
(what, which priority, when, by which protocol) stays, pseudonymous. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import Decision

# A case held for a regulator waits for a decision: nothing of it is due.
OPEN_DECISIONS: tuple[str, ...] = (Decision.HOLD.value,)


def is_due(
    decision: str | None, decided_at: datetime | None, now: datetime, keep: timedelta
) -> bool:
    """Whether a case whose standing ``decision`` was taken at ``decided_at`` is due."""
    if decision is None or decided_at is None or decision in OPEN_DECISIONS:
        return False
    return decided_at <= now - keep
