"""The operator's register of referrers: where each is answered, and how its patients
may be told. Intake believes this register, never what a submission says of itself.

The command writes intake's database directly (``AIGUILLAGE_INTAKE_DATABASE_URL``, or the
SQLite file under the data folder), after bringing it to intake's latest migration. Why
not intake's HTTP API: registering is the operator's act, and holding the database's
credentials is what makes one the operator here; it works before intake ever started
(the registrations a first start needs in production), and it needs no operator role in
the tokens the outside actors hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aiguillage.reach import database, reaching
from services.intake import (
    Registration,
    every_registration,
    register_referrer,
    remove_referrer,
)
from shared.db import Database
from shared.events import ReferrerKind, utcnow
from shared.http import development
from shared.migrations import upgrade
from shared.settings import ServiceName, Settings, get_settings
from shared.webhooks import WebhookPolicy, WebhookRefused, check_url

app = typer.Typer(
    help="Register referrers (webhook, reply key, patient channels): intake believes these.",
    no_args_is_help=True,
)

_CHANNELS = ("email", "sms")


T = TypeVar("T")


async def _with_intake(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    intake = Database(settings.database_url(ServiceName.INTAKE))
    # Not answering: one line and exit 2, said at the command's top (aiguillage/errors.py).
    try:
        with reaching(database(settings, ServiceName.INTAKE)):
            await upgrade(intake, "services.intake:migrations")
            async with intake.transaction() as session:
                return await work(session)
    finally:
        await intake.dispose()


def _channels(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    unknown = [c for c in chosen if c not in _CHANNELS]
    if unknown:
        raise typer.BadParameter(f"unknown channel {unknown[0]!r} (email, sms)")
    return chosen


@app.command("add")
def add(
    kind: Annotated[ReferrerKind, typer.Option(help="gp, sos_medecins, ...")],
    identifier: Annotated[str, typer.Option("--id", help="RPPS, FINESS, Centre 15's id.")],
    name: Annotated[str | None, typer.Option(help="Who it is, for the patient's notice.")] = None,
    reply_to: Annotated[
        str | None, typer.Option("--reply-to", help="Broker key of its answers: reply.<key>.")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="Its webhook URL (https; a public address).")
    ] = None,
    channels: Annotated[
        str, typer.Option(help="How its patients may be told: email, sms (comma-separated).")
    ] = "",
) -> None:
    """Register a referrer, or replace its registration."""
    settings = get_settings()
    if webhook is not None:
        try:
            # The address a name resolves to is judged at each send; a literal, now.
            check_url(webhook, WebhookPolicy.for_environment(development(settings)))
        except WebhookRefused as exc:
            raise typer.BadParameter(f"{exc.code}: {exc}", param_hint="--webhook") from exc
    registration = Registration(
        kind.value, identifier, name, reply_to, webhook, _channels(channels)
    )
    try:
        registration.ref()  # the same bounds as on the bus (reply key, URL length...)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[0]) from exc

    async def work(session: AsyncSession) -> bool:
        return await register_referrer(session, registration, utcnow())

    new = asyncio.run(_with_intake(settings, work))
    typer.echo(f"{'registered' if new else 'updated'} {kind.value}:{identifier}")


@app.command("list")
def list_() -> None:
    """Every registered referrer."""

    async def work(session: AsyncSession) -> list[Registration]:
        return await every_registration(session)

    for r in asyncio.run(_with_intake(get_settings(), work)):
        typer.echo(
            f"{r.kind}:{r.identifier}\tname={r.name or '-'}\treply_to={r.reply_to or '-'}"
            f"\twebhook={r.webhook_url or '-'}\tchannels={','.join(r.patient_channels) or '-'}"
        )


@app.command("remove")
def remove(
    kind: Annotated[ReferrerKind, typer.Option(help="gp, sos_medecins, ...")],
    identifier: Annotated[str, typer.Option("--id", help="Its identifier.")],
) -> None:
    """Strike a referrer off: its next submission is refused (outside development)."""

    async def work(session: AsyncSession) -> bool:
        return await remove_referrer(session, kind.value, identifier)

    if not asyncio.run(_with_intake(get_settings(), work)):
        typer.echo(f"{kind.value}:{identifier} is not registered", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {kind.value}:{identifier}")
