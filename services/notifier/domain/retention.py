"""What the notifier purges past its retention (issue 34): a patient's contact (names,
phone, e-mail) and the notifications about the referral (their words name the
patient, their target is an address), once the last thing done for the referral (a
notification, an appointment's end) is older than the retention. A contact with
nothing done for it yet is kept: nothing to count from. The centres' appointments
stay, pseudonymous. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


def is_due(activity: Iterable[datetime], now: datetime, keep: timedelta) -> bool:
    """``activity``: each notification's creation and each appointment's end."""
    times = list(activity)
    return bool(times) and max(times) <= now - keep
