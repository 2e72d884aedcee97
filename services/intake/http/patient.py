"""The patient's own door at intake: cancelling with the link of the notice.

The link's token (shared/patient_link.py) is the patient's only credential: intake
checks its signature and expiry itself, then that the appointment it names is still
the current one of its referral. Only then is the referral withdrawn, as the patient
(``cancelled_by: patient``), through the same use case as a referrer's withdrawal, so
that the scheduler frees the slot and the notifier tells the centre. Deny by default:
no token, a forged or altered one (403), an expired one, an appointment moved,
cancelled or past (410), each refused with its code.
"""

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from services.intake.domain.status import State
from services.intake.handlers import PatientCancellation
from services.intake.http.door import TheDoor
from shared.patient_link import HEADER, LinkRefused, verify_link

log = structlog.get_logger(__name__)

# The patient's token, in a header (shared/patient_link.py): documented, so that the
# OpenAPI says what the route takes; absent, the route answers 401.
LinkHeader = Annotated[
    str | None,
    Header(alias=HEADER, description="The token of the patient's link (p1.<...>)."),
]

router = APIRouter(tags=["patient"])


def _refusal(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        status_code=status,
        content={"error_code": code, "reasons": [{"code": code, "message": message}]},
    )


def link_refusal(token: str | None, key: str) -> tuple[Any, Response | None]:
    """The link a request carries, or the refusal to answer (shared by the routes)."""
    if not token:
        return None, _refusal(401, "patient_link_missing", "Lien du patient manquant.")
    try:
        return verify_link(key, token), None
    except LinkRefused as refused:
        if refused.expired:
            return None, _refusal(410, "patient_link_expired", "Ce lien a expiré.")
        return None, _refusal(403, "patient_link_invalid", "Ce lien n'est pas valide.")


@router.post(
    "/patient/cancellation",
    summary="The patient cancels their appointment (the link's token in X-Patient-Link)",
    responses={
        401: {"description": "No link."},
        403: {"description": "A forged or altered link."},
        404: {"description": "No such referral."},
        410: {"description": "Expired, or the appointment is no longer current."},
    },
)
async def cancel(door: TheDoor, token: LinkHeader = None) -> Response:
    link, refused = link_refusal(token, door.link_key)
    if refused is not None:
        return refused
    async with door.database.transaction() as session:
        done = await door.handlers.cancel_as_patient(session, link.referral_id, link.appointment_id)
    if done is PatientCancellation.UNKNOWN:
        return _refusal(404, "unknown_referral", "Aucune demande ne correspond.")
    if done is PatientCancellation.NOT_CURRENT:
        # Moved (a new link went with the new appointment), cancelled, seen...
        return _refusal(
            410,
            "appointment_not_current",
            "Ce rendez-vous n'est plus d'actualité (annulé, déplacé ou passé).",
        )
    door.relay.notify()
    # The referral's id only: the token never goes to a log.
    log.info("appointment cancelled by the patient", referral_id=link.referral_id)
    return JSONResponse(
        {"referral_id": link.referral_id, "status": State.CANCELLED.value, "by": "patient"}
    )
