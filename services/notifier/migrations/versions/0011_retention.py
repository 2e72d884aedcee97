"""Retention (issue 34): the record of each purge.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

from shared.migration_ops import create_purge_table

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_purge_table()


def downgrade() -> None:
    op.drop_table("purges")
