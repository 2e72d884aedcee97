"""The ``aiguillage`` command."""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from shared.events import CentreActivated, CentreKind, ReferralSubmitted, new_id
from shared.logging import configure_logging
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings, get_settings
from shared.topology import declare_topology

app = typer.Typer(
    help="Aiguillage: routes Covid-19 patients to consultation centres.", no_args_is_help=True
)
ars = typer.Typer(help="What the ARS does: activate centres.", no_args_is_help=True)
app.add_typer(ars, name="ars")


@app.command()
def run(service: ServiceName) -> None:
    """Run one service (intake, regulation, scheduler or notifier) until stopped."""
    settings = get_settings()
    configure_logging(service.value, settings.log_level, settings.log_json)
    module = importlib.import_module(f"services.{service.value}.app")
    runtime = module.build(settings)
    asyncio.run(runtime.app().run())


async def _publish(
    settings: Settings,
    source: str,
    payload: CentreActivated | ReferralSubmitted,
    correlation_id: str,
) -> str:
    await declare_topology(settings.broker_url, settings.namespace)
    async with EventPublisher(settings.broker_url, settings.namespace, source) as publisher:
        envelope = await publisher.publish(payload, correlation_id=correlation_id)
    return envelope.id


@ars.command("activate")
def activate(
    centre_id: Annotated[str, typer.Option("--id", help="The centre's identifier.")],
    name: Annotated[str, typer.Option(help="The centre's name.")],
    commune: Annotated[str, typer.Option(help="INSEE code of the centre's commune.")],
    boxes: Annotated[int, typer.Option(help="Consultations held in parallel.")] = 2,
    minutes: Annotated[int, typer.Option(help="Length of a consultation.")] = 20,
    hours: Annotated[str, typer.Option(help="e.g. 'mon-fri 09:00-19:00; sat 09:00-12:00'")] = (
        "all 08:00-20:00"
    ),
    kind: Annotated[CentreKind, typer.Option(help="Kind of centre.")] = (
        CentreKind.TEMPORARY_DEDICATED
    ),
    address: Annotated[str | None, typer.Option(help="Street address.")] = None,
    first_day: Annotated[str | None, typer.Option(help="YYYY-MM-DD, default today.")] = None,
) -> None:
    """Activate a centre (publishes centre.activated)."""
    from aiguillage.hours import parse_hours

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
    event_id = asyncio.run(_publish(get_settings(), "ars", payload, centre_id))
    typer.echo(f"centre.activated {centre_id} published (event {event_id})")


@app.command()
def refer(
    file: Annotated[Path, typer.Argument(help="A referral as JSON (see docs/examples).")],
) -> None:
    """Submit a referral (publishes referral.submitted)."""
    payload = ReferralSubmitted.model_validate(json.loads(file.read_text()))
    event_id = asyncio.run(_publish(get_settings(), payload.referrer.kind.value, payload, new_id()))
    typer.echo(f"referral.submitted {payload.reference} published (event {event_id})")


@app.command()
def demo(
    referrals: Annotated[int, typer.Option("--referrals", "-n", help="Referrals to push.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed of the scenario.")] = 2020,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for final states.")] = 180.0,
    keep: Annotated[bool, typer.Option(help="Keep the demo's queues and databases.")] = False,
    in_memory: Annotated[
        bool, typer.Option("--in-memory", help="One process, FastStream's in-memory broker.")
    ] = False,
) -> None:
    """Run the whole flow: four services, the ARS's centres, N referrals, a summary."""
    from aiguillage.demo import run_demo

    raise typer.Exit(
        run_demo(
            get_settings(),
            referrals=referrals,
            seed=seed,
            timeout=timeout,
            keep=keep,
            in_memory=in_memory,
        )
    )


@app.command()
def asyncapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path(
        "docs/asyncapi.yaml"
    ),
) -> None:
    """Write the AsyncAPI document generated from the code."""
    from aiguillage.asyncapi import render

    output.write_text(render())
    typer.echo(f"wrote {output}")


@app.command()
def health(service: ServiceName) -> None:
    """Exit 0 when the service's queues have consumers (for container health checks)."""
    from aiguillage.health import consumers_attached

    settings = get_settings()
    missing = asyncio.run(consumers_attached(settings, service))
    if missing:
        typer.echo(f"no consumer on {', '.join(missing)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{service.value}: consuming")


def main() -> None:
    app()
