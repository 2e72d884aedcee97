"""What Centre 15 does with regulation: load a protocol version, decide on a referral,
read the audit trail and the referrals held for a regulator."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

from aiguillage.commands.common import publish
from aiguillage.reach import http_api, reaching
from services.regulation import Protocol, load_protocol
from shared.auth import Role, issue_token
from shared.events import Decision, Priority, ProtocolPublished, RegulationDecided
from shared.paris import paris_zone
from shared.settings import ServiceName, Settings, get_settings
from shared.territory import NATIONAL

app = typer.Typer(
    help="Centre 15 and regulation: protocol versions, regulators' decisions, the audit trail.",
    no_args_is_help=True,
)
protocol_app = typer.Typer(help="Versions of the regulation protocol.", no_args_is_help=True)
app.add_typer(protocol_app, name="protocol")

SOURCE = "centre_15"
# Whom the commands read regulation's API as: a SAMU (``--samu``), its départements
# only, or the national Centre 15, where the deployment enables it (shared.territory).
SAMU_OPTION = typer.Option(
    "--samu", help="Read as this SAMU (samu-35), its départements only; default: national."
)


def validation_errors(exc: ValidationError) -> list[str]:
    """One line per error: where in the document, and what is wrong."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        lines.append(f"{where}: {error['msg']}")
    return lines


def protocol_event(protocol: Protocol) -> ProtocolPublished:
    # The validated document, normalised: what regulation stores and compares.
    return ProtocolPublished(
        protocol_version=protocol.version, document=protocol.model_dump(mode="json")
    )


@protocol_app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="A protocol document (JSON), e.g. v2.json.")],
) -> None:
    """Validate a protocol document, then publish it (protocol.published): regulation
    applies it to every decision from then on."""
    try:
        protocol = load_protocol(file)
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        typer.echo(f"{file} is not a valid protocol; nothing published:", err=True)
        for line in validation_errors(exc):
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1) from exc
    event_id = publish(
        get_settings(), SOURCE, protocol_event(protocol), f"protocol:{protocol.version}"
    )
    typer.echo(f"protocol.published version {protocol.version} (event {event_id})")


@app.command()
def decide(
    referral: Annotated[str, typer.Argument(help="The referral's id.")],
    decision: Annotated[Decision, typer.Option(help="The decision that stands from now on.")],
    regulator: Annotated[str, typer.Option(help="The regulator's identifier (e.g. DR-x).")],
    priority: Annotated[
        Priority | None,
        typer.Option(help="Orientations only; default: the protocol's for the case."),
    ] = None,
    comment: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """A regulator confirms, changes or releases a referral's decision (regulation.decided)."""
    if priority is not None and decision is not Decision.ORIENT:
        typer.echo(f"a priority applies to an orientation only, not to {decision.value}", err=True)
        raise typer.Exit(2)
    payload = RegulationDecided(
        referral_id=referral,
        regulator_id=regulator,
        decision=decision,
        priority=priority,
        comment=comment,
    )
    event_id = publish(get_settings(), SOURCE, payload, referral)
    typer.echo(f"regulation.decided {decision.value} for {referral} published (event {event_id})")


class ApiError(Exception):
    pass


async def get_from_regulation(
    settings: Settings, path: str, samu: str | None = None
) -> dict[str, Any]:
    """GET on regulation's HTTP API, as a SAMU's Centre 15 or the national one (a token
    issued from the auth secret)."""
    port = settings.http_port(ServiceName.REGULATION)
    if port is None:
        raise ApiError("regulation serves no HTTP API (AIGUILLAGE_REGULATION_HTTP_PORT is empty)")
    url = f"http://127.0.0.1:{port}{path}"
    token = issue_token(settings, Role.CENTRE_15, samu or NATIONAL, ServiceName.REGULATION)
    # Not answering: one line and exit 2, said at the command's top (aiguillage/errors.py).
    with reaching(http_api(ServiceName.REGULATION, port)):
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        detail = response.json().get("detail") if response.content else None
        raise ApiError(f"{url}: HTTP {response.status_code} {detail or response.text}")
    body: dict[str, Any] = response.json()
    return body


def _when(text: str | None) -> str:
    # Paris time, labelled, whatever the zone of the machine running the command.
    return paris_zone(datetime.fromisoformat(text), "%Y-%m-%d %H:%M:%S") if text else "-"


def describe_trail(trail: dict[str, Any]) -> list[str]:
    lines = [f"referral {trail['referral_id']}: {len(trail['decisions'])} decision(s)"]
    for d in trail["decisions"]:
        what = d["decision"]
        if d["priority"]:
            what += f" {d['priority']} by {_when(d['deadline'])}"
        lines.append(
            f"{'*' if d['current'] else ' '} {_when(d['decided_at'])}  {d['decided_by']:<16} "
            f"{what}  protocol v{d['protocol_version']}  "
            f"test {'yes' if d['test_eligible'] else 'no'}  [{d['decision_id']}]"
        )
        if d["supersedes"]:
            lines.append(f"    supersedes {d['supersedes']}")
        if d["comment"]:
            lines.append(f"    comment: {d['comment']}")
        lines.extend(f"    - {r['code']}: {r['message']}" for r in d["reasons"])
    lines.append("(* the decision that stands)")
    return lines


def _run_or_exit(path: str, samu: str | None) -> dict[str, Any]:
    try:
        return asyncio.run(get_from_regulation(get_settings(), path, samu))
    except ApiError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@app.command()
def audit(
    referral: Annotated[str, typer.Argument(help="The referral's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON as is.")] = False,
    samu: Annotated[str | None, SAMU_OPTION] = None,
) -> None:
    """Every decision on a referral: automatic or human, who, when, protocol version, why."""
    trail = _run_or_exit(f"/referrals/{referral}/decisions", samu)
    if as_json:
        typer.echo(json.dumps(trail, indent=2, ensure_ascii=False))
        return
    for line in describe_trail(trail):
        typer.echo(line)


@app.command()
def held(
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON as is.")] = False,
    samu: Annotated[str | None, SAMU_OPTION] = None,
) -> None:
    """The referrals held for a regulator, longest waiting first."""
    queue = _run_or_exit("/held", samu)["held"]
    if as_json:
        typer.echo(json.dumps(queue, indent=2, ensure_ascii=False))
        return
    for case in queue:
        lead = case["reasons"][0]["message"] if case["reasons"] else ""
        typer.echo(
            f"{_when(case['held_since'])}  {case['referral_id']}  age {case['age']}  "
            f"dep {case['departement']}  protocol v{case['protocol_version']}  {lead}"
        )
    typer.echo(f"{len(queue)} held")
