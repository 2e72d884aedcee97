"""What the scheduler purges past its retention (issue 34): a regulation's reasons
(clinical details) once the referral is off the waiting list and its last appointment
ended, and both are older than the retention. The appointments, outcomes and waiting
list entries stay: they are the pseudonymous record the ARS's figures count. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


def is_due(
    regulated_at: datetime,
    appointment_times: Iterable[datetime],
    waiting: bool,
    now: datetime,
    keep: timedelta,
) -> bool:
    """``appointment_times``: each appointment's creation and end (the latest counts)."""
    if waiting:
        return False
    last = max([regulated_at, *appointment_times])
    return last <= now - keep
