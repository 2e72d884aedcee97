"""The ``aiguillage`` command."""

from __future__ import annotations

import asyncio
import importlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from aiguillage.commands.common import publish
from aiguillage.errors import KnownErrors, quiet_broker_client
from aiguillage.reach import database, database_url, reaching
from shared.auth import Role, issue_token
from shared.events import ReferralSubmitted, new_id
from shared.logging import configure_logging
from shared.memory import tune_allocator
from shared.release import VERSION
from shared.settings import ServiceName, get_settings

# KnownErrors: a broker refusing, a broker away, a topology not provisioned, Chromium
# missing are said in one line with what to do (exit 1), in every command.
app = typer.Typer(
    help="Aiguillage: routes Covid-19 patients to consultation centres.",
    no_args_is_help=True,
    cls=KnownErrors,
)
quiet_broker_client()


class Scenario(StrEnum):
    """The demo's scenarios (``aiguillage.wave``)."""

    IDF_2020_03 = "idf-2020-03"
    RENNES = "rennes"


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"aiguillage {VERSION}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Say this release and stop."
        ),
    ] = False,
) -> None:
    """Aiguillage: routes Covid-19 patients to consultation centres."""


# Each area's commands live in their own module under aiguillage/commands.
for _name in (
    "ars",
    "centre",
    "regulate",
    "broker",
    "console",
    "secrets",
    "referrer",
    "purge",
    "backup",
    "restore",
    "keys",
    "privacy",
):
    _module = importlib.import_module(f"aiguillage.commands.{_name}")
    app.add_typer(_module.app, name=_name)


@app.command()
def run(
    service: Annotated[
        str, typer.Argument(help="intake, regulation, scheduler, notifier, or hubsante")
    ],
) -> None:
    """Run one service (intake, regulation, scheduler or notifier), or the Hub Santé
    door (hubsante), until stopped."""
    if service == "hubsante":
        run_hubsante()
        return
    try:
        name = ServiceName(service)
    except ValueError:
        raise typer.BadParameter(
            f"{service!r}: one of intake, regulation, scheduler, notifier, hubsante"
        ) from None
    tune_allocator()
    settings = get_settings()
    configure_logging(name.value, settings.log_level, settings.log_json)
    module = importlib.import_module(f"services.{name.value}.app")
    runtime = module.build(settings)
    # Its database not answering is said in one line (the broker's too: errors.py).
    with reaching(database(settings, name)):
        asyncio.run(runtime.app().run())


@app.command("run-hubsante", hidden=True)
def run_hubsante() -> None:
    """The Hub Santé door (also ``aiguillage run hubsante``)."""
    from aiguillage.hubsante.door import HubSanteDoor
    from aiguillage.hubsante.store import database_url as door_database

    tune_allocator()
    settings = get_settings()
    if not settings.hubsante_url:
        typer.echo(
            "the Hub Santé door is off: set AIGUILLAGE_HUBSANTE_URL to the hub's AMQP URL",
            err=True,
        )
        raise typer.Exit(1)
    configure_logging("hubsante", settings.log_level, settings.log_json)
    with reaching(database_url(door_database(settings), "AIGUILLAGE_HUBSANTE_DATABASE_URL")):
        asyncio.run(HubSanteDoor(settings).run())


@app.command()
def refer(
    file: Annotated[Path, typer.Argument(help="A referral as JSON (see docs/examples).")],
) -> None:
    """Submit a referral (publishes referral.submitted)."""
    payload = ReferralSubmitted.model_validate(json.loads(file.read_text()))
    event_id = publish(get_settings(), payload.referrer.kind.value, payload, new_id())
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
    scenario: Annotated[
        Scenario | None,
        typer.Option(help="A wave on a territory, the console open to watch it."),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Scenario: simulated days per minute.", min=0.1)
    ] = 1.0,
    days: Annotated[int | None, typer.Option(help="Scenario: simulated days.", min=1)] = None,
    watch: Annotated[
        bool, typer.Option(help="Scenario: leave the console open at the end, until Ctrl-C.")
    ] = True,
    screenshots: Annotated[
        Path | None, typer.Option(help="Scenario: PNGs of the console's pages at the end.")
    ] = None,
    console_port: Annotated[int, typer.Option(help="Scenario: the console's port.")] = 8080,
) -> None:
    """Run the whole flow: four services, the ARS's centres, N referrals, a summary.

    With --scenario: the offer of a territory, a growing wave of referrals over simulated
    days, the ARS opening centres on the scheduler's alerts, and the web console.
    """
    if scenario is not None:
        from aiguillage.wave_run import play_scenario

        raise typer.Exit(
            play_scenario(
                get_settings(),
                scenario.value,
                speed=speed,
                seed=seed,
                days=days,
                watch=watch,
                screenshots=screenshots,
                console_port=console_port,
                keep=keep,
                timeout=timeout,
            )
        )
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


@app.command()
def token(
    role: Role,
    subject: str,
    service: Annotated[
        ServiceName, typer.Option("--service", help="The service the token is for (its audience).")
    ],
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl", min=1, help="Lifetime in seconds (default: AIGUILLAGE_TOKEN_TTL_SECONDS)."
        ),
    ] = None,
) -> None:
    """Issue a bearer token for an actor of one service's HTTP API (e.g. centre
    rennes-poterie --service notifier)."""
    from datetime import UTC, datetime

    from shared.auth import read_token
    from shared.regions import regions

    if role is Role.ARS and subject not in regions():
        # The scheduler would refuse it on every route: said now rather than later.
        typer.echo(
            f"« {subject} » n'est pas une région : le jeton d'une ARS nomme le code de sa "
            "région (53 pour la Bretagne, 11 pour l'Île-de-France).",
            err=True,
        )
        raise typer.Exit(2)
    issued = issue_token(get_settings(), role, subject, service, ttl_seconds=ttl)
    claims = read_token(issued)
    typer.echo(issued)
    # On stderr, so that `TOKEN=$(aiguillage token ...)` keeps the token alone: the id
    # is what AIGUILLAGE_REVOKED_TOKENS names to refuse it before it expires.
    expires = datetime.fromtimestamp(claims.expiry, UTC).isoformat()
    typer.echo(f"token id {claims.token_id}, for {service.value}, expires {expires}", err=True)


def main() -> None:
    app()
