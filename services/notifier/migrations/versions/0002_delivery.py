"""Notifications that are sent with retries, their tries, referrers, centres, and each
centre's appointments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("subject", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("target", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text, nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint(
            "uq_notification", ["cause_event_id", "recipient_kind", "channel"]
        )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_table(
        "notification_attempts",
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("notification_id", "attempt", name="uq_attempt"),
    )
    op.create_index(
        "ix_notification_attempts_notification_id", "notification_attempts", ["notification_id"]
    )
    op.create_table(
        "referrers",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("reply_to", sa.String(64), nullable=True),
        sa.Column("webhook_url", sa.Text, nullable=True),
    )
    op.create_table(
        "centre_appointments",
        sa.Column("appointment_id", sa.String(36), primary_key=True),
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("patient_ref", sa.String(40), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("box", sa.Integer, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_centre_appointments_day", "centre_appointments", ["centre_id", "start"])
    op.create_table(
        "centres",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.Text, nullable=True),
        sa.Column("commune_insee", sa.String(5), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("centres")
    op.drop_index("ix_centre_appointments_day", "centre_appointments")
    op.drop_table("centre_appointments")
    op.drop_table("referrers")
    op.drop_index("ix_notification_attempts_notification_id", "notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index("ix_notifications_due", "notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notification", type_="unique")
        for column in ["sent_at", "last_error", "next_attempt_at", "target", "subject"]:
            batch.drop_column(column)
