"""The notifier's tables: every notification and each try, the patients' contacts (the
only copy of contact details outside intake), what it needs to know of each referral
and centre, and each centre's appointments."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cause_event_id", String(36), nullable=False),
    Column("referral_id", String(36), nullable=True, index=True),
    Column("recipient_kind", String(16), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("template", String(64), nullable=False),
    Column("subject", String(200), nullable=False, server_default=""),
    Column("body", Text, nullable=False),
    Column("target", JSON, nullable=False, server_default="{}"),
    # pending -> sending -> sent | failed (pending again after a temporary failure);
    # withheld: the patient restricted the referral's processing before it was sent.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # One per recipient of an event: an escalation reaches each SAMU covering the patient.
    UniqueConstraint(
        "cause_event_id", "recipient_kind", "recipient", "channel", name="uq_notification"
    ),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)

attempts = Table(
    "notification_attempts",
    metadata,
    Column("notification_id", String(36), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=True),
    UniqueConstraint("notification_id", "attempt", name="uq_attempt"),
)

# The contact's names, phone and e-mail are sealed at rest (issue 34, shared/sealing.py):
# one ``sealed_<field>`` column each under the data key ``key_id``. The plain columns
# are those of the release before (migration 0014, expand): written no more, emptied by
# ``aiguillage keys seal --service notifier``, dropped by the next release.
SEALED_FIELDS = ("first_name", "last_name", "phone", "email")

contacts = Table(
    "contacts",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("patient_ref", String(40), nullable=False),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    Column("sms_consent", Boolean, nullable=False),
    *(Column(f"sealed_{name}", Text, nullable=True) for name in SEALED_FIELDS),
    Column("key_id", String(16), nullable=True, index=True),
)

# The data keys that seal the contacts, wrapped by the KEK (never in clear here), and
# the one that seals now (one row, read FOR SHARE by a sealing transaction).
contact_keys = Table(
    "contact_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("wrapped", Text, nullable=False),
    Column("kek_id", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

contact_key_current = Table(
    "contact_key_current",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("key_id", String(16), nullable=False),
)

# Who read a patient's name from the notifier (a centre's day list), when, by which
# route and page (issue 34): intake's ``identity_reads``, for the identities the
# notifier serves. It names no identity itself.
identity_reads = Table(
    "identity_reads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("patient_ref", String(40), nullable=True),
    Column("reader_role", String(16), nullable=False),
    Column("reader", String(200), nullable=False),
    Column("account", String(320), nullable=True),
    Column("route", String(100), nullable=False),
    Column("page", String(100), nullable=True),
    Column("reason", Text, nullable=True),
)
Index("ix_identity_reads_at", identity_reads.c.at)
Index("ix_identity_reads_patient", identity_reads.c.patient_ref, identity_reads.c.at)
Index("ix_identity_reads_account", identity_reads.c.account, identity_reads.c.at)

referrers = Table(
    "referrers",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("identifier", String(64), nullable=False),
    Column("reply_to", String(64), nullable=True),
    Column("webhook_url", Text, nullable=True),
    # Registered channels for the referrer's patients; NULL: unrestricted (development).
    Column("patient_channels", JSON, nullable=True),
)

# Messages sent to one patient address (phone or e-mail) per day, whatever the referral:
# the key is a keyed hash of the address (HMAC, the lookup key), never the address.
contact_quota = Table(
    "contact_quota",
    metadata,
    Column("address_key", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", Integer, nullable=False),
)

centre_appointments = Table(
    "centre_appointments",
    metadata,
    Column("appointment_id", String(36), primary_key=True),
    Column("centre_id", String(64), nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("patient_ref", String(40), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("box", Integer, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # The centre prescribes a diagnostic test (regulation's verdict, via the scheduler).
    Column("test_eligible", Boolean, nullable=False, server_default=false()),
    # When the scheduler recorded the outcome ("vu", "absent"; not a correction): the
    # centre may correct it for 24 hours (shared/outcomes.py). None: none recorded.
    Column("outcome_at", DateTime(timezone=True), nullable=True),
)
Index("ix_centre_appointments_day", centre_appointments.c.centre_id, centre_appointments.c.start)
# A withdrawal reads the referral's appointments (has one been booked?).
Index("ix_centre_appointments_referral", centre_appointments.c.referral_id)

centres = Table(
    "centres",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=True),
    Column("commune_insee", String(5), nullable=False),
)

# Outcomes for a referral whose referrer the notifier has not heard of yet (its
# patient.contact, which carries the referrer, is on another queue): told when it arrives.
deferred_outcomes = Table(
    "deferred_outcomes",
    metadata,
    Column("cause_event_id", String(36), primary_key=True),
    Column("referral_id", String(36), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("deferred_at", DateTime(timezone=True), nullable=False),
)

# The cancellations of each referral the referrer was told of, by their cause: a
# withdrawal (``referral.cancelled``, its id) and the appointment cancelled with it
# (``appointment.cancelled``, caused by it) arrive on two queues in either order, and
# the referrer and the patient are told once. ``withdrawal``: the referral.cancelled
# came (a second withdrawal changes nothing); ``told``: the referrer was told of it.
cancellations = Table(
    "cancellations",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("cause_event_id", String(36), primary_key=True),
    Column("withdrawal", Boolean, nullable=False),
    Column("told", Boolean, nullable=False),
)

# What the ARS's on-call contacts of each département were told of its alerts (issue
# 30): ``open``, an alert of this cause is running and they heard of it (its end is
# told once); ``told_at``, when they were last told one began (at most one an hour per
# département). No contact here: they come from the settings.
oncall_notices = Table(
    "oncall_notices",
    metadata,
    Column("departement", String(3), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("open", Boolean, nullable=False),
    Column("told_at", DateTime(timezone=True), nullable=True),
)

# Referrals whose patient restricted their processing (GDPR article 18, issue 34): the
# patient and their referrer are told nothing more of them.
restrictions = Table(
    "restrictions",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("patient_ref", String(40), nullable=False),
    Column("restricted_at", DateTime(timezone=True), nullable=False),
)
