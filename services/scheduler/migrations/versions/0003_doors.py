"""The door's record of refused messages; outbox rows set aside.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from shared.migration_ops import add_door_tables, drop_door_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_door_tables()


def downgrade() -> None:
    drop_door_tables()
