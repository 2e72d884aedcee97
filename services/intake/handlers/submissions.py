"""A submitted referral becomes a received one (or is refused), whichever door it came
through: the broker's ``referral.submitted`` or ``POST /referrals``. The referrer as
registered, its quotas, the rules (``domain.submission``, asked once), then the identity
kept here and a pseudonymous referral passed on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

import structlog

from services.intake.domain import referrers, senders
from services.intake.domain import submission as rules
from services.intake.domain.referrers import Registration
from services.intake.domain.status import Happening, State
from services.intake.handlers.history import add_entry
from services.intake.handlers.identities import Person, Vault
from services.intake.store import referrals, registry, rejections
from shared.consumer import Delivery, PermanentError
from shared.db import as_utc
from shared.events import (
    Envelope,
    PatientContact,
    Reason,
    ReferralReceived,
    ReferralRejected,
    ReferralSubmitted,
    ReferrerRef,
    SubmissionAcknowledged,
    SubmissionError,
    new_id,
    utcnow,
)
from shared.http import development
from shared.senders import Sender, SenderRefused
from shared.settings import Settings

log = structlog.get_logger(__name__)


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


@dataclass
class Submissions:
    settings: Settings
    today: Callable[[], date] = field(default=date.today)
    # Quotas this process found spent: refused until their window ends, no database.
    quotas: referrers.SpentQuotas = field(default_factory=referrers.SpentQuotas)

    @cached_property
    def vault(self) -> Vault:
        """The identity's keys (``handlers.identities``), one per process."""
        return Vault.of(self.settings)

    async def on_submitted(self, delivery: Delivery) -> None:
        """The broker door: every submission is answered on the referrer's reply key."""
        if delivery.sender is not None and not delivery.sender.trusted:
            delivery.envelope = delivery.envelope.model_copy(
                update={"data": senders.in_own_name(delivery.sender, delivery.envelope.data)}
            )
        named = senders.named_referrer(delivery.envelope.data)
        registration = None
        if named is not None:
            # Refused (request.refused: unknown_referrer, rate_limited) before anything
            # is applied; the count rolls back with the refusal.
            registration = await self.admit(
                delivery.session,
                *named,
                delivery.occurred_at,
                whole_sender=senders.speaks_for_itself(delivery.sender),
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

    def gate(self, sender: Sender | None, envelope: Envelope) -> None:
        """The broker door, before a submission joins a batch, without the database: a
        referrer whose quota this process knows spent is refused here (the refusal
        would otherwise fail the batch's transaction, which is then replayed one by one),
        and so is a submission in another's name."""
        if envelope.type != ReferralSubmitted.event_type:
            return
        data = envelope.data
        if sender is not None and not sender.trusted:
            data = senders.in_own_name(sender, data)
        named = senders.named_referrer(data)
        if named is not None:
            whole_sender = senders.speaks_for_itself(sender)
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
        except referrers.RateLimited as limited:
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
        # Every reason at once: the schema's, and the rules' on what did validate.
        verdict = rules.examine(data, self.today())
        if verdict.submission is not None:
            structlog.contextvars.bind_contextvars(
                _sensitive=verdict.submission.patient.personal_values(given=data.get("patient"))
            )
        if isinstance(verdict, rules.Refused):
            return await self._refuse(
                delivery, verdict.reasons, owner=owner, registration=registration
            )
        return await self._accept(delivery, verdict, registration)

    async def _accept(
        self,
        delivery: Delivery,
        accepted: rules.Accepted,
        registration: Registration | None = None,
    ) -> Outcome:
        submission = accepted.submission
        referrer = submission.referrer
        # Keyed: the content holds the identity, and an unkeyed hash of it could be
        # matched against guesses; a referral kept before issue 34 has the plain one.
        canonical = rules.fingerprint(submission)
        fingerprint = self.vault.keyed("fingerprint", canonical)
        existing = await referrals.by_reference(
            delivery.session, referrer.kind.value, referrer.identifier, submission.reference
        )
        if existing is not None:
            if existing.fingerprint in (fingerprint, canonical):
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
        patient_ref = rules.pseudonym(self.settings.pseudonym_secret, submission)
        await _keep(self.vault, delivery, accepted, referral_id, patient_ref, fingerprint)
        # The registered values; self-described only in development.
        referrer_ref = registration.ref() if registration is not None else referrer.ref()
        await _pass_on(delivery, accepted, referral_id, patient_ref, referrer_ref)
        await self._reply_ack(delivery, referral_id, submission, duplicate=False)
        log.info(
            "referral received", referral_id=referral_id, departement=accepted.commune.departement
        )
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
        current = existing.status or State.RECEIVED.value
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
        reply_to = senders.reply_to(data)
        referrer, reference = senders.referrer_ref(data), senders.reference(data)
        if registration is not None:
            referrer = registration.ref()  # told by its registered webhook, not the payload's
        filed_under: tuple[str | None, str | None] = owner or (
            (referrer.kind.value, referrer.identifier) if referrer else (None, None)
        )
        if reply_to is None and referrer is None and reference is None:
            return Outcome(Verdict.REJECTED, referral_id, reasons, identifiable=False)
        correlation = referral_id or delivery.envelope.correlation_id
        await rejections.add_rejection(
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


async def _keep(
    vault: Vault,
    delivery: Delivery,
    accepted: rules.Accepted,
    referral_id: str,
    patient_ref: str,
    fingerprint: str,
) -> None:
    """The referral received, and the patient's identity: kept here and nowhere else."""
    submission, commune = accepted.submission, accepted.commune
    referrer, patient = submission.referrer, submission.patient
    await referrals.add_referral(
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
        received_at=delivery.occurred_at,
    )
    person = Person(
        first_name=patient.first_name,
        last_name=patient.last_name,
        birth_date=patient.birth_date,
        sex=patient.sex.value,
        nir=patient.nir,
        phone=patient.phone,
        email=patient.email,
        address=patient.address,
    )
    # Sealed (AES-GCM under the current data key): nothing of it in clear on disk.
    sealed = await vault.sealed(delivery.session, referral_id, person)
    await referrals.add_identity(
        delivery.session, referral_id=referral_id, sex=person.sex, sealed=sealed
    )
    # The row above already holds the status: only its history is written.
    await add_entry(delivery, referral_id, Happening.RECEIVED, {})


async def _pass_on(
    delivery: Delivery,
    accepted: rules.Accepted,
    referral_id: str,
    patient_ref: str,
    referrer_ref: ReferrerRef,
) -> None:
    """On the bus: the pseudonymous referral for regulation, and the patient's contact
    for the notifier alone."""
    submission, commune = accepted.submission, accepted.commune
    patient = submission.patient
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
            submitted_at=delivery.occurred_at,
            regulator_decision=submission.regulator_decision,
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


def by_referrer(envelope: Envelope) -> str:
    """The quota rows a submission locks (``registry.count_submission``), as a key: the
    referrer it names. Only an order: a sender is checked by the handler, as ever (one
    that names another referrer is refused before anything is counted). A cancellation
    names none and goes first in its batch; it cannot share one with its own referral's
    submission, since it names the referral id that submission's committed
    acknowledgement gave."""
    named = senders.named_referrer(envelope.data)
    return "\x00".join(named) if named is not None else ""


def _as_registered(delivery: Delivery, registration: Registration) -> dict[str, Any]:
    """The submission with the registered webhook and reply key in place of its own (a
    submission that names others is not refused: they are ignored). On the broker an
    outside sender is still answered on its own key (``senders.in_own_name``): the door
    answers who sent the message; outcomes go where the registration says."""
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
