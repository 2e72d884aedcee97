"""Indexes for the spatial prefilter; the last alert per département.

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
    op.create_index("ix_centres_location", "centres", ["status", "lat", "lon"])
    op.create_index("ix_waitlist_location", "waitlist", ["lat", "lon"])
    op.create_table(
        "alerts",
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("departement", "kind", name="pk_alerts"),
    )


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_index("ix_waitlist_location", "waitlist")
    op.drop_index("ix_centres_location", "centres")
