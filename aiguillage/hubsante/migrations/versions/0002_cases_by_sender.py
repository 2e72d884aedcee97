"""Cases keyed by (sender, case id); each case bound to the submission the door made.

The primary key widens from the case id to (sender, case id): one SAMU's case id can no
longer take, or reveal, another's. Every column and row stays, so the previous release
still reads and writes the table as it did (it looks a case up by its id and checks the
sender itself). ``submission_id``: the id of the ``referral.submitted`` the door
published for the case, the only answer from intake the door follows (not the
``reference``, which any Centre 15 submission may carry); empty for the rows of the
previous release.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL's name for 0001's key (SQLite's is unnamed).
PRIMARY_KEY = "hubsante_cases_pkey"


def upgrade() -> None:
    _rekey(["sender", "case_id"])
    op.add_column("hubsante_cases", sa.Column("submission_id", sa.String(36), nullable=True))
    op.create_index(
        "uq_hubsante_cases_submission_id", "hubsante_cases", ["submission_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_hubsante_cases_submission_id", table_name="hubsante_cases")
    with op.batch_alter_table("hubsante_cases") as batch:
        batch.drop_column("submission_id")
    _rekey(["case_id"])


def _rekey(columns: list[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(PRIMARY_KEY, "hubsante_cases", type_="primary")
        op.create_primary_key(PRIMARY_KEY, "hubsante_cases", columns)
        return
    # SQLite: batch mode copies the table (its indexes and rows) under the new key;
    # SQLAlchemy warns that the reflected key columns differ from the new key, which is
    # the point.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*specifies columns .* as primary_key")
        with op.batch_alter_table("hubsante_cases") as batch:
            batch.create_primary_key(PRIMARY_KEY, columns)
