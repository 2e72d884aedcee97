"""`aiguillage purge`: delete what is past its retention (issue 34), service by service.

Each service's database is brought to its latest migration, then its purge runs
(``shared.retention.run_purge``: small batches, each its own transaction, resumable):
the same purge each service runs on its schedule (``AIGUILLAGE_PURGE_INTERVAL_MINUTES``),
for a CronJob or an operator. What it purged (counts per category and table, never
content) is printed and written to the service's ``purges`` table.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer

import services.intake
import services.notifier
import services.regulation
import services.scheduler
from aiguillage.reach import database, reaching
from shared.db import Database
from shared.events import utcnow
from shared.migrations import upgrade
from shared.retention import PurgeOptions, PurgeReport, Retention, Step, run_purge
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(help="Delete what is past its retention (identity, clinical details, ...).")

STEPS: dict[ServiceName, Callable[[Retention], Sequence[Step]]] = {
    ServiceName.INTAKE: services.intake.purge_steps,
    ServiceName.REGULATION: services.regulation.purge_steps,
    ServiceName.SCHEDULER: services.scheduler.purge_steps,
    ServiceName.NOTIFIER: services.notifier.purge_steps,
}


def _instant(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: an ISO date and time (2026-03-01T12:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def purge_service(
    settings: Settings, service: ServiceName, now: datetime, options: PurgeOptions
) -> PurgeReport:
    """Bring the service's database to its latest migration and purge it at ``now``."""
    db = Database(settings.database_url(service))
    try:
        with reaching(database(settings, service)):
            await upgrade(db, f"services.{service.value}:migrations")
            steps = STEPS[service](Retention.of(settings))
            return await run_purge(db, steps, now, options)
    finally:
        await db.dispose()


@app.callback(invoke_without_command=True)
def purge(
    service: Annotated[
        ServiceName | None, typer.Option(help="One service (default: all four).")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="The clock the retention counts to, ISO 8601 (default: now)."),
    ] = None,
    batch: Annotated[
        int | None, typer.Option(min=1, help="Rows per transaction (AIGUILLAGE_PURGE_BATCH).")
    ] = None,
) -> None:
    """Purge every service (or one) of what its retention says is due, in batches."""
    settings = get_settings()
    clock = _instant(now)
    options = PurgeOptions(batch or settings.purge_batch, settings.purge_pause_ms / 1000, "command")
    chosen = [service] if service is not None else list(ServiceName)
    for name in chosen:
        report = asyncio.run(purge_service(settings, name, clock, options))
        typer.echo(json.dumps({"service": name.value, "run": report.run_id, **report.counts}))
