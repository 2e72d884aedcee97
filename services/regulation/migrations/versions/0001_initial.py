"""Cases, decisions (audit trail), protocols, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migration_ops import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("patient_ref", sa.String(40), nullable=False),
        sa.Column("age", sa.Integer, nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("referrer_kind", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("clinical", sa.JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_decision_id", sa.String(36), nullable=True),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(16), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("test_eligible", sa.Boolean, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("protocol_version", sa.String(32), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("supersedes", sa.String(36), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
    )
    op.create_index("ix_decisions_referral_id", "decisions", ["referral_id"])
    op.create_table(
        "protocols",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    op.drop_table("protocols")
    op.drop_index("ix_decisions_referral_id", "decisions")
    op.drop_table("decisions")
    op.drop_table("cases")
