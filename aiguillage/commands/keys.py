"""`aiguillage keys`: the data keys that seal the patients' identities at rest (issue
34, ``shared/sealing.py``, docs/security.md "Identity at rest"): intake's identities,
and the notifier's contacts (``--service notifier``), each service's data keys in its
own database.

``rotate`` makes a new data key the one that seals, then re-seals every row under it, in
batches, while the pipeline runs; ``seal`` finishes an interrupted rotation and seals
the rows written in clear before sealing existed (the expand step's backfill);
``status`` counts the rows under each key. Like ``aiguillage referrer``, they work on
the service's database directly (the operator holds its credentials) and need its KEK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

import services.notifier
from aiguillage.reach import database, reaching
from services.intake import Vault, identities_by_key, rotate_identity_key, seal_identities
from shared.db import Database
from shared.migrations import upgrade
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(
    help="The data keys of the patients' identities sealed at rest (intake, notifier).",
    no_args_is_help=True,
)

Batch = Annotated[int, typer.Option(min=1, max=5000, help="Rows per transaction.")]


class Sealed(StrEnum):
    """The services that seal identities at rest."""

    INTAKE = "intake"
    NOTIFIER = "notifier"


Service = Annotated[
    Sealed,
    typer.Option(
        "--service",
        help="intake (the identities) or notifier (the contacts: names, phone, e-mail).",
    ),
]
# What a row is called in the command's French sentences, and its agreement.
_ROWS = {Sealed.INTAKE: ("identités", "es"), Sealed.NOTIFIER: ("contacts", "s")}


async def _on(
    settings: Settings, service: Sealed, work: Callable[[Database], Awaitable[object]]
) -> object:
    name = ServiceName(service.value)
    db = Database(settings.database_url(name))
    try:
        with reaching(database(settings, name)):
            await upgrade(db, f"services.{name.value}:migrations")
            return await work(db)
    finally:
        await db.dispose()


async def _rotate(
    settings: Settings, service: Sealed, batch: int, new_key: bool
) -> tuple[str | None, int]:
    async def work(db: Database) -> tuple[str | None, int]:
        if service is Sealed.NOTIFIER:
            contacts = services.notifier.ContactVault.of(settings)
            if new_key:
                return await services.notifier.rotate_contact_key(db, contacts, batch=batch)
            return None, await services.notifier.seal_contacts(db, contacts, batch=batch)
        vault = Vault.of(settings)
        if new_key:
            return await rotate_identity_key(db, vault, batch=batch)
        return None, await seal_identities(db, vault, batch=batch)

    found = await _on(settings, service, work)
    assert isinstance(found, tuple)
    return found


async def _status(settings: Settings, service: Sealed) -> dict[str | None, int]:
    count: Callable[[AsyncSession], Awaitable[dict[str | None, int]]] = (
        services.notifier.contacts_by_key if service is Sealed.NOTIFIER else identities_by_key
    )

    async def work(db: Database) -> dict[str | None, int]:
        async with db.transaction() as session:
            return await count(session)

    found = await _on(settings, service, work)
    assert isinstance(found, dict)
    return found


@app.command()
def rotate(batch: Batch = 200, service: Service = Sealed.INTAKE) -> None:
    """A new data key seals from now on; every row is re-sealed under it, online.
    Interrupted: `aiguillage keys seal` finishes it."""
    key_id, count = asyncio.run(_rotate(get_settings(), service, batch, True))
    rows, agreed = _ROWS[service]
    typer.echo(f"Nouvelle clé de données {key_id} : {count} {rows} rescellé{agreed}.")


@app.command()
def seal(batch: Batch = 200, service: Service = Sealed.INTAKE) -> None:
    """Seal every row not under the current data key: the rows of an interrupted
    rotation, and those written in clear before sealing (the migration's backfill)."""
    _, count = asyncio.run(_rotate(get_settings(), service, batch, False))
    rows, agreed = _ROWS[service]
    typer.echo(f"{count} {rows} scellé{agreed} sous la clé de données courante.")


@app.command()
def status(service: Service = Sealed.INTAKE) -> None:
    """How many rows each data key seals (« en clair »: not sealed yet)."""
    for key_id, count in sorted(asyncio.run(_status(get_settings(), service)).items(), key=str):
        typer.echo(f"{key_id or 'en clair'} : {count}")
