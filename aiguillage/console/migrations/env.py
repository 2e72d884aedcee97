"""Alembic environment of the console (run through shared.migrations.upgrade)."""

from aiguillage.console.people import metadata
from shared.migrations import run_env

run_env(metadata)
