"""Regulation's tables: the referrals it regulates and the audit trail of every decision."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

cases = Table(
    "cases",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("patient_ref", String(40), nullable=False),
    Column("age", Integer, nullable=False),
    Column("commune_insee", String(5), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("referrer_kind", String(32), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("clinical", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("current_decision_id", String(36), nullable=True),
    # When its clinical details were purged past their retention (issue 34).
    Column("clinical_purged_at", DateTime(timezone=True), nullable=True),
)

# Append-only: a new decision supersedes the previous one, nothing is overwritten.
decisions = Table(
    "decisions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("referral_id", String(36), nullable=False, index=True),
    Column("decision", String(32), nullable=False),
    Column("priority", String(16), nullable=True),
    Column("deadline", DateTime(timezone=True), nullable=True),
    Column("test_eligible", Boolean, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("protocol_version", String(32), nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("supersedes", String(36), nullable=True),
    Column("comment", Text, nullable=True),
)

# A version identifies one document: the same version with other content is refused.
protocols = Table(
    "protocols",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)

# Which version applies is the latest activation, read in each decision's transaction,
# so that every replica decides with the same version and a restart keeps it. A
# sequence, not a timestamp, orders them: replicas' clocks need not agree.
protocol_activations = Table(
    "protocol_activations",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("version", String(32), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("source", String(100), nullable=False),  # an envelope's source
    Column("event_id", String(36), nullable=True),
)
