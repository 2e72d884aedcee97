"""The `aiguillage secrets` commands: fresh secrets for a production deployment.

A service or the console in production refuses to start on a missing, public or short
secret (``Settings.check_secrets``); this is the command its message names.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import SECRET_SETTINGS, Environment, ServiceName, env_name

app = typer.Typer(
    help="Secrets of a deployment: the services' keys and the broker's and database's passwords.",
    no_args_is_help=True,
)

# What docker-compose.yml requires on top of the services' own secrets: the broker's
# administrator, each service's and each outside actor's broker user, the database.
# They share the .env that `docker compose` reads beside the file; the services ignore
# them (their settings all start with AIGUILLAGE_).
# Each SAMU's Centre 15 user (provision --samu) and each region's ARS user (provision
# --ars-region) are the operator's to add, per SAMU and per region.
BROKER_USERS = tuple(s.value for s in ServiceName)
COMPOSE_SECRETS = (
    "RABBITMQ_PASSWORD",
    # The RabbitMQ nodes' shared Erlang cookie (docker-compose.yml's cluster profile).
    "RABBITMQ_ERLANG_COOKIE",
    "POSTGRES_PASSWORD",
    *(f"{user.upper()}_BROKER_PASSWORD" for user in BROKER_USERS),
)


def secret_variables() -> tuple[str, ...]:
    """Every variable `secrets generate` writes a fresh value for."""
    return (*(env_name(field) for field in SECRET_SETTINGS), *COMPOSE_SECRETS)


def render() -> str:
    """A .env with a fresh random value for every secret, in production mode."""
    # token_urlsafe: 43 characters from [A-Za-z0-9_-], so a password goes into an
    # AMQP or PostgreSQL URL as it is, with no escaping.
    lines = [
        "# Written by `aiguillage secrets generate`: keep it out of version control.",
        f"AIGUILLAGE_ENVIRONMENT={Environment.PRODUCTION.value}",
    ]
    lines += [f"{name}={secrets.token_urlsafe(32)}" for name in secret_variables()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` readable by its owner only (0600), never over a file unless
    ``force``. The mode is set at creation, so the secrets are never readable by others,
    not even for an instant."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    descriptor = os.open(path, flags, 0o600)
    # A file that existed keeps its mode on open: an overwritten one gets 0600 too.
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


@app.command()
def generate(
    output: Annotated[Path, typer.Option(help="The file to write.")] = Path(".env"),
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing file. Every secret changes: tokens, webhook "
            "signatures, broker and database passwords and the pseudonymous patient "
            "references of a running deployment stop matching.",
        ),
    ] = False,
) -> None:
    """Write a .env (mode 0600) with a fresh random value for every secret and
    AIGUILLAGE_ENVIRONMENT=production."""
    try:
        write_private(output, render(), force=force)
    except FileExistsError:
        typer.echo(
            f"error: {output} exists: its secrets may be in use (the pseudonymous "
            "references depend on them). Add --force to replace it",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(
        f"wrote {output} (mode 0600): AIGUILLAGE_ENVIRONMENT=production and "
        f"{', '.join(secret_variables())}. Keep it out of version control."
    )
