"""Sends what the handlers recorded as pending: to patients (e-mail, SMS, record) and
to referrers' webhooks, with retries and backoff, once per notification.

A notification is claimed (``sending``) in one transaction, sent outside any
transaction, and its result recorded with its event (sent or failed) in another.
A crash between the send and the record leaves it ``sending``; at the next start it is
sent again, with the same Message-ID / idempotency key, so that the receiver can
recognise the repeat: at least once, never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.notifier.channels import (
    Contact,
    PatientChannel,
    PatientMessage,
    PermanentFailure,
    Refused,
    TemporaryFailure,
    Webhook,
)
from services.notifier.tables import attempts, contact_quota, contacts, notifications, referrers
from shared.db import Database, as_utc
from shared.events import Channel, NotificationFailed, NotificationSent, RecipientKind, utcnow
from shared.outbox import OutboxRelay, add_to_outbox
from shared.paris import in_paris

log = structlog.get_logger(__name__)

# A claimed notification is sent within this (the channels' own timeouts are shorter).
SEND_TIMEOUT_SECONDS = 30.0
CLAIM_MARGIN_SECONDS = 30.0
CLAIM_BATCH = 50

DeadLetter = Callable[[dict[str, Any], str], Awaitable[None]]

# A notice whose patient contact (or referrer) has not arrived waits for it this long
# before its tries count: the contacts queue can lag the appointments queue by more than
# the tries' whole backoff (about 30 s) in a burst, and a notice must not fail for that.
WAIT_FOR_CONTACT = timedelta(hours=1)
WAIT_RECHECK_SECONDS = 5.0


class NotArrived(TemporaryFailure):
    """What the notice needs (the contact, the referrer) has not arrived yet."""


class Dispatcher:
    def __init__(
        self,
        database: Database,
        relay: OutboxRelay,
        patient_channels: Mapping[str, PatientChannel],
        webhook: Webhook,
        dead_letter: DeadLetter,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        poll_seconds: float = 0.5,
        concurrency: int = 16,
        contact_messages_per_day: int = 5,
    ) -> None:
        self.database = database
        self.relay = relay
        self.channels = patient_channels
        self.webhook = webhook
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self.poll = poll_seconds
        self.contact_messages_per_day = contact_messages_per_day
        self.concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        self._wake.set()

    def claim_seconds(self, batch: int = CLAIM_BATCH) -> float:
        """How long a claim holds: every send of a batch bounded (``SEND_TIMEOUT_SECONDS``),
        ``concurrency`` at a time, and a margin. Past it the sender is taken for dead."""
        rounds = -(-batch // self.concurrency)
        return rounds * SEND_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS

    async def start(self) -> None:
        # Rows left "sending" by a crash are not put back here: another replica may be
        # sending them right now (it would send them a second time). They are taken again
        # by any replica once their claim lapses (dispatch_once).
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="notification-dispatcher")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=20)
            self._task = None

    async def _run(self) -> None:
        pause = self.poll
        while not self._stopping:
            try:
                # A producer like the consumers: it waits while the relay is far behind.
                await self.relay.room()
                while await self.dispatch_once():
                    await self.relay.room()
                pause = self.poll
            except Exception as exc:  # the database is away: back off, do not spin
                log.warning("dispatcher failed; retrying", error=str(exc)[:200], retry_in=pause)
                pause = min(pause * 2, 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
            self._wake.clear()

    async def dispatch_once(self, batch: int = CLAIM_BATCH) -> int:
        """Claim and send the notifications that are due; returns how many.

        A claim is ``sending`` with ``next_attempt_at`` its end: replicas share the table,
        SKIP LOCKED keeps two from claiming the same row at once, and the claim keeps the
        others off it while it is sent. A claim that lapsed is a sender's crash: the row
        is sent again (same idempotency key)."""
        now = utcnow()
        async with self.database.transaction() as session:
            query = (
                select(notifications)
                .where(
                    notifications.c.status.in_(("pending", "sending")),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.next_attempt_at)
                .limit(batch)
            )
            if not self.database.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(
                    update(notifications)
                    .where(notifications.c.id.in_([r.id for r in rows]))
                    .values(
                        status="sending",
                        next_attempt_at=now + timedelta(seconds=self.claim_seconds(batch)),
                    )
                )
        await asyncio.gather(*(self._send(row) for row in rows))
        if rows:
            self.relay.notify(len(rows))  # each try records one event
        return len(rows)

    async def _send(self, row: Any) -> None:
        async with self._limit:
            error: str | None = None
            permanent = False
            refused: Refused | None = None
            try:
                # Bounded, so that the send ends well within its claim (claim_seconds).
                await asyncio.wait_for(self._deliver(row), SEND_TIMEOUT_SECONDS)
            except NotArrived as exc:
                if utcnow() - as_utc(row.created_at) < WAIT_FOR_CONTACT:
                    await self._wait(row, str(exc))
                    return
                error = str(exc)
            except TimeoutError:
                error = f"no answer within {SEND_TIMEOUT_SECONDS:.0f} s"
            except TemporaryFailure as exc:
                error = str(exc)
            except Refused as exc:
                error, permanent, refused = str(exc), True, exc
            except PermanentFailure as exc:
                error, permanent = str(exc), True
            except Exception as exc:  # a bug must not stop the others
                error = f"{type(exc).__name__}: {exc}"
            await self._record(row, error, permanent, refused)

    async def _deliver(self, row: Any) -> None:
        if row.channel == Channel.WEBHOOK.value:
            await self.webhook.send(row.target["url"], row.id, row.target["payload"])
            return
        channel = self.channels.get(row.channel)
        if channel is None:
            raise PermanentFailure(f"no {row.channel} channel configured")
        async with self.database.transaction() as session:
            found = (
                await session.execute(
                    select(contacts).where(contacts.c.referral_id == row.target["referral_id"])
                )
            ).first()
            referrer = (
                await session.execute(
                    select(referrers.c.patient_channels).where(
                        referrers.c.referral_id == row.target["referral_id"]
                    )
                )
            ).first()
        if found is None:
            raise NotArrived("the patient's contact has not arrived yet")
        if referrer is None:
            # The referrer (the channels it is registered for) comes with the contact; a
            # contact staged before it carried one leaves the rule unknown, and nothing
            # is sent against an unknown rule.
            raise NotArrived("the patient's referrer has not arrived yet")
        allowed = referrer.patient_channels
        # The record channel reaches nobody (demos): only real channels are restricted.
        if allowed is not None and row.channel != "record" and row.channel not in allowed:
            raise Refused(
                "channel_not_allowed", f"the referrer is not registered for {row.channel}"
            )
        contact = Contact(
            found.first_name, found.last_name, found.phone, found.email, found.sms_consent
        )
        if not channel.reaches(contact):
            raise PermanentFailure(f"the patient cannot be reached by {row.channel}")
        key = _address_key(row.channel, contact)
        if key is not None:
            await self._take_quota(key)
        try:
            await channel.send(contact, PatientMessage(row.id, row.subject, row.body))
        except BaseException:
            if key is not None:
                await self._give_back_quota(key)  # not sent: it does not count
            raise

    def _today(self) -> Any:
        # The patient's day is a day in France.
        return in_paris(utcnow()).date()

    async def _take_quota(self, key: str) -> None:
        """Count one more message to this address today, or refuse it (``contact_quota``)
        if that passes the limit. One upsert returning the new count, in its own
        transaction: replicas count one after the other (the row's lock on PostgreSQL),
        and a refused message rolls its increment back."""
        day = self._today()
        async with self.database.transaction() as session:
            insert_: Any = sqlite.insert if self.database.is_sqlite else postgresql.insert
            statement = insert_(contact_quota).values(address_key=key, day=day, count=1)
            statement = statement.on_conflict_do_update(
                index_elements=[contact_quota.c.address_key, contact_quota.c.day],
                set_={"count": contact_quota.c.count + 1},
            ).returning(contact_quota.c.count)
            count = (await session.execute(statement)).scalar_one()
            if count > self.contact_messages_per_day:
                raise Refused(
                    "contact_quota",
                    f"this patient's address had {self.contact_messages_per_day} messages today",
                )

    async def _give_back_quota(self, key: str) -> None:
        with contextlib.suppress(Exception):  # at worst one message too few today
            async with self.database.transaction() as session:
                await session.execute(
                    update(contact_quota)
                    .where(contact_quota.c.address_key == key, contact_quota.c.day == self._today())
                    .values(count=contact_quota.c.count - 1)
                )

    async def _wait(self, row: Any, reason: str) -> None:
        """Not sent, not tried: looked at again shortly, its tries untouched."""
        async with self.database.transaction() as session:
            await session.execute(
                update(notifications)
                .where(notifications.c.id == row.id)
                .values(
                    status="pending",
                    next_attempt_at=utcnow() + timedelta(seconds=WAIT_RECHECK_SECONDS),
                    last_error=reason,
                )
            )

    async def _record(
        self, row: Any, error: str | None, permanent: bool, refused: Refused | None = None
    ) -> None:
        attempt = row.attempts + 1
        now = utcnow()
        final = error is not None and (permanent or attempt >= self.max_attempts)
        async with self.database.transaction() as session:
            await session.execute(
                insert(attempts).values(
                    notification_id=row.id, attempt=attempt, at=now, error=error
                )
            )
            if error is None:
                status, due = "sent", None
            elif final:
                status, due = "failed", None
            else:
                status = "pending"
                due = now + timedelta(seconds=self.backoff * 2 ** (attempt - 1))
            await session.execute(
                update(notifications)
                .where(notifications.c.id == row.id)
                .values(
                    status=status,
                    attempts=attempt,
                    next_attempt_at=due,
                    last_error=error,
                    sent_at=now if error is None else None,
                )
            )
            common = {
                "notification_id": row.id,
                "referral_id": row.referral_id,
                "recipient_kind": RecipientKind(row.recipient_kind),
                "recipient": row.recipient,
                "channel": Channel(row.channel),
                "template": row.template,
                "attempts": attempt,
            }
            correlation = row.referral_id or row.cause_event_id
            if error is None:
                payload: NotificationSent | NotificationFailed = NotificationSent(**common)
            else:
                payload = NotificationFailed(
                    **common,
                    error=error[:500],
                    final=final,
                    error_code=refused.code if refused is not None else None,
                )
            await add_to_outbox(
                session,
                payload,
                source="notifier",
                correlation_id=correlation,
                causation_id=row.cause_event_id,
            )
        if error is None:
            log.info(
                "notification sent", channel=row.channel, template=row.template, attempts=attempt
            )
        else:
            log.warning(
                "notification failed",
                channel=row.channel,
                error=error,
                attempts=attempt,
                final=final,
            )
        if final and (refused is None or refused.dead_letter):
            # The last try failed: the notification goes to the dead-letter queue, with
            # its error, for someone to act on.
            document = {
                "notification_id": row.id,
                "cause_event_id": row.cause_event_id,
                "referral_id": row.referral_id,
                "recipient_kind": row.recipient_kind,
                "channel": row.channel,
                "template": row.template,
                "attempts": attempt,
            }
            await self.dead_letter(document, error or "")


def _address_key(channel: str, contact: Contact) -> str | None:
    """The address a channel reaches, as a hash: what the quota counts by, never the
    address itself (the table, like the log, holds none). An e-mail's case and a phone
    number's spacing do not make it another address."""
    if channel == "email" and contact.email:
        address = "email:" + contact.email.strip().lower()
    elif channel == "sms" and contact.phone:
        digits = re.sub(r"[^0-9+]", "", contact.phone)
        address = "phone:" + (("+33" + digits[1:]) if digits.startswith("0") else digits)
    else:
        return None
    return hashlib.sha256(address.encode()).hexdigest()


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True).encode()
