"""`aiguillage restore --from DIR`: a backup into fresh databases, the outboxes ready to
publish again what the consumers may have lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(
    help="Restore a backup of `aiguillage backup` into the databases the settings name.",
    invoke_without_command=True,
)


@app.callback()
def restore(
    source: Annotated[Path, typer.Option("--from", help="The backup's folder.")],
    replay_minutes: Annotated[
        float,
        typer.Option(
            help="Publish again what each outbox published from this many minutes before "
            "the backup began (the consumers drop what they already had).",
            min=0,
        ),
    ] = 10.0,
    force: Annotated[
        bool, typer.Option(help="Overwrite databases that already have tables.")
    ] = False,
) -> None:
    """Restore every database of the backup (the services stopped), then start them: each
    outbox publishes again, the consumers' inboxes drop what they had. What the outside
    actors sent after the backup began must be sent again (docs/operations/backup.md)."""
    from aiguillage.backup import BackupError, read_manifest
    from aiguillage.backup import restore as put_back

    try:
        replayed = put_back(
            get_settings(),
            source,
            replay_margin=timedelta(minutes=replay_minutes),
            force=force,
            say=typer.echo,
        )
        began = datetime.fromisoformat(read_manifest(source)["started_at"])
    except BackupError as exc:
        typer.echo(f"restore failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"restored {len(replayed)} databases; {sum(replayed.values())} events to publish again. "
        f"Ask the referrers, centres, Centre 15 and the ARS to send again what they sent "
        f"since {(began - timedelta(minutes=replay_minutes)).isoformat(timespec='seconds')} "
        "(the backup's start, less the margin)."
    )
