"""The outbox and inbox tables every service has in its own database."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(100), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    # A row the broker refused (or this service may not publish) is set aside, so that
    # it never blocks the rows behind it; an operator looks at it.
    Column("set_aside_at", DateTime(timezone=True), nullable=True),
    # The W3C traceparent of the span that staged it (shared.tracing; null when off): the
    # relay puts it back in the message's headers.
    Column("traceparent", String(55), nullable=True),
)
Index("ix_outbox_pending", outbox.c.published_at, outbox.c.seq)
# The rows still to relay, and those set aside, each in a partial index of its own: the
# relay's scan, /metrics's pending figures and /ready's set-aside count read only them,
# however many published rows the table holds (issue 32). ix_outbox_pending serves the
# purge (published before a time).
_UNPUBLISHED = outbox.c.published_at.is_(None) & outbox.c.set_aside_at.is_(None)
Index(
    "ix_outbox_unpublished",
    outbox.c.seq,
    postgresql_where=_UNPUBLISHED,
    sqlite_where=_UNPUBLISHED,
)
Index(
    "ix_outbox_set_aside",
    outbox.c.seq,
    postgresql_where=outbox.c.set_aside_at.is_not(None),
    sqlite_where=outbox.c.set_aside_at.is_not(None),
)
# The PostgreSQL channel on which a commit that staged outbox rows wakes every relay.
OUTBOX_CHANNEL = "aiguillage_outbox"

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(100), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Column("outcome", JSON, nullable=True),
    PrimaryKeyConstraint("consumer", "event_id"),
)
# The purge finds the rows past the deduplication window by their time (issue 32).
Index("ix_inbox_processed", inbox.c.processed_at)

# What a door refused: recorded, never applied (shared.consumer).
refusals = Table(
    "refusals",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("consumer", String(100), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("sender_user", String(128), nullable=False),
    Column("sender", String(128), nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("field", String(100), nullable=True),
    Column("event_type", String(100), nullable=True),
    Column("routing_key", String(255), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
