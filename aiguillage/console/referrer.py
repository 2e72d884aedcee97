"""The referrer's pages (a GP, an SOS Médecins doctor, an emergency department, a
Centre 15 regulator).

The referrer refers through intake's HTTP API with the bearer token of the referrer
the account acts for: intake validates, as for any other referrer, and its reasons
(French, each with its field) are shown beside the fields. Who refers comes from the
session, never from the form. The outcome is intake's status of the referral, read
again as the services' events come in (aiguillage/console/live.py).

The patient's page, reached by the link of the notice, is aiguillage/console/patient.py.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from aiguillage.console import referral_form as rf
from aiguillage.console.auth import Actor
from aiguillage.console.common import (
    Console,
    ConsoleDep,
    Refused,
    actor_of,
    back,
    page,
    record,
    service_headers,
)
from aiguillage.console.notice import WHAT_TO_BRING, day_and_time
from shared.auth import Role
from shared.events import WithdrawalReason
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR
from shared.patient_link import issue_link, link_url

REFERRING_ROLES = (Role.REFERRER, Role.CENTRE_15)
# Statuses that may still move on their own: the page keeps reading them.
PENDING = ("received", "regulated", "held_for_regulator", "waitlisted")
# The reasons a referrer withdraws a referral for (intake's codes), as the list offers
# them; intake answers with the same words.
WITHDRAWAL_CHOICES = tuple((r.value, WITHDRAWAL_REASONS_FR[r]) for r in WithdrawalReason)
NOT_YOURS = "Aucune de vos demandes ne porte ce numéro."
INTAKE_SILENT = "Le service d'accueil des demandes ne répond pas : réessayez."

router = APIRouter()


def referral_identity(actor: Actor) -> tuple[Actor, dict[str, Any]]:
    """The actor intake is called as, and the ``referrer`` of the referral: both from
    the account, never from the form. A regulator refers for their Centre 15."""
    if actor.role is Role.CENTRE_15:
        as_referrer = Actor(Role.CENTRE_15, actor.acts_for, actor.login, actor.name)
        return as_referrer, {"kind": "centre_15", "identifier": actor.acts_for}
    kind, identifier = rf.referrer_of_actor(actor.acts_for)
    as_referrer = Actor(Role.REFERRER, f"{kind}:{identifier}", actor.login, actor.name)
    referrer = {"kind": kind, "identifier": identifier}
    if actor.name:
        referrer["name"] = actor.name[:200]
    return as_referrer, referrer


async def referrer_of(request: Request) -> Actor:
    actor = await actor_of(request)
    if actor.role not in REFERRING_ROLES:
        raise Refused("Cette page est celle des médecins adresseurs et du Centre 15.")
    return actor


async def intake(
    console: Console, actor: Actor, method: str, path: str, body: Any = None, **params: Any
) -> httpx.Response:
    as_referrer, _ = referral_identity(actor)
    assert console.http is not None
    return await console.http.request(
        method,
        console.base_url("intake") + path,
        json=body,
        params={k: v for k, v in params.items() if v is not None},
        # The login and the page too: intake writes them down with a read of names.
        headers=service_headers(as_referrer, console.settings, "intake"),
    )


def form_context(**extra: Any) -> dict[str, Any]:
    return {
        "rf": rf,
        "field_id": rf.field_id,
        "reference": "web-" + secrets.token_hex(8),
        "values": {},
        "multi": {},
        "errors": {},
        "reasons": [],
        **extra,
    }


def respond(request: Request, actor: Actor, status: int, **context: Any) -> HTMLResponse:
    # The page's script asks for the form's part only (X-Fragment); without script
    # the whole page comes back, with the same content.
    name = "_adresser.html" if request.headers.get("X-Fragment") else "adresser.html"
    response = page(request, name, actor, **form_context(**context))
    response.status_code = status
    return response


@router.get("/adresser")
async def referral_page(request: Request) -> HTMLResponse:
    actor = await referrer_of(request)
    return page(request, "adresser.html", actor, **form_context())


@router.post("/adresser")
async def refer(request: Request, console: ConsoleDep) -> Response:
    actor = await referrer_of(request)
    raw = parse_qs((await request.body()).decode(), keep_blank_values=True)
    values = {k: v[0] for k, v in raw.items() if k != "csrf"}
    multi = {k: v for k, v in raw.items() if k != "csrf"}
    reference = values.get("reference") or "web-" + secrets.token_hex(8)
    _, referrer = referral_identity(actor)
    body = rf.build_referral(raw, referrer, reference[:100])
    try:
        answer = await intake(console, actor, "POST", "/referrals", body)
    except httpx.HTTPError:
        return respond(request, actor, 503, values=values, multi=multi, service_error=INTAKE_SILENT)
    data = answer.json() if answer.headers.get("content-type", "").startswith("app") else {}
    if answer.status_code in (200, 201):
        referral_id = data["referral_id"]
        await record(request, "referral.submitted", reference, referral_id=referral_id)
        return respond(request, actor, answer.status_code, submitted=referral_id)
    reasons = data.get("reasons") or [
        {"code": data.get("error_code", "refused"), "message": str(data.get("detail", ""))}
    ]
    return respond(
        request,
        actor,
        answer.status_code if answer.status_code < 500 else 502,
        values=values,
        multi=multi,
        reference=reference,
        reasons=reasons,
        errors=rf.errors_by_field(reasons),
    )


async def read_referral(console: Console, actor: Actor, referral_id: str) -> dict[str, Any] | None:
    try:
        answer = await intake(console, actor, "GET", f"/referrals/{referral_id}")
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    found: dict[str, Any] = answer.json()
    return found


def outcome_context(referral: dict[str, Any] | None) -> dict[str, Any]:
    detail = (referral or {}).get("detail") or {}
    given = detail.get("reasons")
    reasons: list[Any] = given if isinstance(given, list) else []
    return {
        "referral": referral,
        "detail": detail,
        "reasons": [r for r in reasons if isinstance(r, dict)],
        "pending": referral is None or referral.get("status") in PENDING,
        "when": day_and_time(detail.get("start")),
        "day_and_time": day_and_time,
        # Intake says whether it is at its end (seen, no-show, withdrawn, refused).
        "withdrawable": referral is not None and referral.get("final") is False,
        "withdrawal_choices": WITHDRAWAL_CHOICES,
    }


@router.get("/adresser/demandes/{referral_id}/fragment")
async def outcome_fragment(request: Request, referral_id: str, console: ConsoleDep) -> HTMLResponse:
    actor = await referrer_of(request)
    referral = await read_referral(console, actor, referral_id)
    return page(
        request,
        "_demande.html",
        actor,
        referral_id=referral_id,
        **outcome_context(referral),
    )


@router.get("/adresser/demandes/{referral_id}")
async def referral_detail(request: Request, referral_id: str, console: ConsoleDep) -> HTMLResponse:
    actor = await referrer_of(request)
    referral = await read_referral(console, actor, referral_id)
    if referral is None:
        raise Refused(NOT_YOURS)
    return page(
        request, "demande.html", actor, referral_id=referral_id, **outcome_context(referral)
    )


@router.post("/adresser/demandes/{referral_id}/retirer")
async def withdraw(request: Request, referral_id: str, console: ConsoleDep) -> Response:
    """The referrer withdraws its referral: the reason from the list, then a page
    that asks to confirm (no script needed), then intake, which checks the rest."""
    actor = await referrer_of(request)  # the session's, and its CSRF token
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    try:
        reason = WithdrawalReason(form.get("motif", ""))
    except ValueError:
        return back(
            f"/adresser/demandes/{referral_id}",
            "Choisissez le motif du retrait dans la liste.",
            ok=False,
        )
    if form.get("confirme") != "oui":
        referral = await read_referral(console, actor, referral_id)
        if referral is None:
            raise Refused(NOT_YOURS)
        return page(
            request,
            "retirer.html",
            actor,
            referral_id=referral_id,
            referral=referral,
            reason=reason.value,
            label=WITHDRAWAL_REASONS_FR[reason],
        )
    return await withdrawn(request, console, actor, referral_id, reason)


async def withdrawn(
    request: Request, console: Console, actor: Actor, referral_id: str, reason: WithdrawalReason
) -> Response:
    where = f"/adresser/demandes/{referral_id}"
    path = f"/referrals/{referral_id}/withdraw"
    try:
        answer = await intake(console, actor, "POST", path, {"reason": reason.value})
    except httpx.HTTPError:
        return back(where, INTAKE_SILENT, False)
    if answer.status_code == 404:
        raise Refused(NOT_YOURS)
    if answer.status_code == 409:  # at its end: intake says where it stands
        return back(where, answer.json()["reasons"][0]["message"], ok=False)
    if answer.status_code != 200:
        return back(where, f"Le service d'accueil a refusé ({answer.status_code}).", False)
    await record(request, "referral.withdrawn", reason.value, referral_id=referral_id)
    return back(
        where,
        "Demande retirée : le créneau éventuel est libéré, le centre et le patient sont prévenus.",
    )


@router.get("/adresser/demandes/{referral_id}/avis")
async def printable_notice(request: Request, referral_id: str, console: ConsoleDep) -> HTMLResponse:
    """The patient's appointment notice, to print and hand over: the same as the
    SMS or e-mail, with the patient's own link."""
    actor = await referrer_of(request)
    referral = await read_referral(console, actor, referral_id)
    detail = (referral or {}).get("detail") or {}
    if referral is None or referral.get("status") != "appointment" or not detail.get("end"):
        raise Refused("Cette demande n'a pas de rendez-vous à imprimer.")
    settings = console.settings
    token = issue_link(
        settings.patient_link_key,
        str(detail["appointment_id"]),
        referral_id,
        datetime.fromisoformat(str(detail["end"])),
    )
    response = page(
        request,
        "avis.html",
        actor,
        referral_id=referral_id,
        link=link_url(settings.patient_link_base_url, token),
        what_to_bring=WHAT_TO_BRING,
        **outcome_context(referral),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/mes-demandes")
async def my_referrals(
    request: Request, console: ConsoleDep, q: str = Query("", max_length=100)
) -> HTMLResponse:
    actor = await referrer_of(request)
    error = None
    listed: list[dict[str, Any]] = []
    try:
        answer = await intake(console, actor, "GET", "/referrals", q=q or None, limit=100)
        if answer.status_code == 200:
            listed = answer.json()["referrals"]
        else:
            error = f"Le service d'accueil a refusé ({answer.status_code})."
    except httpx.HTTPError:
        error = "Le service d'accueil des demandes ne répond pas."
    return page(
        request,
        "mes_demandes.html",
        actor,
        referrals=listed,
        q=q,
        service_error=error,
        day_and_time=day_and_time,
    )


@router.get("/communes")
async def commune_search(request: Request, q: str = "") -> Response:
    await referrer_of(request)
    if len(q) > rf.MAX_QUERY:
        return JSONResponse(
            {"error_code": "query_too_long", "message": "Recherche trop longue."},
            status_code=422,
        )
    return JSONResponse({"communes": rf.search_communes(q)})
