"""Alembic environment of the regulation service (run through shared.migrations.upgrade)."""

from services.regulation.store.tables import metadata
from shared.messaging_tables import metadata as messaging_metadata
from shared.migrations import run_env

run_env([metadata, messaging_metadata])
