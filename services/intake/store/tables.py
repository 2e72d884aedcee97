"""Intake's tables. Identity lives here and nowhere else."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

referrals = Table(
    "referrals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("referrer_kind", String(32), nullable=False),
    Column("referrer_id", String(64), nullable=False),
    Column("reference", String(100), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("patient_ref", String(40), nullable=False),
    Column("commune_insee", String(5), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("source_message_id", String(64), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # When its clinical details were purged past their retention (issue 34).
    Column("clinical_purged_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("referrer_kind", "referrer_id", "reference", name="uq_referrals_reference"),
)

# The patient's identity, each field sealed (AES-256-GCM, shared/sealing.py) under the
# data key ``key_id`` names; ``nir_hash`` is the NIR's keyed hash, for lookups. The
# plain columns (first_name ... address) are the release before's: empty once `aiguillage
# keys seal` has sealed them, dropped a release later (expand, then contract).
SEALED_FIELDS = ("first_name", "last_name", "birth_date", "nir", "phone", "email", "address")
identities = Table(
    "identities",
    metadata,
    Column("referral_id", String(36), ForeignKey("referrals.id"), primary_key=True),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("birth_date", Date, nullable=True),
    Column("sex", String(16), nullable=False),
    Column("nir", String(21), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    Column("address", Text, nullable=True),
    *(Column(f"sealed_{name}", Text, nullable=True) for name in SEALED_FIELDS),
    Column("key_id", String(16), nullable=True),
    Column("nir_hash", String(64), nullable=True),
)
Index("ix_identities_key", identities.c.key_id)
Index("ix_identities_nir_hash", identities.c.nir_hash)

# The data keys, each wrapped under the KEK its ``kek_id`` names (never in clear here).
identity_keys = Table(
    "identity_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("wrapped", Text, nullable=False),
    Column("kek_id", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
# Which data key seals new values: one row (slot 1). A sealing transaction reads it
# FOR SHARE, a rotation updates it: a value is never sealed under a key a committed
# rotation has left behind.
identity_key_current = Table(
    "identity_key_current",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("key_id", String(16), nullable=False),
)

# Every read of a patient's identity (issue 34): who, when, which referral, from which
# route and page, and why when the page asked. Names no identity itself.
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
Index("ix_identity_reads_referral", identity_reads.c.referral_id, identity_reads.c.at)
Index("ix_identity_reads_patient", identity_reads.c.patient_ref, identity_reads.c.at)
Index("ix_identity_reads_account", identity_reads.c.account, identity_reads.c.at)

# Every status a referral went through, for its referrer.
status_history = Table(
    "status_history",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("referral_id", String(36), nullable=False),
    Column("status", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_status_history_referral", status_history.c.referral_id, status_history.c.at)

# Submissions refused, by the id of the message (or HTTP request) that carried them.
rejections = Table(
    "rejections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("referrer_kind", String(32), nullable=True),
    Column("referrer_id", String(64), nullable=True),
    Column("reference", String(100), nullable=True),
    Column("referral_id", String(36), nullable=True),
    Column("reasons", JSON, nullable=False),
    Column("rejected_at", DateTime(timezone=True), nullable=False),
)

# The referrers the operator registered (`aiguillage referrer add`): where and how each
# is answered, and how its patients may be told. What a submission says of these is
# not believed (README, "Referrals: two doors").
registered_referrers = Table(
    "registered_referrers",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("identifier", String(64), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("reply_to", String(64), nullable=True),
    Column("webhook_url", String(500), nullable=True),
    Column("patient_channels", JSON, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

# Submissions per referrer in the current window of each length (minute, day): one row
# per (referrer, window), reset when a new window starts, so replicas and restarts
# share the count and the table never grows past two rows per referrer.
submission_counts = Table(
    "submission_counts",
    metadata,
    Column("referrer_kind", String(32), primary_key=True),
    Column("referrer_id", String(64), primary_key=True),
    Column("span", String(8), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
)

# Referrals whose patient restricted their processing (GDPR article 18, issue 34): who
# asked it when; ``referral.restricted`` tells the notifier.
restrictions = Table(
    "restrictions",
    metadata,
    Column("referral_id", String(36), ForeignKey("referrals.id"), primary_key=True),
    Column("restricted_at", DateTime(timezone=True), nullable=False),
    Column("restricted_by", String(200), nullable=False),
)
