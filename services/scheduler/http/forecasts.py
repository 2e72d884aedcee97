"""What the ARS reads of a département's saturation forecast (issue 31): hours until
full with its band, the boxes needed, the reserve centres suggested and the figures of
its chart (``handlers/forecasts.py``'s ``forecast_view``). Held to the caller's region,
as ``/territory/{code}``: another region's département reads as one that does not
exist. Computed on the request (a tenth of a second or so, in a worker thread) and kept
a minute (the ARS's page is fetched again on every event of its territory); nothing is
published."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from services.scheduler.handlers.forecasts import forecast_view
from services.scheduler.http.state import ApiDep, Caller
from shared.events import utcnow
from shared.geo import departement as departement_of
from shared.openapi import AUTHENTICATED, not_found
from shared.regions import ars_region

router = APIRouter(tags=["territory"], responses=AUTHENTICATED)

KEPT_SECONDS = 60.0
# A département's last view and when it was computed (this process's monotonic clock);
# read only once the caller's region is known to cover the département.
_kept: dict[tuple[int, str], tuple[float, dict[str, Any]]] = {}


@router.get(
    "/territory/{code}/forecast",
    summary="The saturation forecast of one département of the caller's region (ARS)",
    responses=not_found("No such département in the caller's region."),
)
async def departement_forecast(code: str, caller: Caller, api: ApiDep) -> dict[str, Any]:
    region = ars_region(caller)
    if not region.covers(code):
        raise HTTPException(404, f"Aucun département « {code} » dans votre région ({region.name}).")
    key = (id(api.database), code)  # one database's, not another's in the same process
    kept = _kept.get(key)
    if kept is not None and time.monotonic() - kept[0] < KEPT_SECONDS:
        return kept[1]
    async with api.database.transaction() as session:
        view = await forecast_view(session, code, utcnow())
    known = departement_of(code)
    view = {**view, "name": known.name if known else None}
    _kept[key] = (time.monotonic(), view)
    return view
