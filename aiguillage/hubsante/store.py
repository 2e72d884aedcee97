"""The door's own small table: case id <-> referral id and the sender. The patient's
identity stays in intake, as for every other door."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, String, Table

from shared.db import Database
from shared.migrations import upgrade
from shared.settings import Settings

metadata = MetaData()

cases = Table(
    "hubsante_cases",
    metadata,
    # A case is its sender's: one SAMU's case id never names another's (migration 0002).
    Column("sender", String(200), primary_key=True),
    Column("case_id", String(100), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    # The createCaseHealth waiting for intake's answer, then answered Ack or Error.
    Column("distribution_id", String(200), nullable=False),
    # The referral.submitted the door published for it: intake's answer to that message
    # alone binds the case to a referral (never an answer naming its reference).
    Column("submission_id", String(36), nullable=True),
    Column("answered", Boolean, nullable=False, default=False),
    Column("referral_id", String(36), nullable=True, index=True),
    Column("decision", String(20), nullable=True),
    Column("priority", String(10), nullable=True),
    Column("regulator", String(64), nullable=False),
    # The regulator's decision given to a referral the protocol held.
    Column("released", Boolean, nullable=False, default=False),
    # The appointment as the LRM knows it: one id per booking, kept through moves.
    Column("appointment_id", String(160), nullable=True),
    Column("appointment_seq", Integer, nullable=False, default=0),
    Column("appointment_open", Boolean, nullable=False, default=False),
    # What a later report or cancellation repeats (start is required by RS-SAS-RDV).
    Column("appointment_start", String(40), nullable=True),
    Column("appointment_end", String(40), nullable=True),
    Column("centre_id", String(64), nullable=True),
    Column("centre_name", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("uq_hubsante_cases_submission_id", "submission_id", unique=True),
)

# The outcome events already sent to the hub: a redelivery sends nothing twice.
applied = Table(
    "hubsante_applied",
    metadata,
    Column("event_id", String(36), primary_key=True),
)

MIGRATIONS = str(Path(__file__).parent / "migrations")


def database_url(settings: Settings) -> str:
    return settings.hubsante_database_url or (
        f"sqlite+aiosqlite:///{settings.data_dir / 'hubsante.db'}"
    )


async def open_database(settings: Settings) -> Database:
    database = Database(database_url(settings))
    await upgrade(database, MIGRATIONS)
    return database
