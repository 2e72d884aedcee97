"""The notifier's tables: every notification it made, and the patients' contacts
(the only copy of contact details outside intake)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text

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
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("patient_ref", String(40), nullable=False),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    Column("sms_consent", Boolean, nullable=False),
)
