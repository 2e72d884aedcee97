"""The decision that stands for each referral, as the centre receiving the patient
reads it (its reasons, protocol version and time).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Referrals regulated before are not known here: their centres see no reasons.
    op.create_table(
        "regulations",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("protocol_version", sa.Text, nullable=False),
        sa.Column("decided_by", sa.Text, nullable=False),
        sa.Column("regulated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("regulations")
