"""Every time a patient was put on the waiting list, kept after the wait ends: the
ARS's history of a day (issue 30).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Those waiting now are the history there is; those served before are not known.
    op.create_table(
        "waitlist_entries",
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("referral_id", "queued_at", name="pk_waitlist_entries"),
    )
    op.create_index("ix_waitlist_entries_day", "waitlist_entries", ["queued_at", "departement"])
    op.execute(
        "INSERT INTO waitlist_entries (referral_id, departement, queued_at) "
        "SELECT referral_id, departement, queued_at FROM waitlist"
    )


def downgrade() -> None:
    op.drop_table("waitlist_entries")
