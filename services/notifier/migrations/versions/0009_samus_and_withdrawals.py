"""An escalation told to each SAMU covering the patient (several Centre 15 notices per
event), and the cancellations the referrer was told of (one notice per withdrawal).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One notification per recipient of an event: an escalation reaches every SAMU that
    # covers the patient's département, each on its own key.
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notification", type_="unique")
        batch.create_unique_constraint(
            "uq_notification", ["cause_event_id", "recipient_kind", "recipient", "channel"]
        )
    op.create_index("ix_centre_appointments_referral", "centre_appointments", ["referral_id"])
    op.create_table(
        "cancellations",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("cause_event_id", sa.String(36), primary_key=True),
        sa.Column("withdrawal", sa.Boolean, nullable=False),
        sa.Column("told", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cancellations")
    op.drop_index("ix_centre_appointments_referral", "centre_appointments")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notification", type_="unique")
        batch.create_unique_constraint(
            "uq_notification", ["cause_event_id", "recipient_kind", "channel"]
        )
