"""`aiguillage keys`: the data keys that seal the patients' identities in intake's
database (issue 34, ``shared/sealing.py``, docs/security.md "Identity at rest").

``rotate`` makes a new data key the one that seals, then re-seals every row under it, in
batches, while the pipeline runs; ``seal`` finishes an interrupted rotation and seals
the rows written in clear before sealing existed (the expand step's backfill);
``status`` counts the rows under each key. Like ``aiguillage referrer``, they work on
intake's database directly (the operator holds its credentials) and need the KEK.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from aiguillage.reach import database, reaching
from services.intake import Vault, identities_by_key, rotate_identity_key, seal_identities
from shared.db import Database
from shared.migrations import upgrade
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(
    help="The data keys of the patients' identities sealed at rest (intake).",
    no_args_is_help=True,
)

Batch = Annotated[int, typer.Option(min=1, max=5000, help="Rows per transaction.")]


async def _rotate(settings: Settings, batch: int, new_key: bool) -> tuple[str | None, int]:
    intake = Database(settings.database_url(ServiceName.INTAKE))
    try:
        with reaching(database(settings, ServiceName.INTAKE)):
            await upgrade(intake, "services.intake:migrations")
            vault = Vault.of(settings)
            if new_key:
                return await rotate_identity_key(intake, vault, batch=batch)
            return None, await seal_identities(intake, vault, batch=batch)
    finally:
        await intake.dispose()


async def _status(settings: Settings) -> dict[str | None, int]:
    intake = Database(settings.database_url(ServiceName.INTAKE))
    try:
        with reaching(database(settings, ServiceName.INTAKE)):
            await upgrade(intake, "services.intake:migrations")
            async with intake.transaction() as session:
                return await identities_by_key(session)
    finally:
        await intake.dispose()


@app.command()
def rotate(batch: Batch = 200) -> None:
    """A new data key seals from now on; every identity is re-sealed under it, online.
    Interrupted: `aiguillage keys seal` finishes it."""
    key_id, count = asyncio.run(_rotate(get_settings(), batch, True))
    typer.echo(f"Nouvelle clé de données {key_id} : {count} identités rescellées.")


@app.command()
def seal(batch: Batch = 200) -> None:
    """Seal every identity not under the current data key: the rows of an interrupted
    rotation, and those written in clear before sealing (the migration's backfill)."""
    _, count = asyncio.run(_rotate(get_settings(), batch, False))
    typer.echo(f"{count} identités scellées sous la clé de données courante.")


@app.command()
def status() -> None:
    """How many identities each data key seals (« en clair »: not sealed yet)."""
    for key_id, count in sorted(asyncio.run(_status(get_settings())).items(), key=str):
        typer.echo(f"{key_id or 'en clair'} : {count}")
