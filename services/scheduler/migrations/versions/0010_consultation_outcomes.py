"""The outcome a centre recorded of each consultation, and every correction of it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The outcomes recorded before are not known here: too old to correct.
    op.create_table(
        "consultation_outcomes",
        sa.Column("appointment_id", sa.String(36), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "outcome_corrections",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("appointment_id", sa.String(36), nullable=False),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("from_outcome", sa.String(16), nullable=False),
        sa.Column("to_outcome", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("sender_user", sa.String(128), nullable=False),
        sa.Column("via", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_outcome_corrections_appointment_id", "outcome_corrections", ["appointment_id"]
    )


def downgrade() -> None:
    op.drop_table("outcome_corrections")
    op.drop_table("consultation_outcomes")
