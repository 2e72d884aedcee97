"""What the ARS does: activate centres, change their capacity, suspend or close them."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated

import typer

from aiguillage.commands.common import ApiError, get_from_service, publish
from aiguillage.hours import parse_hours
from shared.auth import Role
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreKind,
    CentreSuspended,
)
from shared.paris import paris_fr
from shared.settings import ServiceName, get_settings

app = typer.Typer(
    help="What the ARS does: activate, ramp up or down, suspend, close centres.",
    no_args_is_help=True,
)


@app.command("activate")
def activate(
    centre_id: Annotated[str, typer.Option("--id", help="The centre's identifier.")],
    name: Annotated[str, typer.Option(help="The centre's name.")],
    commune: Annotated[str, typer.Option(help="INSEE code of the centre's commune.")],
    boxes: Annotated[int, typer.Option(help="Consultations held in parallel.")] = 2,
    minutes: Annotated[int, typer.Option(help="Length of a consultation.")] = 20,
    hours: Annotated[
        str,
        typer.Option(
            help="Days, then ranges; groups separated by ';': 'lun-ven 08:00-20:00; "
            "sam 09:00-13:00', 'lun,mer,ven 09:00-12:00 14:00-18:00' (aiguillage/hours.py)."
        ),
    ] = "tous les jours 08:00-20:00",
    kind: Annotated[CentreKind, typer.Option(help="Kind of centre.")] = (
        CentreKind.TEMPORARY_DEDICATED
    ),
    address: Annotated[str | None, typer.Option(help="Street address.")] = None,
    first_day: Annotated[str | None, typer.Option(help="YYYY-MM-DD, default today.")] = None,
) -> None:
    """Activate a centre (publishes centre.activated)."""
    payload = CentreActivated(
        centre_id=centre_id,
        name=name,
        kind=kind,
        commune_insee=commune,
        address=address,
        opening_hours=parse_hours(hours),
        boxes=boxes,
        consultation_minutes=minutes,
        first_day=date.fromisoformat(first_day) if first_day else date.today(),
    )
    event_id = publish(get_settings(), "ars", payload, centre_id)
    typer.echo(f"centre.activated {centre_id} published (event {event_id})")


@app.command("capacity")
def capacity(
    centre_id: Annotated[str, typer.Option("--id", help="The centre's identifier.")],
    from_date: Annotated[str, typer.Option("--from", help="YYYY-MM-DD, default today.")] = "",
    boxes: Annotated[int | None, typer.Option(help="New number of boxes.")] = None,
    minutes: Annotated[int | None, typer.Option(help="New consultation length.")] = None,
    hours: Annotated[
        str | None, typer.Option(help="New opening hours, as activate's: 'lun-ven 08:00-20:00'.")
    ] = None,
) -> None:
    """Ramp a centre up or down from a date (publishes centre.capacity_changed)."""
    payload = CentreCapacityChanged(
        centre_id=centre_id,
        boxes=boxes,
        consultation_minutes=minutes,
        opening_hours=parse_hours(hours) if hours else None,
        from_date=date.fromisoformat(from_date) if from_date else date.today(),
    )
    event_id = publish(get_settings(), "ars", payload, centre_id)
    typer.echo(f"centre.capacity_changed {centre_id} published (event {event_id})")


@app.command("suspend")
def suspend(
    centre_id: Annotated[str, typer.Option("--id", help="The centre's identifier.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "suspended by the ARS",
) -> None:
    """Suspend a centre: its future patients are moved or waitlisted."""
    event_id = publish(
        get_settings(), "ars", CentreSuspended(centre_id=centre_id, reason=reason), centre_id
    )
    typer.echo(f"centre.suspended {centre_id} published (event {event_id})")


@app.command("close")
def close(
    centre_id: Annotated[str, typer.Option("--id", help="The centre's identifier.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "closed by the ARS",
) -> None:
    """Close a centre for good: its future patients are moved or waitlisted."""
    event_id = publish(
        get_settings(), "ars", CentreClosed(centre_id=centre_id, reason=reason), centre_id
    )
    typer.echo(f"centre.closed {centre_id} published (event {event_id})")


@app.command("reinforcements")
def list_reinforcements(
    region: Annotated[
        str, typer.Option(help="The ARS's region (its INSEE code: 53 Bretagne): its centres only.")
    ],
    departement: Annotated[str | None, typer.Option(help="One département only.")] = None,
) -> None:
    """The centres' reinforcement requests, newest first (kept by the scheduler)."""
    path = "/reinforcements" + (f"?departement={departement}" if departement else "")
    try:
        body = asyncio.run(
            get_from_service(get_settings(), ServiceName.SCHEDULER, Role.ARS, region, path)
        )
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for r in body["reinforcements"]:
        at = paris_fr(datetime.fromisoformat(r["requested_at"]))
        typer.echo(
            f"{at}  {r['centre_id']} ({r['departement']}): "
            f"{r['count']} {r['profession']} à partir du {r['from_date']}"
            + (f" - {r['note']}" if r["note"] else "")
        )
