"""Each oriented patient's arrival (département, priority, commune point, time; no
referral): the saturation forecast's arrival rates (issue 31).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The arrivals before it are not known: the forecast's rate starts from none.
    op.create_table(
        "arrivals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_arrivals_departement", "arrivals", ["departement", "arrived_at"])


def downgrade() -> None:
    op.drop_table("arrivals")
