"""Reinforcement requests kept for the ARS.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reinforcements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("centre_id", sa.String(64), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("profession", sa.String(100), nullable=False),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_reinforcements_departement", "reinforcements", ["departement", "requested_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reinforcements_departement", "reinforcements")
    op.drop_table("reinforcements")
