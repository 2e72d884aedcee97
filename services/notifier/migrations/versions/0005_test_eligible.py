"""Test eligibility in each centre's appointments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode for SQLite (a copy of the table), a plain ALTER TABLE on PostgreSQL.
    # Appointments recorded before it came from events that did not carry it: false.
    with op.batch_alter_table("centre_appointments") as batch:
        batch.add_column(
            sa.Column("test_eligible", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("centre_appointments") as batch:
        batch.drop_column("test_eligible")
