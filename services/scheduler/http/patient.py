"""The patient's own door at the scheduler: their appointment, and another slot.

The link of the notice (shared/patient_link.py) is the patient's only credential: the
scheduler checks its signature and expiry itself, then that the appointment it names
is still booked and not begun. The page reads that appointment and nothing else.

Another slot is offered, not imposed (handlers/patient_requests.py): the patient reads
up to three slots the scheduler's own ranking gives them (``GET
/patient/appointment/options``) and confirms one (``POST /patient/appointment/move``
with its centre and start); their appointment is kept until then, and kept when the one
chosen was taken meanwhile (409 ``slot_taken``, with fresh offers). The one confirmed
is booked, then the old one cancelled as the patient (``cancelled_by: patient``), with
the events of any move: the new appointment goes to its centre (and so to the patient,
with a new link), the old one's cancellation to the centre that loses the patient. A
patient moves at most ``MAX_PATIENT_MOVES`` times by the link (counted in the database,
``appointment_moves``), then is told to call the centre (409 ``too_many_moves``). Deny
by default: no token (401), a forged or altered one (403), an expired one or an
appointment no longer booked (410).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.scheduler import store
from services.scheduler.handlers import Offer, SchedulerHandlers
from shared.db import Database, as_utc
from shared.events import CancelledBy, utcnow
from shared.geo import commune
from shared.openapi import BODY, ProblemBody, ValidationErrorBody
from shared.outbox import OutboxRelay
from shared.patient_link import HEADER, LinkRefused, PatientLink, verify_link

log = structlog.get_logger(__name__)

# The patient's token, in a header (shared/patient_link.py): documented, so that the
# OpenAPI says what the route takes; absent, the route answers 401.
LinkHeader = Annotated[
    str | None,
    Header(alias=HEADER, description="The token of the patient's link (p1.<...>)."),
]

# Booked and rescheduled appointments are the ones a patient still has to go to.
LIVE = ("booked",)
# Moves a patient makes by their link, per referral; past them, they call the centre
# (issue 28: self-service, bounded). A move by the service or a regulator is not theirs.
MAX_PATIENT_MOVES = 3
TOO_MANY_MOVES_FR = (
    "Vous avez déjà changé trois fois de créneau par ce lien : pour changer encore, "
    "appelez le centre. Votre rendez-vous actuel est maintenu."
)
SLOT_TAKEN_FR = (
    "Ce créneau vient d'être pris par un autre patient : votre rendez-vous actuel est "
    "maintenu. Voici les créneaux libres à présent."
)


@dataclass(frozen=True)
class PatientDoor:
    """What the patient's routes reach: the handlers (the ranking, the booking, the
    move's events), the database, the outbox's relay (woken after a move) and the key
    the links are signed with."""

    handlers: SchedulerHandlers
    database: Database
    relay: OutboxRelay
    key: str


def the_door(request: Request) -> PatientDoor:
    # Put on the request by the router build_patient_router returns, before the route.
    return cast(PatientDoor, request.state.patient_door)


Door = Annotated[PatientDoor, Depends(the_door)]

routes = APIRouter(tags=["patient"])


def build_patient_router(
    handlers: SchedulerHandlers, database: Database, relay: OutboxRelay, key: str
) -> APIRouter:
    """The patient's routes, serving with these: a router of its own, whole wherever it
    is included (the service's app, or a test's bare one), so what it reaches travels
    with it rather than on an app's state."""
    door = PatientDoor(handlers, database, relay, key)

    async def open_door(request: Request) -> None:
        request.state.patient_door = door

    # The router's own dependencies run before the routes' (FastAPI puts them first).
    router = APIRouter(dependencies=[Depends(open_door)])
    router.include_router(routes)
    return router


class SlotChoice(BaseModel):
    """The slot the patient confirms: one of their offers, by centre and start."""

    model_config = ConfigDict(extra="forbid")

    centre_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    start: AwareDatetime


def _refusal(status: int, code: str, message: str, **extra: Any) -> Response:
    return JSONResponse(
        status_code=status,
        content={"error_code": code, "reasons": [{"code": code, "message": message}], **extra},
    )


def _check(token: str | None, key: str) -> PatientLink | Response:
    if not token:
        return _refusal(401, "patient_link_missing", "Lien du patient manquant.")
    try:
        return verify_link(key, token)
    except LinkRefused as refused:
        if refused.expired:
            return _refusal(410, "patient_link_expired", "Ce lien a expiré.")
        return _refusal(403, "patient_link_invalid", "Ce lien n'est pas valide.")


async def _current(session: Any, link: PatientLink, *, lock: bool = False) -> Any | Response:
    row = await store.appointment(session, link.appointment_id, lock=lock)
    # Another referral's appointment under this id is as unknown as none.
    if row is None or row.referral_id != link.referral_id:
        return _refusal(404, "unknown_appointment", "Aucun rendez-vous ne correspond.")
    if row.status not in LIVE or as_utc(row.end) <= utcnow():
        return _refusal(
            410,
            "appointment_not_current",
            "Ce rendez-vous n'est plus d'actualité (annulé, déplacé ou passé).",
        )
    return row


def _centre_view(centre_id: str, centre: Any) -> dict[str, Any]:
    town = commune(centre.commune_insee) if centre is not None else None
    return {
        "centre_id": centre_id,
        "name": centre.name if centre is not None else centre_id,
        "address": centre.address if centre is not None else None,
        "commune_insee": centre.commune_insee if centre is not None else None,
        "commune": town.name if town else None,
        "lat": centre.lat if centre is not None else None,
        "lon": centre.lon if centre is not None else None,
    }


def _view(row: Any, centre: Any) -> dict[str, Any]:
    return {
        "appointment_id": row.id,
        "referral_id": row.referral_id,
        "status": row.status,
        "start": as_utc(row.start).isoformat(),
        "end": as_utc(row.end).isoformat(),
        "box": row.box,
        "test_eligible": bool(row.test_eligible),
        "centre": _centre_view(row.centre_id, centre),
    }


def _offer_view(offer: Offer) -> dict[str, Any]:
    slot = offer.slot
    return {
        "centre_id": slot.centre_id,
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "distance_km": round(slot.distance_km, 1),
        "centre": _centre_view(slot.centre_id, offer.centre),
    }


async def _moves(session: Any, row: Any) -> dict[str, Any]:
    """The patient's moves so far and left, and why a move by someone else brought
    them here (a suspended centre, a regulator): their page says so."""
    done = await store.moves_by(session, row.referral_id, CancelledBy.PATIENT.value)
    into = await store.moved_into(session, row.id)
    moved = (
        {"by": into.moved_by, "reason": into.reason}
        if into is not None and into.moved_by != CancelledBy.PATIENT.value
        else None
    )
    return {
        "moves": {
            "done": done,
            "left": max(0, MAX_PATIENT_MOVES - done),
            "allowed": MAX_PATIENT_MOVES,
        },
        "moved": moved,
    }


async def _too_many(session: Any, row: Any) -> Response | None:
    """The refusal once the patient has moved as often as their link allows."""
    done = await store.moves_by(session, row.referral_id, CancelledBy.PATIENT.value)
    if done < MAX_PATIENT_MOVES:
        return None
    centre = await store.centre_row(session, row.centre_id)
    # The centre to call comes with it: whoever reads the refusal knows whom to ask.
    return _refusal(
        409, "too_many_moves", TOO_MANY_MOVES_FR, centre=_centre_view(row.centre_id, centre)
    )


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemBody, "description": "No link."},
    403: {"model": ProblemBody, "description": "A forged or altered link."},
    404: {"model": ProblemBody, "description": "No such appointment for this link."},
    410: {"model": ProblemBody, "description": "Expired, or the appointment is no longer booked."},
}


@routes.get(
    "/patient/appointment",
    summary="The appointment a patient's link names (the token in X-Patient-Link)",
    responses=REFUSALS,
)
async def read(door: Door, token: LinkHeader = None) -> Response:
    link = _check(token, door.key)
    if isinstance(link, Response):
        return link
    async with door.database.transaction() as session:
        row = await _current(session, link)
        if isinstance(row, Response):
            return row
        centre = await store.centre_row(session, row.centre_id)
        moves = await _moves(session, row)
    return JSONResponse(_view(row, centre) | moves)


@routes.get(
    "/patient/appointment/options",
    summary="Up to three other slots the patient may choose (the token in X-Patient-Link)",
    responses={
        **REFUSALS,
        409: {"model": ProblemBody, "description": "too_many_moves: call the centre."},
    },
)
async def options(door: Door, token: LinkHeader = None) -> Response:
    link = _check(token, door.key)
    if isinstance(link, Response):
        return link
    handlers = door.handlers
    async with door.database.transaction() as session:
        row = await _current(session, link)
        if isinstance(row, Response):
            return row
        refused = await _too_many(session, row)
        if refused is not None:
            return refused
        offered = await handlers.offers(
            session, row, await handlers.patient(session, row), utcnow()
        )
        centre = await store.centre_row(session, row.centre_id)
        moves = await _moves(session, row)
    return JSONResponse(
        {
            "appointment": _view(row, centre),
            **moves,
            "options": [_offer_view(o) for o in offered],
        }
    )


@routes.post(
    "/patient/appointment/move",
    summary="The patient confirms one of their offers (the token in X-Patient-Link)",
    responses={
        **REFUSALS,
        **BODY,
        409: {
            "model": ProblemBody,
            "description": "slot_taken (with fresh options), same_slot or too_many_moves: "
            "their appointment is kept.",
        },
        422: {
            "model": ValidationErrorBody,
            "description": "No slot chosen, or a malformed one.",
        },
    },
)
async def move(choice: SlotChoice, door: Door, token: LinkHeader = None) -> Response:
    link = _check(token, door.key)
    if isinstance(link, Response):
        return link
    handlers = door.handlers
    now = utcnow()
    async with door.database.transaction() as session:
        old = await _current(session, link, lock=True)
        if isinstance(old, Response):
            return old
        # Counted with the appointment held: two confirms at once wait for each
        # other, and the second finds it moved (410).
        refused = await _too_many(session, old)
        if refused is not None:
            return refused
        start = as_utc(choice.start)
        if choice.centre_id == old.centre_id and start == as_utc(old.start):
            return _refusal(409, "same_slot", "C'est déjà votre rendez-vous : il est maintenu.")
        patient = await handlers.patient(session, old)
        booked = await handlers.book_chosen(session, old, patient, (choice.centre_id, start), now)
        if booked is None:
            fresh = await handlers.offers(session, old, patient, now)
            return _refusal(
                409, "slot_taken", SLOT_TAKEN_FR, options=[_offer_view(o) for o in fresh]
            )
        new_row = await handlers.announce_patient_move(session, old, booked, now)
        centre = await store.centre_row(session, booked.slot.centre_id)
        moves = await _moves(session, new_row)
    door.relay.notify()
    log.info(
        "appointment moved at the patient's request",
        referral_id=old.referral_id,
        appointment_id=booked.appointment_id,
    )
    return JSONResponse(_view(new_row, centre) | moves)
