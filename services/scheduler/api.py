"""The ARS's read model: centres per département with capacity, occupancy today and
tomorrow, and the waiting list."""

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from services.scheduler import store
from services.scheduler.domain.slots import capacity_between
from services.scheduler.tables import alerts, bookings, centres, waitlist
from shared.auth import Principal, Role, authenticator, forbid
from shared.db import Database, as_utc
from shared.geo import departement

PARIS = ZoneInfo("Europe/Paris")


def _days() -> list[tuple[str, datetime, datetime]]:
    today = datetime.now(PARIS).date()
    out = []
    for label, offset in (("today", 0), ("tomorrow", 1)):
        start = datetime.combine(today + timedelta(days=offset), time(0), PARIS)
        out.append((label, start, start + timedelta(days=1)))
    return out


def build_router(database: Database, auth_secret: str) -> APIRouter:
    router = APIRouter(tags=["territory"])
    Caller = Annotated[Principal, Depends(authenticator(auth_secret))]

    def ars_only(caller: Principal) -> None:
        if caller.role is not Role.ARS:
            raise forbid("the territory is the ARS's view")

    async def centre_figures(session: Any, dep: str | None) -> list[dict[str, Any]]:
        query = select(centres)
        if dep is not None:
            query = query.where(centres.c.departement == dep)
        rows = (await session.execute(query.order_by(centres.c.departement, centres.c.id))).all()
        active = {s.centre_id: s for s in await store.active_schedules(session, departement=dep)}
        figures = []
        for row in rows:
            entry: dict[str, Any] = {
                "centre_id": row.id,
                "name": row.name,
                "kind": row.kind,
                "departement": row.departement,
                "commune_insee": row.commune_insee,
                "status": row.status,
                "boxes": row.boxes,
            }
            for label, start, end in _days():
                schedule = active.get(row.id)
                capacity = capacity_between(schedule, start, end) if schedule else 0
                booked = await session.scalar(
                    select(func.count())
                    .select_from(bookings)
                    .where(
                        bookings.c.centre_id == row.id,
                        bookings.c.start >= start,
                        bookings.c.start < end,
                    )
                )
                entry[label] = {
                    "capacity": capacity,
                    "booked": int(booked or 0),
                    "occupancy": round(int(booked or 0) / capacity, 3) if capacity else None,
                }
            figures.append(entry)
        return figures

    @router.get("/territory", summary="Per département: centres, capacity, occupancy, waiting")
    async def territory(caller: Caller) -> dict[str, Any]:
        ars_only(caller)
        async with database.transaction() as session:
            figures = await centre_figures(session, None)
            waiting: dict[str, int] = dict(
                (
                    await session.execute(
                        select(waitlist.c.departement, func.count()).group_by(
                            waitlist.c.departement
                        )
                    )
                ).all()
            )
            last_alerts = (await session.execute(select(alerts))).all()
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

    @router.get("/territory/{code}", summary="The centres of one département")
    async def one_departement(code: str, caller: Caller) -> dict[str, Any]:
        ars_only(caller)
        async with database.transaction() as session:
            figures = await centre_figures(session, code)
            waiting = await session.scalar(
                select(func.count()).select_from(waitlist).where(waitlist.c.departement == code)
            )
        known = departement(code)
        return {
            "departement": code,
            "name": known.name if known else None,
            "centres": figures,
            "waiting": int(waiting or 0),
        }

    return router


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
