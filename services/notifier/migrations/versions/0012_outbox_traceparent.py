"""The outbox keeps the W3C traceparent of the span that staged each row (issue 35):
the relay puts it back in the message's headers, so that a referral is one trace.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from shared.migration_ops import add_outbox_traceparent, drop_outbox_traceparent

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_traceparent()


def downgrade() -> None:
    drop_outbox_traceparent()
