"""The life of the centres' requests for reinforcement over HTTP: the ARS answers its
region's centres' requests (acknowledge, grant with boxes, staff and hours, decline
with a reason), each sent through the ARS's door in its name as its decisions about
centres are; a centre reads its own requests and where each stands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.scheduler import store
from services.scheduler.http.state import ApiDep, Caller, SchedulerApi
from shared.auth import Principal, Role, forbid
from shared.db import as_utc
from shared.events import (
    EventPayload,
    ReinforcementAcknowledged,
    ReinforcementDeclined,
    ReinforcementGranted,
    ReinforcementState,
)
from shared.events.base import JSON_INTEGER
from shared.labels import REINFORCEMENT_STATES
from shared.openapi import AUTHENTICATED, BODY, CentreId, TerritoryRefusal
from shared.regions import ars_actor, ars_region, judge_reinforcement_answer

router = APIRouter(tags=["reinforcements"], responses=AUTHENTICATED)

ANSWER: dict[int | str, dict[str, Any]] = {
    **BODY,
    403: {
        "model": TerritoryRefusal,
        "description": "Not an ARS, or a request of a centre outside the ARS's region "
        "(error_code outside_territory), or no such request (unknown_request); in French.",
    },
}

# The bounds before the validator, each in one Field: nested (an alias bounded again),
# the schema said "le" where JSON Schema says "maximum", and a client reading it sent
# what is refused.
Boxes = Annotated[int, Field(ge=0, le=200), JSON_INTEGER]
Staff = Annotated[int, Field(ge=0, le=100), JSON_INTEGER]
Hours = Annotated[int, Field(ge=0, le=10_000), JSON_INTEGER]


class Acknowledgement(BaseModel):
    note: str = Field("", max_length=500)


class Grant(BaseModel):
    boxes: Boxes = 0
    staff: Staff = 0
    hours: Hours = 0
    note: str = Field("", max_length=500)


class Refusal(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def reinforcement_view(row: Any) -> dict[str, Any]:
    """A request and where it stands, as the ARS's and the centre's pages read it."""
    state = ReinforcementState(row.state or ReinforcementState.REQUESTED.value)
    return {
        "request_id": row.id,
        "centre_id": row.centre_id,
        "departement": row.departement,
        "count": row.count,
        "profession": row.profession,
        "from_date": row.from_date.isoformat(),
        "note": row.note,
        "requested_at": as_utc(row.requested_at).isoformat(),
        "state": state.value,
        "state_label": REINFORCEMENT_STATES[state],
        "acknowledged_at": _at(row.acknowledged_at),
        "answered_at": _at(row.answered_at),
        "granted": {
            "boxes": row.granted_boxes,
            "staff": row.granted_staff,
            "hours": row.granted_hours,
        }
        if state is ReinforcementState.GRANTED
        else None,
        "answer": row.answer,
        "raised_again_at": _at(row.raised_again_at),
    }


def _at(value: Any) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


async def _answer(
    api: SchedulerApi,
    caller: Principal,
    request_id: str,
    build: Callable[[str], EventPayload],
) -> dict[str, str]:
    """Judged here on the request as stored (a 403 with its code rather than a 202),
    then sent through the ARS's door in its name; the door judges it again."""
    region = ars_region(caller)
    async with api.database.transaction() as session:
        row = await store.reinforcement(session, request_id)
    if row is None:
        judge_reinforcement_answer(region, None)  # refused: no such request
        raise AssertionError("unreachable")
    judge_reinforcement_answer(region, row.departement)
    payload = build(row.centre_id)
    envelope = await api.publish_at_door(
        payload, actor=ars_actor(region.code), correlation_id=request_id
    )
    # The centre as stored: the console's audit trail names it, not what a form said.
    return {"event_id": envelope.id, "event_type": envelope.type, "centre_id": row.centre_id}


@router.post(
    "/reinforcements/{request_id}/acknowledge",
    status_code=202,
    summary="Say the request is being worked on (ARS)",
    responses=ANSWER,
)
async def acknowledge(
    request_id: str, body: Acknowledgement, caller: Caller, api: ApiDep
) -> dict[str, str]:
    return await _answer(
        api,
        caller,
        request_id,
        lambda centre: ReinforcementAcknowledged(
            request_id=request_id, centre_id=centre, note=body.note
        ),
    )


@router.post(
    "/reinforcements/{request_id}/grant",
    status_code=202,
    summary="Grant reinforcement: boxes, staff, hours (ARS)",
    responses=ANSWER,
)
async def grant(request_id: str, body: Grant, caller: Caller, api: ApiDep) -> dict[str, str]:
    return await _answer(
        api,
        caller,
        request_id,
        lambda centre: ReinforcementGranted(
            request_id=request_id, centre_id=centre, **body.model_dump()
        ),
    )


@router.post(
    "/reinforcements/{request_id}/decline",
    status_code=202,
    summary="Decline the request, with a reason (ARS)",
    responses=ANSWER,
)
async def decline(request_id: str, body: Refusal, caller: Caller, api: ApiDep) -> dict[str, str]:
    return await _answer(
        api,
        caller,
        request_id,
        lambda centre: ReinforcementDeclined(
            request_id=request_id, centre_id=centre, reason=body.reason
        ),
    )


@router.get(
    "/centres/{centre_id}/reinforcements",
    summary="The centre's own requests for reinforcement, and where each stands",
    responses={403: {"description": "Not this centre."}},
)
async def centre_requests(
    centre_id: CentreId, caller: Caller, api: ApiDep, limit: int = 50
) -> dict[str, Any]:
    if not caller.may_act_as(Role.CENTRE, centre_id):
        raise forbid("a centre reads its own requests for reinforcement only")
    async with api.database.transaction() as session:
        rows = await store.centre_reinforcements(session, centre_id, max(1, min(limit, 200)))
    return {"centre_id": centre_id, "reinforcements": [reinforcement_view(r) for r in rows]}
