"""Intake's consumers: a submitted referral becomes a received one (or is refused)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import insert, select

from services.intake import domain
from services.intake.tables import identities, referrals
from shared.consumer import Delivery, PermanentError
from shared.events import (
    PatientContact,
    Reason,
    ReferralReceived,
    ReferralRejected,
    ReferralSubmitted,
    ReferrerRef,
    SubmissionAcknowledged,
    SubmissionError,
    new_id,
)
from shared.settings import Settings

log = structlog.get_logger(__name__)

_REPLY_TO = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _reply_to(data: dict[str, Any]) -> str | None:
    referrer = data.get("referrer")
    value = referrer.get("reply_to") if isinstance(referrer, dict) else None
    return value if isinstance(value, str) and _REPLY_TO.match(value) else None


def _referrer_ref(data: dict[str, Any]) -> ReferrerRef | None:
    try:
        return ReferrerRef.model_validate(
            {k: v for k, v in (data.get("referrer") or {}).items() if k in ReferrerRef.model_fields}
        )
    except (ValidationError, AttributeError):
        return None


def _reference(data: dict[str, Any]) -> str | None:
    value = data.get("reference")
    return value[:100] if isinstance(value, str) and value else None


class IntakeHandlers:
    def __init__(self, settings: Settings, today: Any = date.today) -> None:
        self._secret = settings.pseudonym_secret
        self._today = today

    async def on_submitted(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        data = envelope.data
        if envelope.type != ReferralSubmitted.event_type:
            raise PermanentError("unexpected_event", f"{envelope.type} is not a referral")
        try:
            submission = ReferralSubmitted.model_validate(data)
        except ValidationError as exc:
            await self._refuse(delivery, domain.reasons_from_validation_error(exc))
            return
        structlog.contextvars.bind_contextvars(
            _sensitive=(submission.patient.first_name, submission.patient.last_name)
        )
        result = domain.check(submission, self._today())
        if isinstance(result, domain.Refused):
            await self._refuse(delivery, result.reasons)
            return
        await self._accept(delivery, result)

    async def _accept(self, delivery: Delivery, accepted: domain.Accepted) -> None:
        submission = accepted.submission
        referrer = submission.referrer
        fingerprint = domain.fingerprint(submission)
        existing = (
            await delivery.session.execute(
                select(referrals.c.id, referrals.c.fingerprint).where(
                    referrals.c.referrer_kind == referrer.kind.value,
                    referrals.c.referrer_id == referrer.identifier,
                    referrals.c.reference == submission.reference,
                )
            )
        ).first()
        if existing is not None:
            if existing.fingerprint == fingerprint:
                log.info("resubmission of a known referral", referral_id=existing.id)
                await self._reply_ack(delivery, existing.id, submission, duplicate=True)
            else:
                await self._refuse(
                    delivery,
                    (
                        Reason(
                            code="reference_conflict",
                            field="reference",
                            message=f"Reference {submission.reference!r} was already used for "
                            f"referral {existing.id} with different content.",
                        ),
                    ),
                    referral_id=existing.id,
                )
            return

        referral_id = new_id()
        patient_ref = domain.pseudonym(self._secret, submission)
        patient, commune = submission.patient, accepted.commune
        now = delivery.envelope.time
        await delivery.session.execute(
            insert(referrals).values(
                id=referral_id,
                referrer_kind=referrer.kind.value,
                referrer_id=referrer.identifier,
                reference=submission.reference,
                fingerprint=fingerprint,
                patient_ref=patient_ref,
                commune_insee=commune.insee,
                departement=commune.departement,
                status="received",
                source_message_id=delivery.envelope.id,
                received_at=now,
            )
        )
        await delivery.session.execute(
            insert(identities).values(
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
        )
        await delivery.emit(
            ReferralReceived(
                referral_id=referral_id,
                patient_ref=patient_ref,
                age=accepted.age,
                sex=patient.sex,
                commune_insee=commune.insee,
                departement=commune.departement,
                clinical=submission.clinical,
                referrer=referrer.ref(),
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
            ),
            correlation_id=referral_id,
        )
        await self._reply_ack(delivery, referral_id, submission, duplicate=False)
        log.info("referral received", referral_id=referral_id, departement=commune.departement)

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
    ) -> None:
        data = delivery.envelope.data
        reply_to, referrer, reference = _reply_to(data), _referrer_ref(data), _reference(data)
        if reply_to is None and referrer is None and reference is None:
            # Nobody to answer: the dead-letter queue keeps it, with the reasons.
            raise PermanentError(
                "unidentifiable_submission", "; ".join(f"{r.field}: {r.message}" for r in reasons)
            )
        correlation = referral_id or delivery.envelope.correlation_id
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
