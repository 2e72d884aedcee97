"""Intake's tables. Identity lives here and nowhere else."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
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
    Column("source_message_id", String(64), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("referrer_kind", "referrer_id", "reference", name="uq_referrals_reference"),
)

identities = Table(
    "identities",
    metadata,
    Column("referral_id", String(36), ForeignKey("referrals.id"), primary_key=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(16), nullable=False),
    Column("nir", String(21), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    Column("address", Text, nullable=True),
)
