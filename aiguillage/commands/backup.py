"""`aiguillage backup --to DIR`: every database of the deployment into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.settings import get_settings

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

    try:
        manifest = take(get_settings(), to, say=typer.echo)
    except BackupError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backup in {to}, begun {manifest['started_at']}")
