"""The patient's own door at the scheduler: their appointment, and another slot.

The link of the notice (shared/patient_link.py) is the patient's only credential: the
scheduler checks its signature and expiry itself, then that the appointment it names
is still booked and not begun. The page reads that appointment and nothing else;
"another slot" books the best other free slot for the patient, then cancels the old
one, as the patient (``cancelled_by: patient``), with the events of any move: the new
appointment goes to its centre (and so to the patient, with a new link), the old one's
cancellation to the centre that loses the patient. Deny by default: no token (401), a
forged or altered one (403), an expired one or an appointment no longer booked (410).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from services.scheduler import store
from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.tables import appointments
from shared.consumer import Delivery
from shared.db import Database, as_utc
from shared.events import CancelledBy, Envelope, Priority, utcnow
from shared.geo import commune
from shared.outbox import OutboxRelay
from shared.patient_link import HEADER, LinkRefused, PatientLink, verify_link

log = structlog.get_logger(__name__)

# The patient's token, in a header (shared/patient_link.py): documented, so that the
# OpenAPI says what the route takes; absent, the route answers 401.
LinkHeader = Annotated[
    str | None,
    Header(alias=HEADER, description="The token of the patient's link (p1.<...>)."),
]

MOVE_REASON = "à la demande du patient (lien de l'avis de rendez-vous)"
# Booked and rescheduled appointments are the ones a patient still has to go to.
LIVE = ("booked",)


def _refusal(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        status_code=status,
        content={"error_code": code, "reasons": [{"code": code, "message": message}]},
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
    query = select(appointments).where(appointments.c.id == link.appointment_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
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


def _view(row: Any, centre: Any) -> dict[str, Any]:
    town = commune(centre.commune_insee) if centre is not None else None
    return {
        "appointment_id": row.id,
        "referral_id": row.referral_id,
        "status": row.status,
        "start": as_utc(row.start).isoformat(),
        "end": as_utc(row.end).isoformat(),
        "box": row.box,
        "test_eligible": bool(row.test_eligible),
        "centre": {
            "centre_id": row.centre_id,
            "name": centre.name if centre is not None else row.centre_id,
            "address": centre.address if centre is not None else None,
            "commune_insee": centre.commune_insee if centre is not None else None,
            "commune": town.name if town else None,
            "lat": centre.lat if centre is not None else None,
            "lon": centre.lon if centre is not None else None,
        },
    }


def build_patient_router(
    handlers: SchedulerHandlers, database: Database, relay: OutboxRelay, key: str
) -> APIRouter:
    router = APIRouter(tags=["patient"])
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"description": "No link."},
        403: {"description": "A forged or altered link."},
        404: {"description": "No such appointment for this link."},
        410: {"description": "Expired, or the appointment is no longer booked."},
    }

    @router.get(
        "/patient/appointment",
        summary="The appointment a patient's link names (the token in X-Patient-Link)",
        responses=refusals,
    )
    async def read(token: LinkHeader = None) -> Response:
        link = _check(token, key)
        if isinstance(link, Response):
            return link
        async with database.transaction() as session:
            row = await _current(session, link)
            if isinstance(row, Response):
                return row
            centre = await store.centre_row(session, row.centre_id)
        return JSONResponse(_view(row, centre))

    @router.post(
        "/patient/appointment/move",
        summary="The patient asks for another slot (the token in X-Patient-Link)",
        responses={**refusals, 409: {"description": "No other free slot: theirs is kept."}},
    )
    async def move(token: LinkHeader = None) -> Response:
        link = _check(token, key)
        if isinstance(link, Response):
            return link
        now = utcnow()
        async with database.transaction() as session:
            old = await _current(session, link, lock=True)
            if isinstance(old, Response):
                return old
            # The request itself is no event of the bus: an envelope only to say what
            # caused the events the move emits.
            request_envelope = Envelope(
                type="patient.slot_requested",
                source="scheduler",
                correlation_id=old.referral_id,
            )
            delivery = Delivery(session=session, envelope=request_envelope, source="scheduler")
            patient = await handlers._patient_of(session, old, now)
            # Sought while the old one is still held: "another" slot, never the same.
            booked = await handlers._book_instead(session, old, patient, now)
            if booked is None:
                return _refusal(
                    409,
                    "no_other_slot",
                    "Aucun autre créneau n'est libre pour l'instant : votre rendez-vous "
                    "est maintenu.",
                )
            await handlers._announce_move(
                delivery, old, booked, Priority(old.priority), MOVE_REASON, CancelledBy.PATIENT
            )
            await handlers._drain(delivery, old.centre_id, now)
            new_row = (
                await session.execute(
                    select(appointments).where(appointments.c.id == booked.appointment_id)
                )
            ).first()
            centre = await store.centre_row(session, booked.slot.centre_id)
        relay.notify()
        log.info(
            "appointment moved at the patient's request",
            referral_id=old.referral_id,
            appointment_id=booked.appointment_id,
        )
        return JSONResponse(_view(new_row, centre))

    return router
