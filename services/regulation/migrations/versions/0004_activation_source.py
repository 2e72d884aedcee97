"""A protocol activation's source as long as an envelope's (100): a door's source is
``centre:<centre id>`` or ``ars:<subject>``, longer than 64 characters for a long id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a column in place (the table is copied), and on
    # PostgreSQL it is a plain ALTER COLUMN ... TYPE.
    with op.batch_alter_table("protocol_activations") as batch:
        batch.alter_column(
            "source", existing_type=sa.String(64), type_=sa.String(100), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("protocol_activations") as batch:
        batch.alter_column(
            "source", existing_type=sa.String(100), type_=sa.String(64), existing_nullable=False
        )
