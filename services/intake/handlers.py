"""Intake's use cases: a submitted referral becomes a received one (or is refused),
whichever door it came through; downstream events keep its status current."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import structlog
from pydantic import ValidationError

from services.intake import domain, registry, store
from services.intake import status as referral_status
from services.intake.registry import Registration
from shared.consumer import Delivery, PermanentError
from shared.db import as_utc
from shared.events import (
    CancelledBy,
    Envelope,
    PatientContact,
    Reason,
    ReferralCancelled,
    ReferralReceived,
    ReferralRejected,
    ReferralSubmitted,
    ReferrerKind,
    ReferrerRef,
    SubmissionAcknowledged,
    SubmissionError,
    new_id,
    utcnow,
)
from shared.http import development
from shared.senders import ActorKind, Sender, SenderRefused
from shared.settings import Settings

log = structlog.get_logger(__name__)

_REPLY_TO = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    referral_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    identifiable: bool = True
    # A duplicate's answer: where the referral stands now, not where it began.
    status: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _reply_to(data: dict[str, Any]) -> str | None:
    referrer = data.get("referrer")
    value = referrer.get("reply_to") if isinstance(referrer, dict) else None
    return value if isinstance(value, str) and _REPLY_TO.match(value) else None


def _referrer_ref(data: dict[str, Any]) -> ReferrerRef | None:
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        return None
    try:
        return ReferrerRef.model_validate(
            {k: v for k, v in referrer.items() if k in ReferrerRef.model_fields}
        )
    except ValidationError:
        return None


def _reference(data: dict[str, Any]) -> str | None:
    value = data.get("reference")
    return value[:100] if isinstance(value, str) and value else None


@dataclass
class IntakeHandlers:
    settings: Settings
    today: Callable[[], date] = field(default=date.today)
    # Quotas this process found spent: refused until their window ends, no database.
    quotas: registry.SpentQuotas = field(default_factory=registry.SpentQuotas)

    async def on_submitted(self, delivery: Delivery) -> None:
        """The broker door: every submission is answered on the referrer's reply key."""
        if delivery.envelope.type == ReferralCancelled.event_type:
            await self.on_cancelled(delivery)
            return
        if delivery.envelope.type != ReferralSubmitted.event_type:
            raise PermanentError("unexpected_event", f"{delivery.envelope.type} is not a referral")
        if delivery.sender is not None and not delivery.sender.trusted:
            delivery.envelope = delivery.envelope.model_copy(
                update={"data": _in_own_name(delivery.sender, delivery.envelope.data)}
            )
        named = _named_referrer(delivery.envelope.data)
        registration = None
        if named is not None:
            # Refused (request.refused: unknown_referrer, rate_limited) before anything
            # is applied; the count rolls back with the refusal.
            registration = await self.admit(
                delivery.session,
                *named,
                delivery.occurred_at,
                whole_sender=_speaks_for_itself(delivery.sender),
                # In a group-commit batch, the counts of the submissions before this one
                # roll back with the batch, replayed one by one: only a count of its own
                # transaction says the quota is spent.
                remember=delivery.staged is None,
            )
        outcome = await self.submit(delivery, registration=registration)
        if not outcome.identifiable:
            # Nobody to answer: the dead-letter queue keeps it, with the reasons' codes.
            raise PermanentError(
                "unidentifiable_submission",
                "; ".join(f"{r.field}: {r.code}" for r in outcome.reasons),
            )

    async def on_cancelled(self, delivery: Delivery) -> None:
        """A referrer withdraws a referral of its own: recorded here, then on the bus for
        the scheduler (the slot is freed) and the notifier."""
        cancel = delivery.payload_as(ReferralCancelled)
        owner = await store.owner(delivery.session, cancel.referral_id)
        sender = delivery.sender
        if owner is None:
            if sender is None or sender.trusted:
                raise LookupError(f"cancellation of unknown referral {cancel.referral_id}")
            raise SenderRefused("unknown_referral", "no such referral", "referral_id")
        if sender is not None and not sender.trusted:
            _check_owner(sender, *owner)
            if cancel.cancelled_by not in (CancelledBy.REFERRER, CancelledBy.PATIENT) and (
                sender.kind is not ActorKind.CENTRE_15
            ):
                raise SenderRefused(
                    "sender_inconsistent", "a referrer cancels as itself", "cancelled_by"
                )
        detail: dict[str, Any] = {"by": cancel.cancelled_by.value, "reason": cancel.reason}
        if cancel.reason_code is not None:  # chosen from the list (intake's HTTP door)
            detail["reason_code"] = cancel.reason_code.value
        await _record_status(
            delivery, cancel.referral_id, referral_status.Happening.WITHDRAWN, detail
        )
        await delivery.emit(cancel, correlation_id=cancel.referral_id)
        log.info("referral cancelled", referral_id=cancel.referral_id, by=cancel.cancelled_by)

    def gate(self, sender: Sender | None, envelope: Envelope) -> None:
        """The broker door, before a submission joins a batch, without the database: a
        referrer whose quota this process knows spent is refused here (the refusal
        would otherwise fail the batch's transaction, which is then replayed one by one),
        and so is a submission in another's name."""
        if envelope.type != ReferralSubmitted.event_type:
            return
        data = envelope.data
        if sender is not None and not sender.trusted:
            data = _in_own_name(sender, data)
        named = _named_referrer(data)
        if named is not None:
            whole_sender = _speaks_for_itself(sender)
            self.quotas.check(*named, utcnow(), whole_sender=whole_sender)

    async def admit(
        self,
        session: Any,
        kind: str,
        identifier: str,
        now: datetime,
        *,
        whole_sender: bool = False,
        remember: bool = True,
    ) -> Registration | None:
        """Both doors, before a submission is read: the referrer as registered, and one
        more submission counted against its quotas. Unregistered: refused, except in
        development (tests, the demo), where it speaks for itself (None). A quota known
        spent is refused at once; ``whole_sender``: the quota is its sender's own (the
        door then holds the sender, shared.door_guard); ``remember``: a quota found
        spent here is known spent until its window ends."""
        now = as_utc(now)
        self.quotas.check(kind, identifier, now, whole_sender=whole_sender)
        found = await registry.registered(session, kind, identifier)
        if found is None and not development(self.settings):
            raise SenderRefused(
                "unknown_referrer", "the referrer is not registered", "referrer.identifier"
            )
        limits = {
            "minute": self.settings.referrer_per_minute,
            "day": self.settings.referrer_per_day,
        }
        try:
            await registry.count_submission(session, kind, identifier, now, limits)
        except registry.RateLimited as limited:
            if remember:
                self.quotas.remember(kind, identifier, limited, now)
            limited.whole_sender = whole_sender
            raise
        return found

    async def submit(
        self,
        delivery: Delivery,
        owner: tuple[str, str] | None = None,
        registration: Registration | None = None,
    ) -> Outcome:
        """Both doors: validate, de-duplicate, keep the identity, pass a pseudonym on.

        ``owner`` is the authenticated caller (HTTP door): a refusal is filed under it,
        so that it can read it back even when the body named no valid referrer.
        ``registration`` is the referrer as the operator registered it: its reply key and
        webhook replace whatever the submission says (README, "Referrals: two doors").
        """
        if registration is not None:
            delivery.envelope = delivery.envelope.model_copy(
                update={"data": _as_registered(delivery, registration)}
            )
        data = delivery.envelope.data
        try:
            submission = ReferralSubmitted.model_validate(data)
        except ValidationError as exc:
            # Every reason at once: the schema's, and the rules' on what did validate.
            reasons = domain.reasons_from_validation_error(exc)
            reasons += domain.reasons_beyond_schema(data, self.today(), reasons)
            return await self._refuse(delivery, reasons, owner=owner, registration=registration)
        structlog.contextvars.bind_contextvars(
            _sensitive=submission.patient.personal_values(given=data.get("patient"))
        )
        result = domain.check(submission, self.today())
        if isinstance(result, domain.Refused):
            return await self._refuse(
                delivery, result.reasons, owner=owner, registration=registration
            )
        return await self._accept(delivery, result, registration)

    async def _accept(
        self,
        delivery: Delivery,
        accepted: domain.Accepted,
        registration: Registration | None = None,
    ) -> Outcome:
        submission = accepted.submission
        referrer = submission.referrer
        fingerprint = domain.fingerprint(submission)
        existing = await store.by_reference(
            delivery.session, referrer.kind.value, referrer.identifier, submission.reference
        )
        if existing is not None:
            if existing.fingerprint == fingerprint:
                log.info("resubmission of a known referral", referral_id=existing.id)
                await self._reply_ack(delivery, existing.id, submission, duplicate=True)
                return Outcome(
                    Verdict.DUPLICATE,
                    existing.id,
                    status=existing.status,
                    detail=dict(existing.detail or {}),
                )
            return await self._conflict(delivery, existing, submission, registration)

        referral_id = new_id()
        patient_ref = domain.pseudonym(self.settings.pseudonym_secret, submission)
        patient, commune = submission.patient, accepted.commune
        now = delivery.occurred_at
        await store.add_referral(
            delivery.session,
            referral_id=referral_id,
            referrer_kind=referrer.kind.value,
            referrer_id=referrer.identifier,
            reference=submission.reference,
            fingerprint=fingerprint,
            patient_ref=patient_ref,
            commune_insee=commune.insee,
            departement=commune.departement,
            source_message_id=delivery.envelope.id,
            received_at=now,
        )
        await store.add_identity(
            delivery.session,
            referral_id=referral_id,
            first_name=patient.first_name,
            last_name=patient.last_name,
            birth_date=patient.birth_date,
            sex=patient.sex.value,
            nir=patient.nir,
            phone=patient.phone,
            email=patient.email,
            address=patient.address,
        )
        # The row above already holds the status: only its history is written.
        await _history(delivery, referral_id, referral_status.Happening.RECEIVED, {})
        # The registered values; self-described only in development.
        referrer_ref = registration.ref() if registration is not None else referrer.ref()
        await delivery.emit(
            ReferralReceived(
                referral_id=referral_id,
                patient_ref=patient_ref,
                age=accepted.age,
                sex=patient.sex,
                commune_insee=commune.insee,
                departement=commune.departement,
                clinical=submission.clinical,
                referrer=referrer_ref,
                purpose=submission.purpose,
                submitted_at=now,
            ),
            correlation_id=referral_id,
        )
        await delivery.emit(
            PatientContact(
                referral_id=referral_id,
                patient_ref=patient_ref,
                first_name=patient.first_name,
                last_name=patient.last_name,
                phone=patient.phone,
                email=patient.email,
                sms_consent=patient.sms_consent,
                # The notifier learns the referrer from here, not from referral.received.
                referrer=referrer_ref,
            ),
            correlation_id=referral_id,
        )
        await self._reply_ack(delivery, referral_id, submission, duplicate=False)
        log.info("referral received", referral_id=referral_id, departement=commune.departement)
        return Outcome(Verdict.ACCEPTED, referral_id)

    async def _conflict(
        self,
        delivery: Delivery,
        existing: Any,
        submission: ReferralSubmitted,
        registration: Registration | None,
    ) -> Outcome:
        """The reference names a referral of other content: the sender is answered (409
        over HTTP, submission.error on the broker), and nobody else is told. The referral
        it names has not changed, so no referral.rejected: its referrer's webhook would
        read "rejected" about a referral that is in fact, say, booked."""
        current = existing.status or referral_status.State.RECEIVED.value
        detail = dict(existing.detail or {})
        conflict = Reason(
            code="reference_conflict",
            field="reference",
            message=f"La référence « {submission.reference} » a déjà servi pour la demande "
            f"{existing.id}, avec un autre contenu : cet envoi n'est pas pris en compte et "
            "la demande existante reste telle quelle.",
        )
        outcome = await self._refuse(
            delivery,
            (conflict,),
            referral_id=existing.id,
            registration=registration,
            downstream=False,
        )
        return Outcome(
            Verdict.CONFLICT, existing.id, outcome.reasons, status=current, detail=detail
        )

    async def _reply_ack(
        self,
        delivery: Delivery,
        referral_id: str,
        submission: ReferralSubmitted,
        *,
        duplicate: bool,
    ) -> None:
        if submission.referrer.reply_to is None:
            return
        await delivery.emit(
            SubmissionAcknowledged(
                reply_to=submission.referrer.reply_to,
                source_message_id=delivery.envelope.id,
                referral_id=referral_id,
                reference=submission.reference,
                duplicate=duplicate,
            ),
            correlation_id=referral_id,
        )

    async def _refuse(
        self,
        delivery: Delivery,
        reasons: tuple[Reason, ...],
        referral_id: str | None = None,
        owner: tuple[str, str] | None = None,
        registration: Registration | None = None,
        *,
        downstream: bool = True,
    ) -> Outcome:
        """Filed (readable by the submission's id) and answered on the sender's key;
        ``downstream``: referral.rejected too, whence the referrer's webhook."""
        data = delivery.envelope.data
        reply_to, referrer, reference = _reply_to(data), _referrer_ref(data), _reference(data)
        if registration is not None:
            referrer = registration.ref()  # told by its registered webhook, not the payload's
        filed_under: tuple[str | None, str | None] = owner or (
            (referrer.kind.value, referrer.identifier) if referrer else (None, None)
        )
        if reply_to is None and referrer is None and reference is None:
            return Outcome(Verdict.REJECTED, referral_id, reasons, identifiable=False)
        correlation = referral_id or delivery.envelope.correlation_id
        await store.add_rejection(
            delivery.session,
            rejection_id=delivery.envelope.id,
            referrer_kind=filed_under[0],
            referrer_id=filed_under[1],
            reference=reference,
            referral_id=referral_id,
            reasons=[r.model_dump(mode="json") for r in reasons],
            rejected_at=delivery.occurred_at,
        )
        if downstream:
            await delivery.emit(
                ReferralRejected(
                    referral_id=referral_id,
                    reference=reference,
                    referrer=referrer,
                    source_message_id=delivery.envelope.id,
                    reasons=reasons,
                ),
                correlation_id=correlation,
            )
        if reply_to is not None:
            await delivery.emit(
                SubmissionError(
                    reply_to=reply_to,
                    source_message_id=delivery.envelope.id,
                    reference=reference,
                    referral_id=referral_id,
                    error_code=reasons[0].code if len(reasons) == 1 else "invalid_referral",
                    cause="; ".join(f"{r.field or '-'}: {r.message}" for r in reasons)[:2000],
                    reasons=reasons,
                ),
                correlation_id=correlation,
            )
        log.info("referral rejected", codes=[r.code for r in reasons])
        return Outcome(Verdict.REJECTED, referral_id, reasons)

    async def on_outcome(self, delivery: Delivery) -> None:
        """What became of a referral downstream: the status its referrer reads."""
        envelope = delivery.envelope
        envelope.payload()  # an invalid event is dead-lettered, not silently skipped
        data = envelope.data
        referral_id = data.get("referral_id")
        if not isinstance(referral_id, str):
            return
        entry = referral_status.entry_for_event(envelope.type, data)
        if entry is None:
            return
        await _record_status(delivery, referral_id, *entry)


def by_referrer(envelope: Envelope) -> str:
    """The quota rows a submission locks (``registry.count_submission``), as a key: the
    referrer it names. Only an order: a sender is checked by the handler, as ever (one
    that names another referrer is refused before anything is counted). A cancellation
    names none and goes first in its batch; it cannot share one with its own referral's
    submission, since it names the referral id that submission's committed
    acknowledgement gave."""
    named = _named_referrer(envelope.data)
    return "\x00".join(named) if named is not None else ""


def _speaks_for_itself(sender: Sender | None) -> bool:
    """Whether every submission of this sender is in one name, its own (``_in_own_name``):
    a referrer, a SAMU. Not an operator, nor the national Centre 15 (its regulators')."""
    return sender is not None and not sender.trusted and bool(sender.actor)


def _named_referrer(data: dict[str, Any]) -> tuple[str, str] | None:
    """The (kind, identifier) a submission names, if both are plausible: otherwise the
    validation refuses it, with every reason."""
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        return None
    kind, identifier = referrer.get("kind"), referrer.get("identifier")
    kinds = {k.value for k in ReferrerKind}
    if kind in kinds and isinstance(identifier, str) and 0 < len(identifier) <= 64:
        return str(kind), identifier
    return None


def _as_registered(delivery: Delivery, registration: Registration) -> dict[str, Any]:
    """The submission with the registered webhook and reply key in place of its own (a
    submission that names others is not refused: they are ignored). On the broker an
    outside sender is still answered on its own key (``_in_own_name``): the door answers
    who sent the message; outcomes go where the registration says."""
    data = delivery.envelope.data
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        return data
    sender = delivery.sender
    answer_to = (
        referrer.get("reply_to")
        if sender is not None and not sender.trusted
        else registration.reply_to
    )
    return {
        **data,
        "referrer": {**referrer, "reply_to": answer_to, "webhook_url": registration.webhook_url},
    }


def _in_own_name(sender: Sender, data: dict[str, Any]) -> dict[str, Any]:
    """A submission from an outside actor speaks for that actor alone: its referrer must
    be the sender, and it is answered on the sender's own key whatever it names.
    Anything else is refused (``sender_inconsistent``), never applied."""
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        # Validation refuses it (the referrer is missing), answered on the sender's key.
        return {**data, "referrer": {"reply_to": sender.reply_key}}
    kind, identifier = referrer.get("kind"), referrer.get("identifier")
    if sender.kind is ActorKind.CENTRE_15:
        if kind != ActorKind.CENTRE_15.value:
            raise SenderRefused(
                "sender_inconsistent", "Centre 15 refers as Centre 15", "referrer.kind"
            )
        # A SAMU refers in its own name (the national Centre 15 names its regulators).
        if sender.actor and identifier != sender.actor:
            raise SenderRefused(
                "sender_inconsistent", "a SAMU refers in its own name", "referrer.identifier"
            )
    elif sender.kind is ActorKind.REFERRER:
        if kind == ActorKind.CENTRE_15.value:
            raise SenderRefused(
                "sender_inconsistent", "a referrer does not refer as Centre 15", "referrer.kind"
            )
        if identifier != sender.actor:
            raise SenderRefused(
                "sender_inconsistent",
                "the referrer named is not the sender",
                "referrer.identifier",
            )
    else:
        raise SenderRefused("sender_not_allowed", "only referrers and Centre 15 refer", "type")
    named = referrer.get("reply_to")
    if named is not None and named != sender.reply_key:
        raise SenderRefused(
            "sender_inconsistent", "a referrer is answered on its own key only", "referrer.reply_to"
        )
    return {**data, "referrer": {**referrer, "reply_to": sender.reply_key}}


def _check_owner(sender: Sender, referrer_kind: str | None, referrer_id: str | None) -> None:
    """A referrer acts on its own referrals only; a SAMU on its own, the national
    Centre 15 on Centre 15's."""
    if sender.kind is ActorKind.CENTRE_15:
        own = referrer_kind == ActorKind.CENTRE_15.value and (
            not sender.actor or referrer_id == sender.actor
        )
    elif sender.kind is ActorKind.REFERRER:
        own = referrer_kind != ActorKind.CENTRE_15.value and referrer_id == sender.actor
    else:
        own = False
    if not own:
        raise SenderRefused(
            "sender_inconsistent", "the referral is not the sender's", "referral_id"
        )


async def _record_status(
    delivery: Delivery,
    referral_id: str,
    happening: referral_status.Happening,
    detail: dict[str, Any],
) -> None:
    """Add the event to the referral's history, and set the status its whole history
    comes to (services/intake/status.py): events of one referral arrive out of order
    between queues, and a replay by their own times does not depend on it (for what
    came through a door, its time of receipt: shared.consumer)."""
    session = delivery.session
    # The row's lock (PostgreSQL; SQLite has one writer anyway) puts the events of one
    # referral one after the other, from both queues and every replica: each replay
    # then reads the entries committed before it.
    if not await store.lock(session, referral_id):
        # Not a referral of ours (or not yet committed): retried, then dead-lettered.
        raise LookupError(f"status event for unknown referral {referral_id}")
    await _history(delivery, referral_id, happening, detail)
    current = await replayed(session, referral_id)
    if current is None:
        return
    await store.set_status(session, referral_id, current.status, current.detail, current.at)


async def replayed(session: Any, referral_id: str) -> referral_status.Current | None:
    """Where the referral's whole history, as committed, brings it: its state (which
    tells a withdrawal, final, from an appointment's cancellation, both "cancelled")."""
    rows = await store.history(session, referral_id)
    entries = (
        referral_status.Entry.from_row(r.status, r.detail or {}, as_utc(r.at), r.event_id)
        for r in rows
    )
    return referral_status.replay(e for e in entries if e is not None)


async def _history(
    delivery: Delivery,
    referral_id: str,
    happening: referral_status.Happening,
    detail: dict[str, Any],
) -> None:
    await store.add_history(
        delivery.session,
        referral_id=referral_id,
        event_id=delivery.envelope.id,
        status=happening.value,
        detail=detail,
        at=delivery.occurred_at,
    )
