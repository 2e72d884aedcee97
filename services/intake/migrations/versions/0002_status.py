"""Referral status for referrers: current status, history, rejected submissions.

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
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("detail", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE referrals SET updated_at = received_at")
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("updated_at", nullable=False)
    op.create_table(
        "status_history",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_status_history_referral", "status_history", ["referral_id", "at"])
    op.create_table(
        "rejections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("referrer_kind", sa.String(32), nullable=True),
        sa.Column("referrer_id", sa.String(64), nullable=True),
        sa.Column("reference", sa.String(100), nullable=True),
        sa.Column("referral_id", sa.String(36), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rejections")
    op.drop_index("ix_status_history_referral", "status_history")
    op.drop_table("status_history")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("detail")
