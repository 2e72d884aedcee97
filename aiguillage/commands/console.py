"""The web console: serve it, print the actors' passwords, take screenshots of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiguillage.console.auth import password_for
from shared.auth import Role
from shared.logging import configure_logging
from shared.settings import get_settings

app = typer.Typer(
    help="The web console of the ARS, the centres and Centre 15.",
    invoke_without_command=True,
)


@app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="HTTP port of the console.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the console (log-in per actor; see `aiguillage console passwords`)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from aiguillage.console.app import create_app

    settings = get_settings()
    configure_logging("console", settings.log_level, settings.log_json)
    typer.echo(f"console on http://{host}:{port}/ (namespace {settings.namespace})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@app.command("passwords")
def passwords(
    centre: Annotated[
        list[str] | None, typer.Option("--centre", help="A centre's identifier (repeat).")
    ] = None,
    ars: Annotated[list[str] | None, typer.Option("--ars", help="An ARS log-in.")] = None,
    regulator: Annotated[
        list[str] | None, typer.Option("--regulator", help="A Centre 15 regulator's log-in.")
    ] = None,
) -> None:
    """Print each actor's console password (derived from AIGUILLAGE_AUTH_SECRET)."""
    secret = get_settings().auth_secret
    actors = (
        [(Role.ARS, s) for s in ars or ["idf"]]
        + [(Role.CENTRE, s) for s in centre or []]
        + [(Role.CENTRE_15, s) for s in regulator or ["regulateur"]]
    )
    for role, subject in actors:
        typer.echo(f"{role.value:<10} {subject:<32} {password_for(secret, role, subject)}")


@app.command("screenshots")
def screenshots(
    centre: Annotated[str, typer.Option(help="The centre whose page to show.")],
    out: Annotated[Path, typer.Option(help="Folder of the PNG files.")] = Path("docs/screenshots"),
    url: Annotated[str, typer.Option(help="The running console.")] = "http://127.0.0.1:8080",
    ars: Annotated[str, typer.Option(help="The ARS log-in.")] = "idf",
    regulator: Annotated[str, typer.Option(help="The regulator's log-in.")] = "regulateur",
) -> None:
    """Screenshots of the three pages of a running console (headless Chromium)."""
    from aiguillage.console.screenshots import take_screenshots

    for path in take_screenshots(
        url.rstrip("/"),
        get_settings().auth_secret,
        out,
        ars=ars,
        centre=centre,
        regulator=regulator,
    ):
        typer.echo(f"wrote {path}")
