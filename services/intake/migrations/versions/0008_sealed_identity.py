"""Identity sealed at rest (issue 34), expand step: the sealed columns, the NIR's keyed
hash, the wrapped data keys, the log of identity reads; the plain columns become
nullable and stay one release (``aiguillage keys seal`` seals the rows written before,
in batches, and empties them; the next release drops them: expand, then contract).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = ("first_name", "last_name", "birth_date", "nir", "phone", "email", "address")
PLAIN_REQUIRED = (
    ("first_name", sa.String(100)),
    ("last_name", sa.String(100)),
    ("birth_date", sa.Date()),
)


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        for name, kind in PLAIN_REQUIRED:
            batch.alter_column(name, existing_type=kind, nullable=True)
        for name in SEALED:
            batch.add_column(sa.Column(f"sealed_{name}", sa.Text, nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("nir_hash", sa.String(64), nullable=True))
    op.create_index("ix_identities_key", "identities", ["key_id"])
    op.create_index("ix_identities_nir_hash", "identities", ["nir_hash"])
    op.create_table(
        "identity_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("wrapped", sa.Text, nullable=False),
        sa.Column("kek_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "identity_key_current",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(16), nullable=False),
    )
    op.create_table(
        "identity_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("referral_id", sa.String(36), nullable=False),
        sa.Column("patient_ref", sa.String(40), nullable=True),
        sa.Column("reader_role", sa.String(16), nullable=False),
        sa.Column("reader", sa.String(200), nullable=False),
        sa.Column("account", sa.String(320), nullable=True),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("page", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_identity_reads_referral", "identity_reads", ["referral_id", "at"])
    op.create_index("ix_identity_reads_patient", "identity_reads", ["patient_ref", "at"])
    op.create_index("ix_identity_reads_account", "identity_reads", ["account", "at"])


def downgrade() -> None:
    # Only before any row was written sealed: the plain columns are required again.
    op.drop_table("identity_reads")
    op.drop_table("identity_key_current")
    op.drop_table("identity_keys")
    op.drop_index("ix_identities_nir_hash", "identities")
    op.drop_index("ix_identities_key", "identities")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("nir_hash")
        batch.drop_column("key_id")
        for name in SEALED:
            batch.drop_column(f"sealed_{name}")
        for name, kind in PLAIN_REQUIRED:
            batch.alter_column(name, existing_type=kind, nullable=False)
