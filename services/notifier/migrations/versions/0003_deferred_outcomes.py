"""Outcomes kept until the referrer is known.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deferred_outcomes",
        sa.Column("cause_event_id", sa.String(36), primary_key=True),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("deferred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deferred_outcomes_referral_id", "deferred_outcomes", ["referral_id"])


def downgrade() -> None:
    op.drop_index("ix_deferred_outcomes_referral_id", "deferred_outcomes")
    op.drop_table("deferred_outcomes")
