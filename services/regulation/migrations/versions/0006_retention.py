"""Retention (issue 34): the record of each purge, and when a case's clinical details were purged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migration_ops import create_purge_table

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_purge_table()
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("clinical_purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("clinical_purged_at")
    op.drop_table("purges")
