"""The patient channels a referral's referrer is registered for; messages per patient
address and day.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode for SQLite (a copy of the table), a plain ALTER TABLE on PostgreSQL.
    # Referrals known before: no restriction recorded (NULL), as before.
    with op.batch_alter_table("referrers") as batch:
        batch.add_column(sa.Column("patient_channels", sa.JSON, nullable=True))
    op.create_table(
        "contact_quota",
        sa.Column("address_key", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("address_key", "day"),
    )


def downgrade() -> None:
    op.drop_table("contact_quota")
    with op.batch_alter_table("referrers") as batch:
        batch.drop_column("patient_channels")
