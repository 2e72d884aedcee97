"""When the outcome of each centre appointment was recorded (its correction's window).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Outcomes recorded before it have no time: too old to correct.
    with op.batch_alter_table("centre_appointments") as batch:
        batch.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("centre_appointments") as batch:
        batch.drop_column("outcome_at")
