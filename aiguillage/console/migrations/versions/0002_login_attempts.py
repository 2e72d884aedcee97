"""Log-in attempts per (login, address) and per login: the throttle's gates (issue 28).

Expand only: console_login_failures stays, the trail of failed log-ins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_login_attempts",
        sa.Column("login", sa.String(320), primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_console_login_attempts_last_at", "console_login_attempts", ["last_at"])


def downgrade() -> None:
    op.drop_table("console_login_attempts")
