"""The ARS's pages: its region's territory, its decisions on centres, its audit trail.

The decisions go to the scheduler's API (the ARS's door, which judges them on the
centres as it stores them), with the region's token; each is recorded in the audit
trail in the person's name, and an ARS person acts on their own region only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from aiguillage.console.auth import Actor
from aiguillage.console.common import (
    KIND_LABELS,
    PARIS,
    AccountsDep,
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
from aiguillage.console.export import csv_download
from aiguillage.console.forecast_chart import forecast_chart, hours_text
from aiguillage.console.forecast_chart import rows as chart_rows
from aiguillage.console.notice import DAYS, MONTHS
from aiguillage.console.people import (
    ACTOR_ID,
    AuditEntry,
    region_codes,
    region_departements,
)
from aiguillage.console.svgmap import SATURATION, region_map
from aiguillage.hours import parse_hours
from shared.auth import Role
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreKind,
    CentreSuspended,
    EventPayload,
    OpeningPeriod,
)
from shared.geo import commune
from shared.labels import AUDIT_ACTIONS
from shared.regions import CENTRE_IN_OTHER_DEPARTEMENT, CENTRE_IN_OTHER_REGION
from shared.territory import OUTSIDE_TERRITORY

# The scheduler's refusals of an ARS's decision on a centre not of its region (as stored).
REGION_REFUSALS = frozenset(
    {OUTSIDE_TERRITORY, CENTRE_IN_OTHER_REGION, CENTRE_IN_OTHER_DEPARTEMENT}
)
ACTION_LABELS = dict(AUDIT_ACTIONS)

router = APIRouter()


async def region_view(
    console: Console, actor: Actor
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The départements and centres of the person's region (the scheduler shows an
    ARS its own region only; the console keeps to the region the account names)."""
    mine = region_departements(actor.acts_for)
    overview = await console.call(actor, "GET", "scheduler", "/territory")
    deps = [d for d in overview["departements"] if d["departement"] in mine]
    details = await asyncio.gather(
        *(console.call(actor, "GET", "scheduler", f"/territory/{d['departement']}") for d in deps)
    )
    return deps, [c for detail in details for c in detail["centres"]]


async def _forecast(console: Console, actor: Actor, code: str) -> dict[str, Any] | None:
    """The département's saturation forecast (issue 31), or None when the scheduler
    cannot give it now: the rest of the page stands without it."""
    try:
        view: dict[str, Any] = await console.call(
            actor, "GET", "scheduler", f"/territory/{quote(code)}/forecast"
        )
    except ServiceError:
        return None
    return view


async def region_forecasts(
    console: Console, actor: Actor, deps: list[dict[str, Any]], centres: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each département's forecast, its chart, its table and the reserve centres it
    suggests by name; put on the département too (``forecast``: the map says it)."""
    views = await asyncio.gather(*(_forecast(console, actor, d["departement"]) for d in deps))
    names = {c["centre_id"]: c for c in centres}
    out = []
    for dep, view in zip(deps, views, strict=True):
        if view is None:
            continue
        dep["forecast"] = view
        out.append(
            {
                "departement": dep["departement"],
                "name": dep.get("name") or "",
                "view": view,
                "text": hours_text(view),
                "chart": forecast_chart(view),
                "rows": chart_rows(view),
                "reserve": [
                    names.get(c, {"centre_id": c, "name": c}) for c in view["reserve_centres"]
                ],
            }
        )
    return out


async def territory_context(console: Console, actor: Actor) -> dict[str, Any]:
    mine = region_departements(actor.acts_for)
    try:
        deps, centres = await region_view(console, actor)
        forecasts = await region_forecasts(console, actor, deps, centres)
        # Kept by the scheduler: a request sent while no console was open is there.
        asked = await console.call(actor, "GET", "scheduler", "/reinforcements?limit=50")
    except ServiceError as exc:
        return {
            "service_error": str(exc),
            "departements": [],
            "centres": [],
            "map": None,
            "forecasts": [],
        }
    return {
        "departements": deps,
        # Issue 31: when each département will be full, and what to open.
        "forecasts": forecasts,
        "centres": centres,
        "map": region_map(actor.acts_for, deps, centres),
        "SATURATION": SATURATION,
        # Declared but not receiving: what the ARS can open again in two clicks.
        "reserve": [c for c in centres if c["status"] != "active"],
        "reinforcements": [r for r in asked["reinforcements"] if r["departement"] in mine],
        "region_name": region_codes().get(actor.acts_for, actor.acts_for),
        "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
    }


def check_commune(actor: Actor, payload: EventPayload) -> None:
    """A commune outside the person's region is refused here, naming it; the centre
    itself is judged by the scheduler, on the centre as it stores it (below)."""
    region = region_codes().get(actor.acts_for, actor.acts_for)
    if isinstance(payload, CentreActivated):
        place = commune(payload.commune_insee)
        if place is None or place.departement not in region_departements(actor.acts_for):
            raise Refused(
                f"La commune {payload.commune_insee} n'est pas dans votre région "
                f"({region}) : vous ne pouvez pas y activer de centre."
            )


@router.get("/territoire")
async def territory(request: Request, console: ConsoleDep, jour: str = "") -> HTMLResponse:
    actor = await actor_of(request, Role.ARS)
    day = _day(jour)
    try:
        history = await day_history(console, actor, day)
    except ServiceError as exc:
        history = {"departements": [], "error": str(exc)}
    return page(
        request,
        "territory.html",
        actor,
        kinds=KIND_LABELS,
        day=day.isoformat(),
        day_label=f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}",
        history=history,
        **await territory_context(console, actor),
    )


def _day(raw: str) -> date:
    """The day asked for (``jour=YYYY-MM-DD``), today in Paris by default or when
    unreadable."""
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return datetime.now(PARIS).date()


async def day_history(console: Console, actor: Actor, day: date) -> dict[str, Any]:
    """Booked, honoured, missed, waitlisted that day per département of the region
    (the scheduler counts; the region is the token's)."""
    answer: dict[str, Any] = await console.call(
        actor, "GET", "scheduler", f"/territory/days/{day.isoformat()}"
    )
    mine = region_departements(actor.acts_for)
    answer["departements"] = [d for d in answer["departements"] if d["departement"] in mine]
    return answer


# The export's columns: French headers, as a French spreadsheet shows them.
EXPORT_COLUMNS = (
    ("Date", "date"),
    ("Code département", "departement"),
    ("Département", "name"),
    ("Rendez-vous réservés", "booked"),
    ("Consultations honorées", "seen"),
    ("Patients absents", "no_show"),
    ("Mis en liste d'attente", "waitlisted"),
)


@router.get("/territoire/export.csv")
async def export(request: Request, console: ConsoleDep, jour: str = "") -> Response:
    """The ARS's table of the day as CSV (``;``, UTF-8 with BOM), streamed: counts per
    département, no identity (the scheduler's day has none)."""
    actor = await actor_of(request, Role.ARS)
    day = _day(jour)
    try:
        history = await day_history(console, actor, day)
    except ServiceError as exc:
        return back("/territoire", str(exc), False)
    name = f"territoire-{actor.acts_for}-{day.isoformat()}.csv"
    rows = (
        [day.isoformat() if key == "date" else row.get(key) for _, key in EXPORT_COLUMNS]
        for row in history["departements"]
    )
    return csv_download(name, [label for label, _ in EXPORT_COLUMNS], rows)


@router.get("/territoire/fragment")
async def territory_fragment(request: Request, console: ConsoleDep) -> HTMLResponse:
    actor = await actor_of(request, Role.ARS)
    return page(request, "_territory.html", actor, **await territory_context(console, actor))


async def ars_decision(
    request: Request,
    console: Console,
    build: Callable[[dict[str, str]], EventPayload],
    done: str,
) -> Response:
    actor = await actor_of(request, Role.ARS)
    form = await form_of(request)
    try:
        payload = build(form)
    except (ValidationError, ValueError) as exc:
        return back("/territoire", f"Formulaire incomplet ou invalide : {_short(exc)}", False)
    centre_id = str(getattr(payload, "centre_id", ""))
    check_commune(actor, payload)
    path, body = _decision_call(payload)
    try:
        # Through the ARS's door, the scheduler's API, with the region's token: the
        # scheduler judges it on the centre as it stores it (a Paris id activated
        # with a Breton commune is Paris's, and refused), as for any ARS.
        answer = await console.call(actor, "POST", "scheduler", path, body)
    except ServiceError as exc:
        if exc.code in REGION_REFUSALS:
            raise Refused(exc.detail) from exc  # 403, said in French
        return back("/territoire", str(exc), False)
    event_id = str(answer["event_id"])
    await record(
        request,
        payload.event_type,
        payload.model_dump_json(exclude_none=True),
        centre_id=centre_id,
        event_id=event_id,
    )
    return back("/territoire", done.format(centre=centre_id))


def _activation(form: dict[str, str]) -> EventPayload:
    if commune(form.get("commune", "")) is None:
        raise ValueError(f"aucune commune de code INSEE {form.get('commune')!r}")
    return CentreActivated(
        centre_id=form.get("centre_id", ""),
        name=form.get("nom", ""),
        kind=CentreKind(form.get("type", CentreKind.TEMPORARY_DEDICATED.value)),
        commune_insee=form["commune"],
        address=form.get("adresse") or None,
        opening_hours=parse_hours(form.get("horaires") or "all 08:00-20:00"),
        boxes=int(form.get("boxes") or 2),
        consultation_minutes=int(form.get("minutes") or 20),
        first_day=date.fromisoformat(form.get("premier_jour") or date.today().isoformat()),
    )


def _capacity(form: dict[str, str]) -> EventPayload:
    return CentreCapacityChanged(
        centre_id=form.get("centre_id", ""),
        boxes=int(form["boxes"]) if form.get("boxes") else None,
        consultation_minutes=int(form["minutes"]) if form.get("minutes") else None,
        opening_hours=parse_hours(form["horaires"]) if form.get("horaires") else None,
        from_date=date.fromisoformat(form.get("a_partir_du") or date.today().isoformat()),
    )


def _suspension(form: dict[str, str]) -> EventPayload:
    if not ACTOR_ID.match(form.get("centre_id", "")):
        raise ValueError("identifiant de centre invalide")
    return CentreSuspended(
        centre_id=form["centre_id"], reason=form.get("motif") or "suspendu par l'ARS"
    )


@router.post("/territoire/activer")
async def activate(request: Request, console: ConsoleDep) -> Response:
    return await ars_decision(
        request, console, _activation, "Activation du centre {centre} publiée."
    )


@router.post("/territoire/reactiver")
async def reactivate(request: Request, console: ConsoleDep) -> Response:
    """A reserve centre (suspended or closed) activated again as the scheduler stores
    it, from today: the same ``centre.activated`` as the activation form."""
    actor = await actor_of(request, Role.ARS)
    form = await form_of(request)
    dep = form.get("departement", "")
    if dep not in region_departements(actor.acts_for):
        # Said as the scheduler's refusals are (outside_territory).
        raise Refused(
            f"Le centre {form.get('centre_id', '')} n'est pas un centre de votre région "
            f"(département {dep!r})."
        )
    try:
        detail = await console.call(actor, "GET", "scheduler", f"/territory/{quote(dep)}")
    except ServiceError as exc:
        return back("/territoire", str(exc), False)
    stored = next((c for c in detail["centres"] if c["centre_id"] == form.get("centre_id")), None)
    if stored is None:
        return back("/territoire", "Centre inconnu dans ce département.", False)

    def again(_: dict[str, str]) -> EventPayload:
        assert stored is not None
        return CentreActivated(
            centre_id=stored["centre_id"],
            name=stored["name"],
            kind=CentreKind(stored["kind"]),
            commune_insee=stored["commune_insee"],
            address=stored.get("address") or None,
            opening_hours=tuple(OpeningPeriod.model_validate(p) for p in stored["opening_hours"]),
            boxes=int(stored["boxes"]),
            consultation_minutes=int(stored["consultation_minutes"]),
            first_day=datetime.now(PARIS).date(),
        )

    return await ars_decision(request, console, again, "Centre {centre} activé à nouveau.")


@router.post("/territoire/capacite")
async def capacity(request: Request, console: ConsoleDep) -> Response:
    return await ars_decision(
        request, console, _capacity, "Changement de capacité de {centre} publié."
    )


@router.post("/territoire/suspendre")
async def suspend(request: Request, console: ConsoleDep) -> Response:
    return await ars_decision(request, console, _suspension, "Suspension de {centre} publiée.")


@router.get("/audit")
async def audit_page(request: Request, store: AccountsDep) -> HTMLResponse:
    actor = await actor_of(request, Role.ARS)
    entries: list[AuditEntry] = await store.audit_of_region(actor.acts_for)
    return page(
        request,
        "audit.html",
        actor,
        entries=entries,
        actions=ACTION_LABELS,
        region_name=region_codes().get(actor.acts_for, actor.acts_for),
    )


def _decision_call(payload: EventPayload) -> tuple[str, dict[str, Any]]:
    """The scheduler's route and body for an ARS's decision."""
    body = payload.model_dump(mode="json", exclude_none=True)
    if isinstance(payload, CentreActivated):
        return "/centres", body
    centre_id = body.pop("centre_id")
    if isinstance(payload, CentreCapacityChanged):
        return f"/centres/{quote(centre_id, safe='')}/capacity", body
    return f"/centres/{quote(centre_id, safe='')}/suspend", body


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])} : {e['msg']}" for e in exc.errors()[:3]
        )
    return str(exc)


# -- the answers to the centres' requests for reinforcement (issue 30) ------------------

# The page's word for each answer: the scheduler's route, the event it becomes, the
# form's fields it takes, and what the page says once it is sent.
ANSWERS: dict[str, tuple[str, str, str]] = {
    "prendre-en-compte": (
        "acknowledge",
        "reinforcement.acknowledged",
        "Demande de renfort de {centre} prise en compte.",
    ),
    "accorder": ("grant", "reinforcement.granted", "Renfort accordé à {centre}."),
    "refuser": ("decline", "reinforcement.declined", "Demande de renfort de {centre} refusée."),
}


def _answer_body(route: str, form: dict[str, str]) -> dict[str, Any]:
    """The scheduler's body for an answer, from the page's French form fields."""
    if route == "grant":
        return {
            "boxes": int(form.get("boxes") or 0),
            "staff": int(form.get("personnels") or 0),
            "hours": int(form.get("heures") or 0),
            "note": form.get("note", ""),
        }
    if route == "decline":
        return {"reason": form.get("motif", "")}
    return {"note": form.get("note", "")}


@router.post("/territoire/renfort/{reponse}")
async def answer_reinforcement(request: Request, reponse: str, console: ConsoleDep) -> Response:
    """Acknowledge, grant or decline a request, through the scheduler (the ARS's door,
    which judges it on the request and the region as it stores them)."""
    actor = await actor_of(request, Role.ARS)
    form = await form_of(request)
    if reponse not in ANSWERS:
        return back("/territoire", "Réponse inconnue.", False)
    route, action, done = ANSWERS[reponse]
    request_id = form.get("demande", "")
    try:
        body = _answer_body(route, form)
    except ValueError:
        return back("/territoire", "Formulaire incomplet ou invalide : un nombre attendu.", False)
    path = f"/reinforcements/{quote(request_id, safe='')}/{route}"
    try:
        answer = await console.call(actor, "POST", "scheduler", path, body)
    except ServiceError as exc:
        if exc.code in REGION_REFUSALS:
            raise Refused(exc.detail) from exc  # 403, said in French
        return back("/territoire", str(exc), False)
    # Whose request it is, as the scheduler stores it: the form's centre is only a
    # word of the page, and another region's in it must not enter this region's trail.
    centre_id = str(answer.get("centre_id") or "")
    await record(
        request,
        action,
        json.dumps({"request_id": request_id, **body}, ensure_ascii=False),
        centre_id=centre_id or None,
        event_id=str(answer["event_id"]),
    )
    return back("/territoire", done.format(centre=centre_id or "ce centre"))
