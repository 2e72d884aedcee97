"""Registered referrers, and submissions counted per referrer and window.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: nothing to batch on SQLite, and the same DDL on PostgreSQL.
    op.create_table(
        "registered_referrers",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("reply_to", sa.String(64), nullable=True),
        sa.Column("webhook_url", sa.String(500), nullable=True),
        sa.Column("patient_channels", sa.JSON, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "identifier"),
    )
    op.create_table(
        "submission_counts",
        sa.Column("referrer_kind", sa.String(32), nullable=False),
        sa.Column("referrer_id", sa.String(64), nullable=False),
        sa.Column("span", sa.String(8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("referrer_kind", "referrer_id", "span"),
    )


def downgrade() -> None:
    op.drop_table("submission_counts")
    op.drop_table("registered_referrers")
