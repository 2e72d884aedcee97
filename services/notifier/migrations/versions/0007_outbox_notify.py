"""The relays of every replica are told at commit that the outbox has new rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from shared.migration_ops import add_outbox_notify, drop_outbox_notify

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_notify()


def downgrade() -> None:
    drop_outbox_notify()
