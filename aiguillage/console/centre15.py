"""Centre 15's desk: the referrals held for a regulator (regulation's API) and those
escalated (intake's), and the regulator's decisions on them, in the regulator's name."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from aiguillage.console.auth import Actor
from aiguillage.console.common import (
    PARIS,
    Console,
    ConsoleDep,
    Refused,
    ServiceError,
    actor_of,
    back,
    form_of,
    page,
    record,
)
from aiguillage.console.timeline import timeline
from shared.auth import Role
from shared.territory import OUTSIDE_TERRITORY

router = APIRouter()


async def desk_context(console: Console, actor: Actor) -> dict[str, Any]:
    try:
        held = (await console.call(actor, "GET", "regulation", "/held"))["held"]
        # Kept by intake: escalated while no console was open, still listed.
        escalated = (await console.call(actor, "GET", "intake", "/escalations"))["escalations"]
        error = None
    except ServiceError as exc:
        held, escalated, error = [], [], str(exc)
    return {
        "held": held,
        "escalations": escalated,
        "service_error": error,
        "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
    }


@router.get("/centre-15")
async def desk(request: Request, console: ConsoleDep) -> HTMLResponse:
    actor = await actor_of(request, Role.CENTRE_15)
    return page(request, "centre15.html", actor, **await desk_context(console, actor))


@router.get("/centre-15/fragment")
async def desk_fragment(request: Request, console: ConsoleDep) -> HTMLResponse:
    actor = await actor_of(request, Role.CENTRE_15)
    return page(request, "_centre15.html", actor, **await desk_context(console, actor))


@router.get("/centre-15/dossiers/{referral_id}")
async def referral_timeline(request: Request, referral_id: str, console: ConsoleDep) -> Response:
    """A referral's decisions as a timeline, and the patient's identity when the file is
    in the regulator's queue (escalated); outside it, the page asks why before showing
    it (issue 34). Another SAMU's referral reads as unknown."""
    return await _dossier(request, referral_id, console, reason=None)


@router.post("/centre-15/dossiers/{referral_id}/identite")
async def identity_with_reason(request: Request, referral_id: str, console: ConsoleDep) -> Response:
    """A file outside the regulator's queue: its identity, once they said why (the
    reason is written down with the read, by intake)."""
    await actor_of(request, Role.CENTRE_15)
    reason = (await form_of(request)).get("motif", "")
    if len(reason) < 5:
        path = f"/centre-15/dossiers/{quote(referral_id, safe='')}"
        return back(
            path, "Indiquez le motif de l'accès à ce dossier (5 caractères au moins).", False
        )
    return await _dossier(request, referral_id, console, reason=reason)


async def _dossier(
    request: Request, referral_id: str, console: Console, reason: str | None
) -> Response:
    actor = await actor_of(request, Role.CENTRE_15)
    quoted = quote(referral_id, safe="")
    try:
        trail = await console.call(actor, "GET", "regulation", f"/referrals/{quoted}/decisions")
    except ServiceError as exc:
        return back("/centre-15", f"Historique du dossier {referral_id[:8]} : {exc}", False)
    try:
        answer = await console.call(actor, "GET", "intake", f"/referrals/{quoted}", reason=reason)
        identity = answer.get("identity")
    except ServiceError:
        identity = None  # not in the queue (nor its territory's, nor asked with a reason)
    return page(
        request,
        "dossier.html",
        actor,
        referral_id=referral_id,
        entries=timeline(trail),
        identity=identity,
        hors_file=reason is not None,
        motif=reason,
    )


@router.post("/centre-15/dossiers/{referral_id}/decision")
async def decide(request: Request, referral_id: str, console: ConsoleDep) -> Response:
    actor = await actor_of(request, Role.CENTRE_15)
    form = await form_of(request)
    body = {
        "decision": form.get("decision"),
        "priority": form.get("priorite") or None,
        "comment": form.get("commentaire", ""),
    }
    try:
        await console.call(actor, "POST", "regulation", f"/referrals/{referral_id}/decision", body)
    except ServiceError as exc:
        if exc.code == OUTSIDE_TERRITORY:
            raise Refused(exc.detail) from exc  # 403, said in French
        return back("/centre-15", str(exc), False)
    await record(request, "regulation.decision", json.dumps(body), referral_id=referral_id)
    return back("/centre-15", f"Décision enregistrée pour le dossier {referral_id[:8]}.")
