"""Indexes for a database that holds a wave's history (issue 32, bench/history.py): the
outbox's unpublished and set-aside rows each in a partial index, the inbox by the time
it processed each message (the purge).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from shared.migration_ops import add_messaging_indexes, drop_messaging_indexes

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_messaging_indexes()


def downgrade() -> None:
    drop_messaging_indexes()
