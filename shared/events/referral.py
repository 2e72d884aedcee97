"""Referral events: from submission at intake to the referral's end."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, EmailStr, Field

from shared.events.base import EventPayload
from shared.events.nir import Nir
from shared.events.phone import OptionalPhone
from shared.events.vocabulary import (
    AttachedDecision,
    CancelledBy,
    Clinical,
    Decision,
    Frozen,
    InseeCode,
    PatientRef,
    Priority,
    Purpose,
    Reason,
    RecordId,
    ReferrerKind,
    ReferrerRef,
    RoutingWord,
    Sex,
    WithdrawalReason,
)

# RFC 5321's limit (email-validator's too), within the 320 characters of the columns.
Email = Annotated[EmailStr, Field(max_length=254)]


class PatientIdentity(Frozen):
    """Who the patient is and how to reach them. Stays in intake; never travels further."""

    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    birth_date: date
    sex: Sex = Sex.UNKNOWN
    nir: Nir | None = Field(
        None,
        description="Numéro d'inscription au répertoire: 13 characters and a 2-digit "
        "control key, spaces allowed (kept without).",
    )
    phone: OptionalPhone = Field(
        None,
        description="A valid number: French (06 12 34 56 78), overseas (0692 12 34 56) or "
        "international (+32 470 12 34 56); kept in E.164 (+33612345678).",
    )
    email: Email | None = None
    sms_consent: bool = False
    commune_insee: InseeCode | None = None
    postcode: str | None = Field(None, max_length=5, pattern=r"^\d{5}$")
    commune_name: str | None = Field(None, max_length=100)
    address: str | None = Field(None, max_length=300)

    def personal_values(self, given: object = None) -> tuple[str | date, ...]:
        """What identifies the patient, for the log redactor to remove wherever it
        appears (shared.logging): a name or an address has no pattern to match.
        ``given`` is the identity as submitted, whose NIR, phone and e-mail may read
        otherwise than once checked (spaces, case)."""
        as_given = given if isinstance(given, dict) else {}
        values = (
            self.first_name,
            self.last_name,
            self.birth_date,
            self.nir,
            self.phone,
            self.email,
            self.address,
            *(as_given.get(key) for key in ("nir", "phone", "email")),
        )
        return tuple(v for v in values if isinstance(v, str | date) and v)


class Referrer(Frozen):
    kind: ReferrerKind
    identifier: str = Field(min_length=1, max_length=64, description="RPPS, FINESS...")
    name: str | None = Field(None, max_length=200)
    reply_to: RoutingWord | None = None
    webhook_url: str | None = Field(None, max_length=500)

    def ref(self) -> ReferrerRef:
        return ReferrerRef(
            kind=self.kind,
            identifier=self.identifier,
            reply_to=self.reply_to,
            webhook_url=self.webhook_url,
        )


class ReferralSubmitted(EventPayload):
    """A referral from outside (Centre 15, GP, SOS Médecins, emergency department).

    The only event that carries the patient's identity; only intake consumes it.
    """

    event_type: ClassVar[str] = "referral.submitted"
    # A validation error's text (a log line, a dead letter) names fields, never values.
    model_config = ConfigDict(hide_input_in_errors=True)

    referrer: Referrer
    reference: str = Field(
        min_length=1, max_length=100, description="The referrer's own reference: idempotency key."
    )
    patient: PatientIdentity
    clinical: Clinical
    purpose: Purpose = Purpose.CONSULTATION
    # Centre 15 only: its regulator already decided (issue 36, the Hub Santé door).
    regulator_decision: AttachedDecision | None = None


class ReferralReceived(EventPayload):
    """A referral accepted by intake, with a pseudonymous patient reference only."""

    event_type: ClassVar[str] = "referral.received"

    referral_id: RecordId
    patient_ref: PatientRef
    age: int = Field(ge=0, le=130)
    sex: Sex
    commune_insee: str
    departement: str
    clinical: Clinical
    referrer: ReferrerRef
    purpose: Purpose
    submitted_at: datetime
    # Centre 15's regulator's decision, passed on as submitted: regulation applies it.
    regulator_decision: AttachedDecision | None = None


class ReferralRejected(EventPayload):
    """Intake refused a submission; the reasons say why, each with a stable code."""

    event_type: ClassVar[str] = "referral.rejected"

    referral_id: RecordId | None = None
    reference: str | None = None
    referrer: ReferrerRef | None = None
    source_message_id: str | None = None
    reasons: tuple[Reason, ...]


class ReferralRegulated(EventPayload):
    """The decision that stands for a referral (automatic, or a regulator's)."""

    event_type: ClassVar[str] = "referral.regulated"

    referral_id: RecordId
    patient_ref: PatientRef
    decision: Decision
    priority: Priority | None = None
    deadline: datetime | None = Field(None, description="Latest acceptable appointment start.")
    test_eligible: bool = False
    reasons: tuple[Reason, ...] = ()
    protocol_version: str
    decided_by: str = Field(description="'protocol' or the regulator's identifier.")
    decision_id: RecordId
    supersedes: RecordId | None = Field(None, description="The decision this one replaces.")
    age: int
    commune_insee: str
    departement: str

    def routing_key(self) -> str:
        # The decision in the key: the notifier binds only the decisions it tells (an
        # orientation is told with its appointment), one delivery per booked referral
        # fewer; the scheduler and intake bind them all.
        return f"{self.event_type}.{self.decision.value}"


class ReferralWaitlisted(EventPayload):
    """No slot fits before the deadline: the patient waits (FHIR status: waitlist)."""

    event_type: ClassVar[str] = "referral.waitlisted"

    referral_id: RecordId
    patient_ref: PatientRef
    priority: Priority
    departement: str
    reason: str
    waiting_in_departement: int = Field(ge=0)


class ReferralCancelled(EventPayload):
    """A referral withdrawn, by whom and why."""

    event_type: ClassVar[str] = "referral.cancelled"

    referral_id: RecordId
    cancelled_by: CancelledBy
    reason: str = Field(max_length=500)
    reason_code: WithdrawalReason | None = Field(
        None,
        description="The reason as a stable code, when the referrer chose it from the list "
        "(intake's HTTP door); ``reason`` then holds its French label.",
    )


class ReferralUpdated(EventPayload):
    """A referrer corrects its own referral's patient (issue 36: Centre 15 relays the
    LRM's RS-EDA-MAJ): what it names replaces what intake keeps; what it omits stays.

    Sent on the ingress: the sender is the broker user, never a field of this event;
    intake applies it to the sender's own referrals only. Identity: intake's alone
    (its ingress queue); what goes on the bus is ``patient.relocated``, pseudonymous."""

    event_type: ClassVar[str] = "referral.updated"

    referral_id: RecordId
    first_name: str | None = Field(None, min_length=1, max_length=100)
    last_name: str | None = Field(None, min_length=1, max_length=100)
    birth_date: date | None = None
    commune_insee: InseeCode | None = Field(
        None, description="Where the patient is now: a new commune may move the appointment."
    )


class PatientRelocated(EventPayload):
    """The patient of a referral is now in another commune (intake, from a
    ``referral.updated``): the scheduler books them nearer if it can. The commune only,
    no identity; the referral keeps its pseudonym."""

    event_type: ClassVar[str] = "patient.relocated"

    referral_id: RecordId
    patient_ref: PatientRef
    commune_insee: InseeCode
    departement: str = Field(max_length=3)
    previous_commune_insee: InseeCode | None = None


class ReferralRestricted(EventPayload):
    """The patient asked that the processing of their referral be restricted (GDPR
    article 18; `aiguillage privacy restrict`, issue 34): from now on they and their
    referrer are told nothing of it; what the law requires goes on (the centre and
    Centre 15 keep what care needs), and it is purged at the end of its retention.
    Pseudonymous."""

    event_type: ClassVar[str] = "referral.restricted"

    referral_id: RecordId
    patient_ref: PatientRef
    restricted_at: datetime


class PatientContact(EventPayload):
    """The patient's contact details, for the notifier alone.

    Routed on ``contact.notifier``, a key only the notifier's queue binds (and, with
    broker permissions, only the notifier may read), so identity never reaches
    regulation or the scheduler.
    """

    event_type: ClassVar[str] = "patient.contact"

    # The notifier keeps them (its contacts table): the bounds of PatientIdentity.
    referral_id: RecordId
    patient_ref: PatientRef
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    # E.164 as intake checked it (shared/events/phone.py); not checked again here, so
    # that a contact staged before the check still parses.
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    sms_consent: bool = False
    # Who referred the patient (the registered values, as in referral.received): the
    # notifier learns here whom to tell, so that it need not consume referral.received
    # as well (one delivery per referral fewer). Optional so that a contact staged
    # before it was added still parses; the notifier then waits for no referrer.
    referrer: ReferrerRef | None = None
    # A correction of the names only (Centre 15's RS-EDA-MAJ, intake's update): the
    # notifier renames the contact it keeps and leaves its channels as they were.
    # Optional, so that readers and contacts of before it still parse.
    corrected: bool = False

    def routing_key(self) -> str:
        return "contact.notifier"


class ReferralOutcome(EventPayload):
    """What became of a referral, told to its referrer on its own key (or webhook)."""

    event_type: ClassVar[str] = "referral.outcome"

    reply_to: RoutingWord
    referral_id: RecordId
    status: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)

    def routing_key(self) -> str:
        return f"reply.{self.reply_to}.{self.event_type}"
