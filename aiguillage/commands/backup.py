"""`aiguillage backup --to DIR`: every database of the deployment into a folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from aiguillage.reach import database, reaching
from shared.db import Database
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(
    help="Back up every database (SQLite online backup, pg_dump for PostgreSQL).",
    invoke_without_command=True,
)


@app.callback()
def backup(
    to: Annotated[Path, typer.Option("--to", help="A new (or empty) folder for the backup.")],
) -> None:
    """Copy the four services', the console's and the Hub Santé door's databases into a
    folder, with a manifest of when (docs/operations/backup.md). The services may run."""
    from aiguillage.backup import BackupError
    from aiguillage.backup import backup as take

    settings = get_settings()
    _reach_every_server(settings)
    try:
        manifest = take(settings, to, say=typer.echo)
    except BackupError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backup in {to}, begun {manifest['started_at']}")


def _reach_every_server(settings: Settings) -> None:
    """A PostgreSQL server down is said in one French line (exit 2) before any copy
    starts, as every command says it, not as pg_dump's English after half a backup."""
    for owner in [*ServiceName, "console"]:
        server = database(settings, owner)
        url = settings.console_database() if owner == "console" else settings.database_url(owner)
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            continue
        with reaching(server):
            asyncio.run(_probe(url))


async def _probe(url: str) -> None:
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()
