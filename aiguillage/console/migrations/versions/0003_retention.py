"""Retention of the console's own data (issue 34): since when an account is disabled
(its deletion counts from it), and the record of each purge (shared.retention).

Expand only. An account disabled before this release counts from its last change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migration_ops import create_purge_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_accounts") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    accounts = sa.table(
        "console_accounts",
        sa.column("disabled", sa.Boolean),
        sa.column("disabled_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        accounts.update()
        .where(accounts.c.disabled.is_(True))
        .values(disabled_at=accounts.c.updated_at)
    )
    create_purge_table()


def downgrade() -> None:
    op.drop_table("purges")
    with op.batch_alter_table("console_accounts") as batch:
        batch.drop_column("disabled_at")
