"""The `aiguillage broker` commands: users and permissions on the broker (least privilege)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from shared.provisioning import (
    Plan,
    ProvisioningError,
    Rabbitmqctl,
    apply,
    broker_url,
    build_plan,
    definitions,
    new_password,
)
from shared.settings import get_settings
from shared.topology import events_exchange

app = typer.Typer(
    help="The broker: a virtual host, one user per service and per actor, least privilege.",
    no_args_is_help=True,
)


def read_passwords(path: Path | None) -> dict[str, str]:
    """A JSON object {user: password}."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in document.items()
    ):
        raise ProvisioningError(f"{path}: expected a JSON object of user names to passwords")
    return document


def describe(plan: Plan) -> str:
    """What each user may do, for people."""
    exchange = events_exchange(plan.namespace)
    width = max(len(a.user) for a in plan.accounts)
    lines = [f"virtual host {plan.vhost!r}, namespace {plan.namespace!r}", ""]
    lines.append(f"publishes: routing keys on {exchange}; reads: queues")
    for account in plan.accounts:
        lines.append(f"{account.user.ljust(width)}  ({account.kind.value})")
        lines.append(f"{''.ljust(width)}    publishes  {', '.join(account.publishes)}")
        lines.append(f"{''.ljust(width)}    reads      {', '.join(account.reads)}")
    return "\n".join(lines)


def describe_passwords(
    plan: Plan,
    passwords: Mapping[str, str | None],
    base_url: str,
    given: frozenset[str] = frozenset(),
) -> str:
    width = max(len(user) for user in passwords)
    lines = ["", "Passwords (shown once: store them now):"]
    for user, password in passwords.items():
        if password is None:
            lines.append(f"  {user.ljust(width)}  unchanged")
        elif user in given:
            # The operator has it already; printed, it would sit in logs (a container's).
            lines.append(f"  {user.ljust(width)}  from the password file")
        else:
            url = broker_url(base_url, user, password, plan.vhost)
            lines.append(f"  {user.ljust(width)}  {password}  {url}")
    lines.append("Each service takes its URL as AIGUILLAGE_BROKER_URL.")
    return "\n".join(lines)


# The options of `provision`, one alias each (the command's signature stays readable).
Centres = Annotated[
    list[str] | None,
    typer.Option("--centre", help="A centre's id: a user that reads its queue only. Repeat."),
]
Referrers = Annotated[
    list[str] | None,
    typer.Option(
        "--referrer",
        help="A referrer's reply key (its reply_to): a user answered on it only. Repeat.",
    ),
]
Samus = Annotated[
    list[str] | None,
    typer.Option(
        "--samu",
        help="A SAMU (samu-35): a Centre 15 user for its own départements, answered on "
        "its own key. Repeat.",
    ),
]
NationalCentre15 = Annotated[
    bool | None,
    typer.Option(
        "--national-centre-15/--no-national-centre-15",
        help="The national centre_15 user, every département (default: "
        "AIGUILLAGE_CENTRE_15_NATIONAL).",
    ),
]
ArsRegions = Annotated[
    list[str] | None,
    typer.Option(
        "--ars-region",
        help="A region's INSEE code (53): its ARS's user ars-<region>, for the centres "
        "of its region and its départements' alerts only. Repeat.",
    ),
]
Vhost = Annotated[str | None, typer.Option(help="Virtual host (default: the namespace).")]
Namespace = Annotated[
    str | None, typer.Option(help="Namespace of exchanges and queues (AIGUILLAGE_NAMESPACE).")
]
UserSuffix = Annotated[
    str, typer.Option(help="Appended to every user name (several deployments, one broker).")
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(help="JSON {user: password}: these passwords are set, the rest generated."),
]
RotatePasswords = Annotated[
    bool, typer.Option(help="New passwords for existing users too (else they keep theirs).")
]
DefinitionsFile = Annotated[
    Path | None,
    typer.Option(
        "--definitions",
        help="Write a RabbitMQ definitions file (users, permissions, topology) instead "
        "of changing the broker, for brokers that import definitions at boot.",
    ),
]
Administrator = Annotated[
    str | None,
    typer.Option(
        "--administrator",
        help="Also an administrator with every right on the virtual host (a broker that "
        "imports definitions at boot creates no default user).",
    ),
]
RabbitmqctlPath = Annotated[str, typer.Option(help="The rabbitmqctl to run.")]
Node = Annotated[str | None, typer.Option(help="RabbitMQ node (rabbitmqctl -n).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing.")]


@app.command()
def provision(
    centre: Centres = None,
    referrer: Referrers = None,
    samu: Samus = None,
    national_centre_15: NationalCentre15 = None,
    ars_region: ArsRegions = None,
    vhost: Vhost = None,
    namespace: Namespace = None,
    user_suffix: UserSuffix = "",
    password_file: PasswordFile = None,
    rotate_passwords: RotatePasswords = False,
    definitions_file: DefinitionsFile = None,
    administrator: Administrator = None,
    rabbitmqctl: RabbitmqctlPath = "rabbitmqctl",
    node: Node = None,
    dry_run: DryRun = False,
) -> None:
    """Create the virtual host, the users and their permissions (idempotent)."""
    settings = get_settings()
    ns = namespace or settings.namespace
    try:
        plan = build_plan(
            ns,
            vhost or ns,
            centres=centre or [],
            referrers=referrer or [],
            user_suffix=user_suffix,
            administrator=administrator,
            samus=samu or [],
            national_centre_15=(
                settings.centre_15_national if national_centre_15 is None else national_centre_15
            ),
            ars_regions=ars_region or [],
        )
        plan = replace(plan, dead_letter_ttl_days=settings.retention_dead_letter_days)
        typer.echo(describe(plan))
        if dry_run:
            return
        given = read_passwords(password_file)
        unknown = sorted(set(given) - set(plan.users))
        if unknown:
            raise ProvisioningError(f"{password_file}: users not in the plan: {unknown}")
        if definitions_file is not None:
            passwords = write_definitions(plan, given, definitions_file)
        else:
            ctl = Rabbitmqctl(rabbitmqctl, node)
            passwords = apply(plan, ctl, given, rotate=rotate_passwords)
            typer.echo(f"\nprovisioned {plan.vhost!r} on the broker")
    except ProvisioningError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(describe_passwords(plan, passwords, settings.broker_url, frozenset(given)))


def write_definitions(plan: Plan, given: Mapping[str, str], path: Path) -> dict[str, str | None]:
    """The definitions file for a broker that imports them at boot: the passwords given,
    the others new; the passwords, to show."""
    passwords: dict[str, str | None] = {
        user: given.get(user) or new_password() for user in plan.users
    }
    document = definitions(plan, {u: p for u, p in passwords.items() if p})
    path.write_text(json.dumps(document, indent=2) + "\n")
    typer.echo(f"\nwrote {path}")
    return passwords
