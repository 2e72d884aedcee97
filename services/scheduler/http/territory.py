"""The ARS's API: its decisions about centres (sent through its door, as if it had
published them), and its read model: centres per département with capacity, occupancy
today and tomorrow, the waiting list, the alerts and the centres' requests for
reinforcement. Every route is held to the caller's region (shared.regions)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from services.scheduler import store
from services.scheduler.domain.slots import capacity_between
from services.scheduler.http.reinforcements import reinforcement_view
from services.scheduler.http.state import ApiDep, Caller, SchedulerApi
from services.scheduler.store import history
from shared.auth import Principal
from shared.db import as_utc
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    EventPayload,
    OpeningPeriod,
)
from shared.events.base import JSON_INTEGER, IsoDate
from shared.geo import departement
from shared.geo import departement as departement_of
from shared.openapi import AUTHENTICATED, BODY, CentreId, TerritoryRefusal, not_found
from shared.paris import paris_day_bounds
from shared.regions import Region, ars_actor, ars_region, judge_centre_decision

PARIS = ZoneInfo("Europe/Paris")

router = APIRouter(tags=["territory"], responses=AUTHENTICATED)


def _days() -> list[tuple[str, datetime, datetime]]:
    today = datetime.now(PARIS).date()
    out = []
    for label, offset in (("today", 0), ("tomorrow", 1)):
        out.append((label, *paris_day_bounds(today + timedelta(days=offset))))
    return out


class CentreChange(BaseModel):
    # As in the event it becomes: true or "3" is not a number of boxes.
    boxes: Annotated[int, Field(ge=1, le=200), JSON_INTEGER] | None = None
    consultation_minutes: Annotated[int, Field(ge=5, le=240), JSON_INTEGER] | None = None
    opening_hours: tuple[OpeningPeriod, ...] | None = None
    from_date: IsoDate


class Withdrawal(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


# What an ARS's decision may earn besides its body's refusals (shared.regions).
DECISION: dict[int | str, dict[str, Any]] = {
    **BODY,
    403: {
        "model": TerritoryRefusal,
        "description": "Not an ARS, a subject that names no region, or a centre outside the "
        "ARS's region as stored (error_code outside_territory), or an activation that "
        "would move a centre to another département (centre_in_other_region, "
        "centre_in_other_departement); in French.",
    },
}


async def _decide(
    api: SchedulerApi, caller: Principal, payload: EventPayload, centre_id: str
) -> dict[str, str]:
    """The ARS's decision, sent in the ARS's name through the ARS's door (the ingress
    queue this service consumes), as if the ARS had published it on the broker: the
    same checks, the same order. This service may not publish ``centre.*`` on the bus
    but as the door's consumer, once the decision is applied.

    Judged here first, on the centre as stored, so that the caller hears a refusal
    (403 with its code) rather than a 202; the door judges again when it applies it
    (a centre activated meanwhile)."""
    region = ars_region(caller)
    async with api.database.transaction() as session:
        row = await store.centre_row(session, centre_id)
    judge_centre_decision(region, row.departement if row is not None else None, payload)
    envelope = await api.publish_at_door(
        payload, actor=ars_actor(region.code), correlation_id=centre_id
    )
    return {"event_id": envelope.id, "event_type": envelope.type}


@router.post("/centres", status_code=202, summary="Activate a centre (ARS)", responses=DECISION)
async def activate(body: CentreActivated, caller: Caller, api: ApiDep) -> dict[str, str]:
    return await _decide(api, caller, body, body.centre_id)


@router.post(
    "/centres/{centre_id}/capacity",
    status_code=202,
    summary="Ramp a centre up or down from a date (ARS)",
    responses=DECISION,
)
async def capacity(
    centre_id: CentreId, body: CentreChange, caller: Caller, api: ApiDep
) -> dict[str, str]:
    payload = CentreCapacityChanged(centre_id=centre_id, **body.model_dump())
    return await _decide(api, caller, payload, centre_id)


@router.post(
    "/centres/{centre_id}/suspend",
    status_code=202,
    summary="Suspend (ARS)",
    responses=DECISION,
)
async def suspend(
    centre_id: CentreId, body: Withdrawal, caller: Caller, api: ApiDep
) -> dict[str, str]:
    return await _decide(
        api, caller, CentreSuspended(centre_id=centre_id, reason=body.reason), centre_id
    )


@router.post(
    "/centres/{centre_id}/close", status_code=202, summary="Close (ARS)", responses=DECISION
)
async def close(
    centre_id: CentreId, body: Withdrawal, caller: Caller, api: ApiDep
) -> dict[str, str]:
    return await _decide(
        api, caller, CentreClosed(centre_id=centre_id, reason=body.reason), centre_id
    )


async def _centre_figures(session: Any, dep: str | None, region: Region) -> list[dict[str, Any]]:
    """The figures of the region's centres (of one of its départements, if given)."""
    rows = [r for r in await store.centre_rows(session, dep) if region.covers(r.departement)]
    schedules = {
        s.centre_id: s
        for s in await store.active_schedules(session, departement=dep, any_status=True)
    }
    figures = []
    today = datetime.now(PARIS).date()
    for row in rows:
        # Capacity only where the centre receives; its boxes (capacity changes
        # included) whatever its status, so a suspended centre shows what it was given.
        schedule = schedules.get(row.id)
        receiving = schedule if row.status == "active" else None
        entry: dict[str, Any] = {
            "centre_id": row.id,
            "name": row.name,
            "kind": row.kind,
            "departement": row.departement,
            "commune_insee": row.commune_insee,
            "status": row.status,
            # In force today, the ARS's capacity changes included.
            "boxes": schedule.on(today).boxes if schedule else row.boxes,
            # What the ARS activates a reserve centre again with (issue 30).
            "consultation_minutes": row.consultation_minutes,
            "opening_hours": row.opening_hours,
            "address": row.address,
        }
        for label, start, end in _days():
            capacity = capacity_between(receiving, start, end) if receiving else 0
            booked = await store.centre_booked(session, row.id, start, end)
            entry[label] = {
                "capacity": capacity,
                "booked": booked,
                "occupancy": round(booked / capacity, 3) if capacity else None,
            }
        figures.append(entry)
    return figures


@router.get("/reinforcements", summary="What centres asked the ARS for, newest first")
async def requested(
    caller: Caller, api: ApiDep, departement: str | None = None, limit: int = 100
) -> dict[str, Any]:
    region = ars_region(caller)
    # The region's centres' requests only; another region's département reads as one
    # without any.
    deps = region.departements if departement is None else {departement}
    async with api.database.transaction() as session:
        rows = await store.reinforcement_requests(
            session, deps & region.departements, limit=max(1, min(limit, 500))
        )
    # With where each stands (acknowledged, granted, declined: issue 30).
    return {"reinforcements": [reinforcement_view(r) for r in rows]}


@router.get("/territory", summary="Per département: centres, capacity, occupancy, waiting")
async def territory(caller: Caller, api: ApiDep) -> dict[str, Any]:
    region = ars_region(caller)
    async with api.database.transaction() as session:
        figures = await _centre_figures(session, None, region)
        waiting = await store.waiting_by_departement(session)
        raised = await store.raised_alerts(session)
    # The region's départements only: another's waiting list and alerts are not its.
    waiting = {code: n for code, n in waiting.items() if region.covers(code)}
    last_alerts = [a for a in raised if region.covers(a.departement)]
    by_dep: dict[str, dict[str, Any]] = {}
    for entry in figures:
        dep = by_dep.setdefault(entry["departement"], _empty(entry["departement"]))
        dep["centres"] += 1
        if entry["status"] == "active":
            dep["active_centres"] += 1
            dep["boxes"] += entry["boxes"]
        for label, _, _ in _days():
            dep[label]["capacity"] += entry[label]["capacity"]
            dep[label]["booked"] += entry[label]["booked"]
    for code, count in waiting.items():
        by_dep.setdefault(code, _empty(code))["waiting"] = int(count)
    for alert in last_alerts:
        by_dep.setdefault(alert.departement, _empty(alert.departement))["alerts"].append(
            {"kind": alert.kind, "at": as_utc(alert.sent_at).isoformat()}
        )
    for dep in by_dep.values():
        for label, _, _ in _days():
            day = dep[label]
            day["occupancy"] = (
                round(day["booked"] / day["capacity"], 3) if day["capacity"] else None
            )
    return {"departements": [by_dep[k] for k in sorted(by_dep)]}


@router.get(
    "/territory/{code}",
    summary="The centres of one département of the caller's region",
    responses=not_found("No such département in the caller's region."),
)
async def one_departement(code: str, caller: Caller, api: ApiDep) -> dict[str, Any]:
    region = ars_region(caller)
    if not region.covers(code):
        # Another region's département reads as one that does not exist.
        raise HTTPException(404, f"Aucun département « {code} » dans votre région ({region.name}).")
    async with api.database.transaction() as session:
        figures = await _centre_figures(session, code, region)
        waiting = await store.waiting_count(session, code)
    known = departement(code)
    return {
        "departement": code,
        "name": known.name if known else None,
        "centres": figures,
        "waiting": int(waiting or 0),
    }


@router.get(
    "/territory/days/{day}",
    summary="One day per département of the caller's region: booked, honoured, missed, "
    "waitlisted (counts, no identity)",
    responses=not_found("No such département in the caller's region."),
)
async def one_day(
    day: date, caller: Caller, api: ApiDep, departement: str | None = None
) -> dict[str, Any]:
    region = ars_region(caller)
    if departement is not None and not region.covers(departement):
        # As /territory/{code}: another region's département reads as none.
        raise HTTPException(
            404, f"Aucun département « {departement} » dans votre région ({region.name})."
        )
    # The day of Paris, from midnight to midnight (23 or 25 hours when the clocks change).
    # In UTC, as every time is stored (SQLite keeps the wall time it is given).
    start, end = paris_day_bounds(day)
    async with api.database.transaction() as session:
        figures = await history.day_figures(session, start, end)
    codes = sorted(region.departements) if departement is None else [departement]
    rows = []
    for code in codes:
        known = departement_of(code)
        counts = figures.get(code) or dict.fromkeys(history.FIGURES, 0)
        rows.append({"departement": code, "name": known.name if known else None, **counts})
    return {"date": day.isoformat(), "departements": rows}


def _empty(code: str) -> dict[str, Any]:
    known = departement(code)
    return {
        "departement": code,
        "name": known.name if known else None,
        "centres": 0,
        "active_centres": 0,
        "boxes": 0,
        "today": {"capacity": 0, "booked": 0},
        "tomorrow": {"capacity": 0, "booked": 0},
        "waiting": 0,
        "alerts": [],
    }
