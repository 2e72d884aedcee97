"""The web console: serve it, manage its people's accounts, take screenshots of it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer

from aiguillage.console.people import AccountError, AccountStore, open_store
from aiguillage.reach import database, reaching
from shared.auth import Role
from shared.logging import configure_logging
from shared.settings import get_settings

T = TypeVar("T")
PARIS = ZoneInfo("Europe/Paris")

app = typer.Typer(
    help="The web console of the ARS, the centres, Centre 15 and the referrers.",
    invoke_without_command=True,
)


@app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="HTTP port of the console.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the console (one account per person: `aiguillage console user add`)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from aiguillage.console.app import create_app
    from shared.http import PortReportingServer

    settings = get_settings()
    configure_logging("console", settings.log_level, settings.log_json)
    # The console signs sessions and tokens with the secrets: the services' rule applies.
    settings.check_secrets("the console")
    if port:
        typer.echo(f"console on http://{host}:{port}/ (namespace {settings.namespace})")
    # Port 0: the system picks one, written to AIGUILLAGE_PORT_FILE_DIR/console.port once
    # the console listens (tests start it so: no port is chosen then taken by another).
    # No proxy headers: uvicorn believes X-Forwarded-For from 127.0.0.1 by default; the
    # console believes AIGUILLAGE_TRUSTED_PROXIES only (shared.http.Proxies).
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", proxy_headers=False
    )
    PortReportingServer(config, settings.port_file_dir, "console").run()


user_app = typer.Typer(help="The console's people: one account per person.")
app.add_typer(user_app, name="user")


def _run_store(action: Callable[[AccountStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await open_store(get_settings())
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        # Not answering: one line and exit 2, said at the command's top (errors.py).
        with reaching(database(get_settings(), "console")):
            return asyncio.run(run())
    except AccountError as exc:
        typer.echo(f"refusé : {exc}", err=True)
        raise typer.Exit(1) from exc


def _stdin_password() -> str:
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        typer.echo("refusé : aucun mot de passe sur l'entrée standard", err=True)
        raise typer.Exit(1)
    return line


def _actor(
    role: Role, region: str | None, centre: str | None, samu: str | None, referrer: str | None
) -> str:
    wanted = {
        Role.ARS: ("--region", region),
        Role.CENTRE: ("--centre", centre),
        Role.CENTRE_15: ("--samu", samu),
        Role.REFERRER: ("--referrer", referrer),
        # The data-protection officer acts for the organisation (its name is enough).
        Role.DPO: ("--centre", centre or "dpo"),
    }
    option, value = wanted[role]
    if not value:
        typer.echo(f"refusé : le rôle {role.value} demande {option}", err=True)
        raise typer.Exit(1)
    return value


REFERRER_KINDS = ("gp", "sos_medecins", "emergency_department")


def _referrer_actor(kind: str, identifier: str) -> str:
    """A referrer account acts for ``<kind>-<identifier>`` (gp-10001234567): the
    console refers in that referrer's name (aiguillage/console/referral_form.py)."""
    if kind not in REFERRER_KINDS:
        typer.echo(f"refusé : --referrer-kind est l'un de {', '.join(REFERRER_KINDS)}", err=True)
        raise typer.Exit(1)
    return f"{kind}-{identifier}"


@user_app.command("add")
def user_add(
    login: Annotated[str, typer.Option(help="Identifier, e-mail-like: a.martin@ars.fr.")],
    name: Annotated[str, typer.Option(help="Display name: A. Martin.")],
    role: Annotated[Role, typer.Option(help="ars, centre, centre_15, referrer or dpo.")],
    region: Annotated[
        str | None, typer.Option(help="ARS: the region's code (11 Île-de-France, 53 Bretagne).")
    ] = None,
    centre: Annotated[str | None, typer.Option(help="Centre: the centre's identifier.")] = None,
    samu: Annotated[str | None, typer.Option(help="Centre 15: samu-<département>.")] = None,
    referrer: Annotated[
        str | None, typer.Option(help="Referrer: the referrer's id (RPPS, FINESS...).")
    ] = None,
    referrer_kind: Annotated[
        str,
        typer.Option(help="Referrer: gp, sos_medecins or emergency_department."),
    ] = "gp",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a person's account; prints the generated password once."""
    actor = _actor(role, region, centre, samu, referrer)
    if role is Role.REFERRER:
        actor = _referrer_actor(referrer_kind, actor)
    given = _stdin_password() if password_stdin else None
    account, password = _run_store(lambda store: store.add(login, name, role, actor, given))
    typer.echo(f"compte créé : {account.login} ({account.role.value} {account.actor})")
    if given is None:
        # Shown once: only its argon2id hash is kept.
        typer.echo(f"mot de passe (affiché une seule fois) : {password}")


@user_app.command("reset")
def user_reset(
    login: Annotated[str, typer.Argument(help="The account's identifier.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """A new password (re-enables the account, ends its sessions); printed once."""
    given = _stdin_password() if password_stdin else None
    password = _run_store(lambda store: store.reset(login, given))
    typer.echo(f"mot de passe de {login} changé ; ses sessions sont fermées")
    if given is None:
        typer.echo(f"nouveau mot de passe (affiché une seule fois) : {password}")


@user_app.command("disable")
def user_disable(login: Annotated[str, typer.Argument(help="The account's identifier.")]) -> None:
    """Disable an account and end its open sessions at once."""
    revoked = _run_store(lambda store: store.disable(login))
    typer.echo(f"compte {login} désactivé ; {revoked} session(s) fermée(s)")


@user_app.command("list")
def user_list() -> None:
    """Every account: login, role, what it acts for, state, last change (Paris time)."""
    for account in _run_store(lambda store: store.all()):
        state = "désactivé" if account.disabled else "actif"
        changed = account.updated_at.astimezone(PARIS).strftime("%Y-%m-%d %H:%M Europe/Paris")
        typer.echo(
            f"{account.login:<40} {account.role.value:<10} {account.actor:<24} "
            f"{state:<10} {changed}  {account.name}"
        )


@app.command("screenshots")
def screenshots(
    ars: Annotated[str | None, typer.Option(help="An ARS person's login.")] = None,
    centre: Annotated[str | None, typer.Option(help="A centre coordinator's login.")] = None,
    regulator: Annotated[str | None, typer.Option(help="A regulator's login.")] = None,
    out: Annotated[Path, typer.Option(help="Folder of the PNG files.")] = Path("docs/screenshots"),
    url: Annotated[str, typer.Option(help="The running console.")] = "http://127.0.0.1:8080",
) -> None:
    """Screenshots of the pages of a running console (headless Chromium), one per login
    given; their passwords are read from stdin, one a line, ARS, centre, regulator."""
    from aiguillage.console.screenshots import find_chromium, take_screenshots

    find_chromium()  # before reading passwords: a missing browser is said at once
    logins = [
        (login, sys.stdin.readline().rstrip("\n"), page)
        for login, page in ((ars, "territoire"), (centre, "centre"), (regulator, "centre-15"))
        if login
    ]
    for path in take_screenshots(url.rstrip("/"), out, logins):
        typer.echo(f"wrote {path}")
