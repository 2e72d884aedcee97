"""Contacts sealed at rest (issue 34), expand step: the sealed columns of the names,
phone and e-mail, the wrapped data keys, and the log of identity reads (a centre's day
list); the plain columns become nullable and stay one release (``aiguillage keys seal
--service notifier`` seals the rows written before, in batches, and empties them; the
next release drops them: expand, then contract).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = ("first_name", "last_name", "phone", "email")
PLAIN_REQUIRED = (("first_name", sa.String(100)), ("last_name", sa.String(100)))


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        for name, kind in PLAIN_REQUIRED:
            batch.alter_column(name, existing_type=kind, nullable=True)
        for name in SEALED:
            batch.add_column(sa.Column(f"sealed_{name}", sa.Text, nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
    op.create_index("ix_contacts_key_id", "contacts", ["key_id"])
    op.create_table(
        "contact_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("wrapped", sa.Text, nullable=False),
        sa.Column("kek_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "contact_key_current",
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
    op.create_index("ix_identity_reads_at", "identity_reads", ["at"])
    op.create_index("ix_identity_reads_patient", "identity_reads", ["patient_ref", "at"])
    op.create_index("ix_identity_reads_account", "identity_reads", ["account", "at"])


def downgrade() -> None:
    # Only before any row was written sealed: the plain names are required again.
    op.drop_table("identity_reads")
    op.drop_table("contact_key_current")
    op.drop_table("contact_keys")
    op.drop_index("ix_contacts_key_id", "contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("key_id")
        for name in SEALED:
            batch.drop_column(f"sealed_{name}")
        for name, kind in PLAIN_REQUIRED:
            batch.alter_column(name, existing_type=kind, nullable=False)
