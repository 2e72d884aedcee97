"""Referrers as the operator registered them, and how often each may submit.

A referrer's webhook, reply key and patient channels are where we send things on its
behalf: they are the operator's to say (``aiguillage referrer add``), not the
submission's. Submissions are counted per referrer in fixed windows (the current minute,
the current day, UTC) in intake's database (``store.registry``), so every replica and a
restart see one count; this module says what a registration is, which windows a moment
falls in, and remembers the quotas this process found spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import ReferrerRef
from shared.senders import SenderThrottled


@dataclass(frozen=True)
class Registration:
    kind: str
    identifier: str
    name: str | None
    reply_to: str | None
    webhook_url: str | None
    patient_channels: tuple[str, ...]

    def ref(self) -> ReferrerRef:
        """What travels downstream (referral.received, referral.rejected): the registered
        values only."""
        return ReferrerRef.model_validate(
            {
                "kind": self.kind,
                "identifier": self.identifier,
                "reply_to": self.reply_to,
                "webhook_url": self.webhook_url,
                "patient_channels": self.patient_channels,
            }
        )


class RateLimited(SenderThrottled):
    """Past a referrer's quota: answered 429 with ``Retry-After`` over HTTP,
    ``request.refused`` (``rate_limited``) on the broker. ``until``: when the window ends."""

    def __init__(
        self, retry_after: int, window: str, until: datetime, *, whole_sender: bool = False
    ) -> None:
        super().__init__(
            "rate_limited",
            f"too many submissions this {window}; retry in {retry_after} s",
            retry_after,
            whole_sender=whole_sender,
        )
        self.window, self.until = window, until

    def again(self, retry_after: int) -> RateLimited:
        return RateLimited(retry_after, self.window, self.until, whole_sender=self.whole_sender)


class SpentQuotas:
    """The referrers whose quota this process found spent, and until when: their
    submissions are refused until then without a database round trip (a flood past its
    quota costs no statement per message). The count in the database stays the truth,
    which replicas share: each learns a spent quota from its own first refusal."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str], RateLimited] = {}

    def check(self, kind: str, identifier: str, now: datetime, *, whole_sender: bool) -> None:
        """Raise ``RateLimited`` if the referrer's quota is known spent at ``now``."""
        found = self._spent.get((kind, identifier))
        if found is None:
            return
        if now >= found.until:
            del self._spent[(kind, identifier)]
            return
        refused = found.again(seconds_until(found.until, now))
        refused.whole_sender = whole_sender
        raise refused

    def remember(self, kind: str, identifier: str, limited: RateLimited, now: datetime) -> None:
        if len(self._spent) >= _REMEMBERED:
            self._spent = {k: v for k, v in self._spent.items() if v.until > now}
        self._spent[(kind, identifier)] = limited


# Beyond this many referrers remembered, those whose window has ended are forgotten.
_REMEMBERED = 4096


def seconds_until(end: datetime, now: datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds()))


def windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The windows ``now`` falls in, each as (start, end): the minute's and the day's."""
    minute = now.replace(second=0, microsecond=0)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "minute": (minute, minute + timedelta(minutes=1)),
        "day": (day, day + timedelta(days=1)),
    }


def past_quota(
    counts: dict[str, int],
    spans: dict[str, tuple[datetime, datetime]],
    limits: dict[str, int],
    now: datetime,
) -> RateLimited | None:
    """The refusal of a submission whose count passes a window's limit, or None."""
    for span, (_, end) in spans.items():
        if counts[span] > limits[span]:
            return RateLimited(seconds_until(end, now), span, end)
    return None
