"""One booked appointment per referral, enforced by the database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOKED = sa.text("status = 'booked'")


def upgrade() -> None:
    # A database that already holds a referral booked twice (the race this closes)
    # fails here: the operator cancels the extra appointment first (docs/reliability.md).
    op.create_index(
        "uq_appointments_booked_referral",
        "appointments",
        ["referral_id"],
        unique=True,
        postgresql_where=BOOKED,
        sqlite_where=BOOKED,
    )


def downgrade() -> None:
    op.drop_index("uq_appointments_booked_referral", table_name="appointments")
