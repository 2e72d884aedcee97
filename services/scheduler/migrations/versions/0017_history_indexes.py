"""Indexes for a database that holds a wave's history (issue 32, bench/history.py): the
outbox's unpublished and set-aside rows each in a partial index, the inbox by the time
it processed each message (the purge). The scheduler's appointments by centre and time
of booking (the policy's recent demand of its candidate centres read every appointment at
every booking), its appointments by start (the ARS's figures of a day read them all) and
its bookings by start (/metrics's free places read every booking).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

from shared.migration_ops import add_messaging_indexes, drop_messaging_indexes

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_messaging_indexes()
    op.create_index("ix_appointments_centre_created", "appointments", ["centre_id", "created_at"])
    op.create_index("ix_bookings_start", "bookings", ["start"])
    op.create_index("ix_appointments_start", "appointments", ["start"])


def downgrade() -> None:
    op.drop_index("ix_appointments_start", "appointments")
    op.drop_index("ix_bookings_start", "bookings")
    op.drop_index("ix_appointments_centre_created", "appointments")
    drop_messaging_indexes()
