"""Centres, capacity changes, appointments, bookings, waiting list, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migration_ops import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "centres",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("address", sa.Text, nullable=True),
        sa.Column("opening_hours", sa.JSON, nullable=False),
        sa.Column("boxes", sa.Integer, nullable=False),
        sa.Column("consultation_minutes", sa.Integer, nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_centres_departement", "centres", ["departement"])
    op.create_table(
        "capacity_changes",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("boxes", sa.Integer, nullable=True),
        sa.Column("opening_hours", sa.JSON, nullable=True),
        sa.Column("consultation_minutes", sa.Integer, nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_capacity_changes_centre_id", "capacity_changes", ["centre_id"])
    op.create_table(
        "appointments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("patient_ref", sa.String(40), nullable=False),
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("box", sa.Integer, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("distance_km", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_appointments_referral_id", "appointments", ["referral_id"])
    op.create_table(
        "bookings",
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("box", sa.Integer, nullable=False),
        sa.Column("appointment_id", sa.String(36), nullable=False, unique=True),
        sa.PrimaryKeyConstraint("centre_id", "start", "box", name="pk_bookings_slot"),
    )
    op.create_table(
        "waitlist",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("patient_ref", sa.String(40), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("priority_rank", sa.Integer, nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_waitlist_order", "waitlist", ["departement", "priority_rank", "deadline"])
    op.create_table(
        "origins",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
    )
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    for index, table in [
        ("ix_waitlist_order", "waitlist"),
        ("ix_appointments_referral_id", "appointments"),
        ("ix_capacity_changes_centre_id", "capacity_changes"),
        ("ix_centres_departement", "centres"),
    ]:
        op.drop_index(index, table)
    for table in ["origins", "waitlist", "bookings", "appointments", "capacity_changes", "centres"]:
        op.drop_table(table)
