"""Referrers as the operator registered them, and how often each may submit.

A referrer's webhook, reply key and patient channels are where we send things on its
behalf: they are the operator's to say (``aiguillage referrer add``), not the
submission's. Submissions are counted per referrer in fixed windows (the current minute,
the current day, UTC) in intake's database, so every replica and a restart see one count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.tables import registered_referrers, submission_counts
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
        refused = found.again(_seconds_until(found.until, now))
        refused.whole_sender = whole_sender
        raise refused

    def remember(self, kind: str, identifier: str, limited: RateLimited, now: datetime) -> None:
        if len(self._spent) >= _REMEMBERED:
            self._spent = {k: v for k, v in self._spent.items() if v.until > now}
        self._spent[(kind, identifier)] = limited


# Beyond this many referrers remembered, those whose window has ended are forgotten.
_REMEMBERED = 4096


def _seconds_until(end: datetime, now: datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds()))


async def registered(session: AsyncSession, kind: str, identifier: str) -> Registration | None:
    row = (
        await session.execute(
            select(registered_referrers).where(
                registered_referrers.c.kind == kind,
                registered_referrers.c.identifier == identifier,
            )
        )
    ).first()
    if row is None:
        return None
    return Registration(
        row.kind,
        row.identifier,
        row.name,
        row.reply_to,
        row.webhook_url,
        tuple(row.patient_channels or ()),
    )


async def register(session: AsyncSession, registration: Registration, now: datetime) -> bool:
    """Add or replace a registration; True when it is new."""
    found = await registered(session, registration.kind, registration.identifier)
    if found is not None:
        await remove(session, registration.kind, registration.identifier)
    await session.execute(
        registered_referrers.insert().values(
            kind=registration.kind,
            identifier=registration.identifier,
            name=registration.name,
            reply_to=registration.reply_to,
            webhook_url=registration.webhook_url,
            patient_channels=list(registration.patient_channels),
            registered_at=now,
        )
    )
    return found is None


async def remove(session: AsyncSession, kind: str, identifier: str) -> bool:
    result = await session.execute(
        delete(registered_referrers).where(
            registered_referrers.c.kind == kind, registered_referrers.c.identifier == identifier
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def every_registration(session: AsyncSession) -> list[Registration]:
    rows = (
        await session.execute(
            select(registered_referrers.c.kind, registered_referrers.c.identifier).order_by(
                registered_referrers.c.kind, registered_referrers.c.identifier
            )
        )
    ).all()
    found = [await registered(session, r.kind, r.identifier) for r in rows]
    return [r for r in found if r is not None]


def _windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    minute = now.replace(second=0, microsecond=0)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "minute": (minute, minute + timedelta(minutes=1)),
        "day": (day, day + timedelta(days=1)),
    }


async def count_submission(
    session: AsyncSession,
    kind: str,
    identifier: str,
    now: datetime,
    limits: dict[str, int],
) -> None:
    """Count one submission in each window; raise ``RateLimited`` if that passes a limit.

    The increment is one upsert of both windows' rows that returns the new counts: on
    PostgreSQL the rows' locks make concurrent submissions (replicas) count one after
    the other, so the limit holds exactly. The caller's transaction then rolls back on
    the raise, so a refused submission does not count."""
    windows = _windows(now)
    statement = _COUNT[session.get_bind().dialect.name == "postgresql"]
    counts = dict(
        (
            await session.execute(
                statement,
                {
                    "kind": kind,
                    "identifier": identifier,
                    "minute_start": windows["minute"][0],
                    "day_start": windows["day"][0],
                },
            )
        ).all()
    )
    for span, (_, end) in windows.items():
        if counts[span] > limits[span]:
            raise RateLimited(_seconds_until(end, now), span, end)


def _count_statement(insert: Any) -> Any:
    """Both windows' rows in one upsert (the minute's and the day's), built once per
    dialect: a submission costs one statement's execution, not two constructions."""
    counted = submission_counts.c
    statement = insert(submission_counts).values(
        [
            {
                "referrer_kind": bindparam("kind"),
                "referrer_id": bindparam("identifier"),
                "span": span,
                "started_at": bindparam(f"{span}_start"),
                "count": 1,
            }
            # The minute's row first, always: a referrer's two rows are locked in one order.
            for span in ("minute", "day")
        ]
    )
    return statement.on_conflict_do_update(
        index_elements=[counted.referrer_kind, counted.referrer_id, counted.span],
        set_={
            # A new window starts from one; the current one counts on.
            "count": case(
                (counted.started_at == statement.excluded.started_at, counted.count + 1),
                else_=1,
            ),
            "started_at": statement.excluded.started_at,
        },
    ).returning(counted.span, counted.count)


# By "is PostgreSQL": the two dialects' upserts differ only in their construction.
_COUNT = {False: _count_statement(sqlite.insert), True: _count_statement(postgresql.insert)}
