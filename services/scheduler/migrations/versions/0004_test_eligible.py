"""Test eligibility kept with each appointment and each waiting patient.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("appointments", "waitlist")


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a table in place, so Alembic copies it; on
    # PostgreSQL it is a plain ALTER TABLE. Rows booked before this revision were
    # never told the verdict: false, as the events from before it parse.
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("test_eligible", sa.Boolean, nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("test_eligible")
