"""Alembic environment of the Hub Santé door (run through shared.migrations.upgrade)."""

from aiguillage.hubsante.store import metadata
from shared.migrations import run_env

run_env(metadata)
