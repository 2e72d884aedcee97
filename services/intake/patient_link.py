"""The patient's own door at intake: cancelling with the link of the notice.

The link's token (shared/patient_link.py) is the patient's only credential: intake
checks its signature and expiry itself, then that the appointment it names is still
the current one of its referral. Only then is the referral withdrawn, as the patient
(``cancelled_by: patient``), through the same use case as a referrer's withdrawal, so
that the scheduler frees the slot and the notifier tells the centre. Deny by default:
no token, a forged or altered one (403), an expired one, an appointment moved,
cancelled or past (410), each refused with its code.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from services.intake.handlers import IntakeHandlers
from services.intake.status import State
from services.intake.tables import referrals
from shared.consumer import Delivery
from shared.db import Database
from shared.events import CancelledBy, Envelope, ReferralCancelled
from shared.outbox import OutboxRelay
from shared.patient_link import HEADER, LinkRefused, verify_link

log = structlog.get_logger(__name__)

# The patient's token, in a header (shared/patient_link.py): documented, so that the
# OpenAPI says what the route takes; absent, the route answers 401.
LinkHeader = Annotated[
    str | None,
    Header(alias=HEADER, description="The token of the patient's link (p1.<...>)."),
]

PATIENT_REASON = "annulé par le patient (lien de l'avis de rendez-vous)"


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


def build_patient_router(
    handlers: IntakeHandlers, database: Database, relay: OutboxRelay, key: str
) -> APIRouter:
    router = APIRouter(tags=["patient"])

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
    async def cancel(token: LinkHeader = None) -> Response:
        link, refused = link_refusal(token, key)
        if refused is not None:
            return refused
        async with database.transaction() as session:
            row = (
                await session.execute(
                    select(referrals.c.status, referrals.c.detail)
                    .where(referrals.c.id == link.referral_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return _refusal(404, "unknown_referral", "Aucune demande ne correspond.")
            current = (row.detail or {}).get("appointment_id")
            if row.status != State.APPOINTMENT.value or current != link.appointment_id:
                # Moved (a new link went with the new appointment), cancelled, seen...
                return _refusal(
                    410,
                    "appointment_not_current",
                    "Ce rendez-vous n'est plus d'actualité (annulé, déplacé ou passé).",
                )
            payload = ReferralCancelled(
                referral_id=link.referral_id,
                cancelled_by=CancelledBy.PATIENT,
                reason=PATIENT_REASON,
            )
            envelope = Envelope.wrap(payload, source="intake", correlation_id=link.referral_id)
            await handlers.on_cancelled(
                Delivery(session=session, envelope=envelope, source="intake")
            )
        relay.notify()
        # The referral's id only: the token never goes to a log.
        log.info("appointment cancelled by the patient", referral_id=link.referral_id)
        return JSONResponse(
            {"referral_id": link.referral_id, "status": State.CANCELLED.value, "by": "patient"}
        )

    return router
