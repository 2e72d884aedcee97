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
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.domain import sms
from services.notifier.domain.oncall import OnCallContacts
from services.notifier.domain.restriction import WITHHELD_REASON, withheld
from services.notifier.handlers.channels import (
    Contact,
    PatientChannel,
    PatientMessage,
    PermanentFailure,
    Refused,
    TemporaryFailure,
    Webhook,
)
from services.notifier.handlers.sealing import ContactVault
from services.notifier.store import dispatch
from shared import tracing
from shared.db import Database, as_utc
from shared.events import Channel, NotificationFailed, NotificationSent, RecipientKind, utcnow
from shared.metrics import ServiceMetrics
from shared.outbox import OutboxRelay, outbox_row, stage_rows
from shared.paris import in_paris
from shared.settings import Settings

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
        metrics: ServiceMetrics | None = None,
        oncall: OnCallContacts | None = None,
        oncall_channels: Mapping[str, PatientChannel] | None = None,
        vault: ContactVault | None = None,
    ) -> None:
        self.database = database
        # The contacts are sealed at rest (issue 34): unsealed for the send only.
        self.vault = vault or ContactVault.of(Settings())
        self.relay = relay
        self.channels = patient_channels
        self.webhook = webhook
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self.poll = poll_seconds
        self.contact_messages_per_day = contact_messages_per_day
        self.metrics = metrics  # notifications sent and failed per channel (/metrics)
        # The ARS's on-call, by département, and the channels that reach them (e-mail,
        # SMS): read when a notification to them is sent, never stored with it.
        self.oncall: OnCallContacts = oncall or {}
        self.oncall_channels: Mapping[str, PatientChannel] = oncall_channels or {}
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
        is sent again (same idempotency key).

        The claim reads, in its own transaction, the contacts and referrers its patient
        notices need (two statements for the batch, not two per notice); the sends go
        concurrently, and their outcomes are recorded as they come, every outcome that
        has come by then in one transaction (a slow receiver does not hold the others'
        records back, and a burst costs a transaction per group, not per notice)."""
        now = utcnow()
        async with self.database.transaction() as session:
            until = now + timedelta(seconds=self.claim_seconds(batch))
            rows = await dispatch.claim_due(
                session, now, batch, until, locked=not self.database.is_sqlite
            )
            if not rows:
                return 0
            kept = await _withhold_restricted(session, rows)
            known = await _recipients(session, self.vault, kept)
        pending = {asyncio.ensure_future(self._send(row, known)) for row in kept}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await self._record_all([task.result() for task in done])
        return len(rows)

    async def _send(self, row: Any, known: Mapping[str, _Recipient]) -> _Outcome:
        async with self._limit:
            error: str | None = None
            permanent = False
            refused: Refused | None = None
            try:
                # Bounded, so that the send ends well within its claim (claim_seconds).
                # Its span is a child of the handler's that recorded it (shared.tracing).
                target = row.target or {}
                with tracing.span(
                    f"notifier send {row.channel}",
                    service="notifier",
                    parent=target.get(tracing.TRACEPARENT),
                    referral_id=row.referral_id,
                    kind=SpanKind.CLIENT,
                ):
                    await asyncio.wait_for(self._deliver(row, known), SEND_TIMEOUT_SECONDS)
            except NotArrived as exc:
                if utcnow() - as_utc(row.created_at) < WAIT_FOR_CONTACT:
                    return _Outcome(row, str(exc), waits=True)
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
            return _Outcome(row, error, permanent=permanent, refused=refused)

    async def _deliver(self, row: Any, known: Mapping[str, _Recipient]) -> None:
        if row.channel == Channel.WEBHOOK.value:
            await self.webhook.send(row.target["url"], row.id, row.target["payload"])
            return
        if "oncall" in row.target:
            await self._deliver_oncall(row)
            return
        channel = self.channels.get(row.channel)
        if channel is None:
            raise PermanentFailure(f"no {row.channel} channel configured")
        recipient = known.get(row.target["referral_id"])
        if recipient is None or recipient.contact is None:
            raise NotArrived("the patient's contact has not arrived yet")
        if not recipient.referrer_known:
            # The referrer (the channels it is registered for) comes with the contact; a
            # contact staged before it carried one leaves the rule unknown, and nothing
            # is sent against an unknown rule.
            raise NotArrived("the patient's referrer has not arrived yet")
        allowed = recipient.patient_channels
        # The record channel reaches nobody (demos): only real channels are restricted.
        if allowed is not None and row.channel != "record" and row.channel not in allowed:
            raise Refused(
                "channel_not_allowed", f"the referrer is not registered for {row.channel}"
            )
        contact = recipient.contact
        if not channel.reaches(contact):
            # No number, or no consent to SMS: the patient's own choice, a rule applied
            # (recorded as failed with its code), not an error for the operators' letters.
            raise Refused(
                "not_reachable", f"the patient gave no address or consent for {row.channel}"
            )
        key = _address_key(row.channel, contact, self.vault)
        if key is not None:
            await self._take_quota(key)
        try:
            await channel.send(contact, PatientMessage(row.id, row.subject, row.body))
        except BaseException:
            if key is not None:
                await self._give_back_quota(key)  # not sent: it does not count
            raise

    async def _deliver_oncall(self, row: Any) -> None:
        """To the ARS's on-call of a département, by their rank in the settings: no
        patient's quota nor referrer's rule applies (at most one an hour is the
        handler's)."""
        channel = self.oncall_channels.get(row.channel)
        if channel is None:
            raise PermanentFailure(f"no {row.channel} channel configured for the on-call")
        people = self.oncall.get(row.target["oncall"], ())
        index = int(row.target.get("index", 0))
        if index >= len(people):
            raise Refused("oncall_unknown", "no such on-call contact in the settings now")
        person = people[index]
        contact = Contact("", "", person.phone, person.email, sms_consent=True)
        if not channel.reaches(contact):
            raise Refused("not_reachable", f"the on-call contact has no {row.channel} address")
        await channel.send(contact, PatientMessage(row.id, row.subject, row.body))

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
            count = await dispatch.take_quota(session, key, day, is_sqlite=self.database.is_sqlite)
            if count > self.contact_messages_per_day:
                raise Refused(
                    "contact_quota",
                    f"this patient's address had {self.contact_messages_per_day} messages today",
                )

    async def _give_back_quota(self, key: str) -> None:
        with contextlib.suppress(Exception):  # at worst one message too few today
            async with self.database.transaction() as session:
                await dispatch.give_back_quota(session, key, self._today())

    async def _record_all(self, outcomes: list[_Outcome]) -> None:
        """The outcomes of a group of sends, in one transaction: each try's attempt row,
        its notification's new state and its event (sent or failed); the notices still
        waiting for their contact put back, their tries untouched. Then the log lines
        and the dead letters, after the commit (a dead letter names a committed fact)."""
        now = utcnow()
        tries: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        waits: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        finals: list[_Outcome] = []
        for outcome in outcomes:
            row, error = outcome.row, outcome.error
            if outcome.waits:
                waits.append(
                    {
                        "b_id": row.id,
                        "due": now + timedelta(seconds=WAIT_RECHECK_SECONDS),
                        "error": error,
                    }
                )
                continue
            attempt = row.attempts + 1
            final = error is not None and (outcome.permanent or attempt >= self.max_attempts)
            if error is None:
                status, due = "sent", None
            elif final:
                status, due = "failed", None
                finals.append(outcome)
            else:
                status = "pending"
                due = now + timedelta(seconds=self.backoff * 2 ** (attempt - 1))
            tries.append({"notification_id": row.id, "attempt": attempt, "at": now, "error": error})
            states.append(
                {
                    "b_id": row.id,
                    "new_status": status,
                    "new_attempts": attempt,
                    "due": due,
                    "error": error,
                    "new_sent_at": now if error is None else None,
                }
            )
            events.append(self._event_row(row, attempt, error, final, outcome.refused))
        async with self.database.transaction() as session:
            if tries:
                await dispatch.record(session, tries, states)
                await stage_rows(session, events)
            if waits:
                await dispatch.put_back(session, waits)
        if events:
            self.relay.notify(len(events))  # each try records one event
        if self.metrics is not None:
            for outcome in outcomes:
                if not outcome.waits:
                    final = outcome.error is None or outcome in finals
                    self.metrics.notification(outcome.row.channel, outcome.error is None, final)
        for outcome in outcomes:
            if outcome.waits:
                continue
            row, error = outcome.row, outcome.error
            if error is None:
                log.info(
                    "notification sent",
                    channel=row.channel,
                    template=row.template,
                    attempts=row.attempts + 1,
                )
            else:
                log.warning(
                    "notification failed",
                    channel=row.channel,
                    error=error,
                    attempts=row.attempts + 1,
                    final=outcome in finals,
                )
        for outcome in finals:
            refused = outcome.refused
            if refused is None or refused.dead_letter:
                await self._dead_letter_of(outcome)

    def _event_row(
        self, row: Any, attempt: int, error: str | None, final: bool, refused: Refused | None
    ) -> dict[str, Any]:
        common = {
            "notification_id": row.id,
            "referral_id": row.referral_id,
            "recipient_kind": RecipientKind(row.recipient_kind),
            "recipient": row.recipient,
            "channel": Channel(row.channel),
            "template": row.template,
            "attempts": attempt,
        }
        if error is None:
            # The text an SMS row holds is the one sent: its segments tell the run's
            # summary (and whoever pays the operator) what each SMS cost.
            length = sms.segments(row.body) if row.channel == Channel.SMS.value else None
            payload: NotificationSent | NotificationFailed = NotificationSent(
                **common, segments=length
            )
        else:
            payload = NotificationFailed(
                **common,
                error=error[:500],
                final=final,
                error_code=refused.code if refused is not None else None,
            )
        _, event = outbox_row(
            payload,
            source="notifier",
            correlation_id=row.referral_id or row.cause_event_id,
            causation_id=row.cause_event_id,
        )
        return event

    async def _dead_letter_of(self, outcome: _Outcome) -> None:
        # The last try failed: the notification goes to the dead-letter queue, with its
        # error, for someone to act on.
        row = outcome.row
        document = {
            "notification_id": row.id,
            "cause_event_id": row.cause_event_id,
            "referral_id": row.referral_id,
            "recipient_kind": row.recipient_kind,
            "channel": row.channel,
            "template": row.template,
            "attempts": row.attempts + 1,
        }
        await self.dead_letter(document, outcome.error or "")


@dataclass(frozen=True, slots=True)
class _Recipient:
    """What a patient notice needs, read with its claim: the contact (None: not arrived)
    and the referrer's registered channels (``referrer_known`` False: not arrived)."""

    contact: Contact | None
    referrer_known: bool
    patient_channels: list[str] | None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One send's result: ``error`` None when sent; ``waits`` when what it needs has not
    arrived (put back without a try)."""

    row: Any
    error: str | None
    permanent: bool = False
    refused: Refused | None = None
    waits: bool = False


async def _withhold_restricted(session: AsyncSession, rows: Sequence[Any]) -> list[Any]:
    """The claimed notifications still to send: those to the patient or the referrer of
    a referral whose patient restricted its processing (``referral.restricted``, maybe
    after they were recorded) are withheld in the claim's transaction, never sent."""
    ids = sorted({r.referral_id for r in rows if r.referral_id and withheld(r.recipient_kind)})
    restricted = await dispatch.restricted_among(session, ids) if ids else set()
    dropped = {r.id for r in rows if r.referral_id in restricted and withheld(r.recipient_kind)}
    if dropped:
        await dispatch.withhold(session, sorted(dropped), WITHHELD_REASON)
        log.info("notifications withheld: processing restricted", count=len(dropped))
    return [r for r in rows if r.id not in dropped]


async def _recipients(
    session: AsyncSession, vault: ContactVault, rows: Iterable[Any]
) -> dict[str, _Recipient]:
    """The contacts and referrers of the patient notices among ``rows``, by referral."""
    ids = sorted(
        {
            r.target["referral_id"]
            for r in rows
            if r.channel != Channel.WEBHOOK.value and r.target.get("referral_id")
        }
    )
    if not ids:
        return {}
    found = await dispatch.contacts_of(session, ids)
    registered = await dispatch.registered_channels(session, ids)
    known: dict[str, _Recipient] = {}
    for referral_id in ids:
        c = found.get(referral_id)
        contact = None
        if c is not None:
            clear = await vault.contact(session, c)
            contact = Contact(
                clear["first_name"] or "",
                clear["last_name"] or "",
                clear["phone"],
                clear["email"],
                c.sms_consent,
            )
        known[referral_id] = _Recipient(
            contact, referral_id in registered, registered.get(referral_id)
        )
    return known


def _address_key(channel: str, contact: Contact, vault: ContactVault) -> str | None:
    """The address a channel reaches, as a keyed hash: what the quota counts by, never
    the address itself (the table, like the log, holds none). An e-mail's case and a
    phone number's spacing do not make it another address."""
    if channel == "email" and contact.email:
        address = "email:" + contact.email.strip().lower()
    elif channel == "sms" and contact.phone:
        digits = re.sub(r"[^0-9+]", "", contact.phone)
        address = "phone:" + (("+33" + digits[1:]) if digits.startswith("0") else digits)
    else:
        return None
    return vault.address_key(address)


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True).encode()
