"""`aiguillage purge`: delete what is past its retention (issue 34), service by service,
and the console's own traces and old disabled accounts (``--service console``).

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
from enum import StrEnum
from typing import Annotated

import typer

import services.intake
import services.notifier
import services.regulation
import services.scheduler
from aiguillage.console import retention as console_retention
from aiguillage.console.people import MIGRATIONS
from aiguillage.reach import database, reaching
from shared.db import Database
from shared.events import utcnow
from shared.migrations import upgrade
from shared.retention import PurgeOptions, PurgeReport, Retention, Step, run_purge
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(help="Delete what is past its retention (identity, clinical details, ...).")


class Target(StrEnum):
    """What a purge reaches: a service's database, or the console's."""

    INTAKE = "intake"
    REGULATION = "regulation"
    SCHEDULER = "scheduler"
    NOTIFIER = "notifier"
    CONSOLE = "console"


STEPS: dict[Target, Callable[[Retention], Sequence[Step]]] = {
    Target.INTAKE: services.intake.purge_steps,
    Target.REGULATION: services.regulation.purge_steps,
    Target.SCHEDULER: services.scheduler.purge_steps,
    Target.NOTIFIER: services.notifier.purge_steps,
    # Its audit, failed log-ins and ended sessions, and the accounts disabled long ago.
    Target.CONSOLE: console_retention.purge_steps,
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
    settings: Settings, service: ServiceName | Target, now: datetime, options: PurgeOptions
) -> PurgeReport:
    """Bring the service's (or the console's) database to its latest migration and purge
    it at ``now``."""
    target = Target(service.value)
    console = target is Target.CONSOLE
    db = Database(settings.console_database() if console else settings.database_url(target))
    try:
        with reaching(database(settings, target.value)):
            await upgrade(db, MIGRATIONS if console else f"services.{target.value}:migrations")
            steps = STEPS[target](Retention.of(settings))
            return await run_purge(db, steps, now, options)
    finally:
        await db.dispose()


@app.callback(invoke_without_command=True)
def purge(
    service: Annotated[
        Target | None,
        typer.Option(help="One service, or the console (default: the four and the console)."),
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
    chosen = [service] if service is not None else list(Target)
    for name in chosen:
        report = asyncio.run(purge_service(settings, name, clock, options))
        typer.echo(json.dumps({"service": name.value, "run": report.run_id, **report.counts}))
