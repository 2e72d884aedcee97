"""Every move of an appointment: who moved it and why (a patient's moves are counted).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The moves made before it are not known: each patient starts with three.
    op.create_table(
        "appointment_moves",
        sa.Column("appointment_id", sa.String(36), primary_key=True),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("replaced_by", sa.String(36), nullable=False),
        sa.Column("moved_by", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_appointment_moves_referral_id", "appointment_moves", ["referral_id"])
    op.create_index("ix_appointment_moves_replaced_by", "appointment_moves", ["replaced_by"])


def downgrade() -> None:
    op.drop_table("appointment_moves")
