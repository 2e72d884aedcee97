"""The door's cases and the outcomes it sent.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hubsante_cases",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("distribution_id", sa.String(200), nullable=False),
        sa.Column("answered", sa.Boolean, nullable=False),
        sa.Column("referral_id", sa.String(36), nullable=True),
        sa.Column("decision", sa.String(20), nullable=True),
        sa.Column("priority", sa.String(10), nullable=True),
        sa.Column("regulator", sa.String(64), nullable=False),
        sa.Column("released", sa.Boolean, nullable=False),
        sa.Column("appointment_id", sa.String(160), nullable=True),
        sa.Column("appointment_seq", sa.Integer, nullable=False),
        sa.Column("appointment_open", sa.Boolean, nullable=False),
        sa.Column("appointment_start", sa.String(40), nullable=True),
        sa.Column("appointment_end", sa.String(40), nullable=True),
        sa.Column("centre_id", sa.String(64), nullable=True),
        sa.Column("centre_name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_hubsante_cases_referral_id", "hubsante_cases", ["referral_id"])
    op.create_table("hubsante_applied", sa.Column("event_id", sa.String(36), primary_key=True))


def downgrade() -> None:
    op.drop_table("hubsante_applied")
    op.drop_index("ix_hubsante_cases_referral_id", "hubsante_cases")
    op.drop_table("hubsante_cases")
