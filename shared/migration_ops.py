"""Alembic operations for the outbox and inbox tables, shared by every service's
first migration (each service has its own database, so each creates its own)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.messaging_tables import _SEQ, OUTBOX_CHANNEL


def create_messaging_tables() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["published_at", "seq"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def drop_messaging_tables() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_pending", "outbox")
    op.drop_table("outbox")


def add_door_tables() -> None:
    """The door's record of refusals, and the outbox's set-aside rows (shared.outbox)."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "refusals",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("sender_user", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=False),
        sa.Column("field", sa.String(100), nullable=True),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_door_tables() -> None:
    op.drop_table("refusals")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("set_aside_at")


# PostgreSQL tells the relays of every replica that rows were staged, at commit (a
# NOTIFY is delivered only if its transaction commits, once per transaction and
# channel): they relay at once instead of at their next poll. One trigger per
# statement, so a batch's one outbox statement is one notification.


def add_outbox_notify() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # one process owns a SQLite file: its relay is woken in-process
    op.execute(
        "CREATE OR REPLACE FUNCTION aiguillage_outbox_notify() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION aiguillage_outbox_notify()"
    )


def drop_outbox_notify() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS aiguillage_outbox_notify()")


def create_purge_table() -> None:
    """The record of each purge: what it purged, counts per category (shared.retention)."""
    op.create_table(
        "purges",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clock", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
    )


def add_outbox_traceparent() -> None:
    """The outbox keeps the trace context of the span that staged each row."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(55), nullable=True))


def drop_outbox_traceparent() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("traceparent")


# The outbox's and inbox's indexes for a database that holds a wave's history (issue 32,
# bench/history.py): the relay's scan of unpublished rows and /metrics's figures read a
# partial index of the pending rows only, /ready's count of rows set aside one of those
# only (it counted the whole outbox), and the purge finds the inbox rows past their
# window by their time (it scanned the whole inbox per batch).
_UNPUBLISHED = "published_at IS NULL AND set_aside_at IS NULL"
_SET_ASIDE = "set_aside_at IS NOT NULL"


def add_messaging_indexes() -> None:
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        postgresql_where=sa.text(_UNPUBLISHED),
        sqlite_where=sa.text(_UNPUBLISHED),
    )
    op.create_index(
        "ix_outbox_set_aside",
        "outbox",
        ["seq"],
        postgresql_where=sa.text(_SET_ASIDE),
        sqlite_where=sa.text(_SET_ASIDE),
    )
    op.create_index("ix_inbox_processed", "inbox", ["processed_at"])


def drop_messaging_indexes() -> None:
    op.drop_index("ix_inbox_processed", "inbox")
    op.drop_index("ix_outbox_set_aside", "outbox")
    op.drop_index("ix_outbox_unpublished", "outbox")
