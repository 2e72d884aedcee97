"""Retention (issue 34): the record of each purge.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

from shared.migration_ops import create_purge_table

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_purge_table()


def downgrade() -> None:
    op.drop_table("purges")
