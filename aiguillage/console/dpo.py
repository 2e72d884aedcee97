"""The data-protection officer's page (issue 34): who read which patient's identity,
when, from which page and why, per patient (a referral's number: every referral of
that patient) and per account, in French, and its export as a CSV file.

The log is kept where the identity is served, and written there with the read:
intake's (the owner of the identities: the Centre 15 desk and files, the referrers'
lists, the APIs) and the notifier's (the names on a centre's day list, from the contacts
it keeps to tell the patients). This page reads both with the DPO's token, and lists
them together, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from aiguillage.console.auth import ROLE_LABELS, Actor
from aiguillage.console.common import PARIS, Console, ConsoleDep, ServiceError, actor_of, page
from aiguillage.console.export import csv_download
from shared.auth import Role

router = APIRouter()

HOME = "/protection-des-donnees"
# What each route that returns an identity is, said to the DPO.
ROUTE_LABELS = {
    "GET /referrals/{id}": "dossier d'un patient (rappel par le Centre 15)",
    "GET /escalations": "liste des patients à rappeler (Centre 15)",
    "GET /referrals": "liste « Mes demandes » de l'adresseur",
    "GET /centres/{id}/appointments": "liste du jour d'un centre (patients attendus)",
}
# The services that keep a log of identity reads (``GET /identity-reads``).
LOGS = ("intake", "notifier")
HEADER = ("Date (heure de Paris)", "Dossier", "Lecteur", "Rôle", "Compte", "Accès", "Page", "Motif")


def _filters(request: Request) -> dict[str, str]:
    query = request.query_params
    return {
        "dossier": query.get("dossier", "").strip()[:64],
        "compte": query.get("compte", "").strip()[:320],
    }


async def _reads(
    console: Console, request: Request, actor: Actor
) -> tuple[list[dict[str, Any]], str | None]:
    wanted = _filters(request)
    found: list[dict[str, Any]] = []
    errors = []
    for service in LOGS:
        try:
            answer = await console.call(
                actor,
                "GET",
                service,
                "/identity-reads",
                referral_id=wanted["dossier"] or None,
                account=wanted["compte"] or None,
                limit=2000,
            )
        except ServiceError as exc:
            # The other log is still shown; the page says which one is missing.
            errors.append(str(exc))
            continue
        found += answer["reads"]
    found.sort(key=lambda r: datetime.fromisoformat(r["at"]), reverse=True)
    return [_in_french(r) for r in found], " ; ".join(errors) or None


def _in_french(read: dict[str, Any]) -> dict[str, Any]:
    role = {r.value: label for r, label in ROLE_LABELS.items()}.get(read["reader_role"])
    return {
        **read,
        "quand": datetime.fromisoformat(read["at"]).astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S"),
        "role": role or read["reader_role"],
        "acces": ROUTE_LABELS.get(read["route"], read["route"]),
    }


@router.get(HOME)
async def reads_page(request: Request, console: ConsoleDep) -> HTMLResponse:
    actor = await actor_of(request, Role.DPO)
    reads, error = await _reads(console, request, actor)
    return page(
        request,
        "dpo.html",
        actor,
        reads=reads,
        service_error=error,
        filtres=_filters(request),
        export_query=request.url.query,
    )


@router.get(f"{HOME}/export.csv")
async def reads_export(request: Request, console: ConsoleDep) -> Response:
    reads, error = await _reads(console, request, await actor_of(request, Role.DPO))
    if error is not None:
        return HTMLResponse(f"Export impossible : {error}", status_code=502)
    rows = [
        (
            r["quand"],
            r["referral_id"],
            r["reader"],
            r["role"],
            r["account"],
            r["acces"],
            r["page"],
            r["reason"],
        )
        for r in reads
    ]
    return csv_download("acces-identites.csv", HEADER, rows)
