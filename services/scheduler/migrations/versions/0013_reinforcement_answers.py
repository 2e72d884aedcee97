"""Where each request for reinforcement stands: the ARS's answer (acknowledged, granted
with boxes, staff and hours, or declined with a reason) and when it was raised again
for want of one (issue 30). Expand only: columns added, none changed or dropped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reinforcements") as batch:
        # The requests kept before stand as they were: requested, unanswered.
        batch.add_column(
            sa.Column("state", sa.String(16), nullable=False, server_default="requested")
        )
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("answered_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("granted_boxes", sa.Integer))
        batch.add_column(sa.Column("granted_staff", sa.Integer))
        batch.add_column(sa.Column("granted_hours", sa.Integer))
        batch.add_column(sa.Column("answer", sa.String(500)))
        batch.add_column(sa.Column("raised_again_at", sa.DateTime(timezone=True)))
    op.create_index("ix_reinforcements_unanswered", "reinforcements", ["state", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_reinforcements_unanswered", "reinforcements")
    with op.batch_alter_table("reinforcements") as batch:
        for column in (
            "raised_again_at",
            "answer",
            "granted_hours",
            "granted_staff",
            "granted_boxes",
            "answered_at",
            "acknowledged_at",
            "state",
        ):
            batch.drop_column(column)
