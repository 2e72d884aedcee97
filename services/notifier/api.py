"""The centres' HTTP API: the day's patients (its own only), and what happened to them."""

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, StrictBool

from services.notifier import store
from shared.auth import Keys, Principal, Role, authenticator, forbid
from shared.db import Database, as_utc
from shared.events import (
    ConsultationCompleted,
    ConsultationNoShow,
    Envelope,
    EventPayload,
    PatientEscalated,
    ReinforcementRequested,
)
from shared.events.base import IsoDate, JsonInt
from shared.openapi import AUTHENTICATED, BODY, CentreId, not_found
from shared.settings import ServiceName

# Sends an actor's request on the ingress, in its name (ServiceRuntime.publish_at_door).
DoorPublish = Callable[..., Awaitable[Envelope]]

PARIS = ZoneInfo("Europe/Paris")


class Outcome(StrEnum):
    SEEN = "seen"
    NO_SHOW = "no_show"
    ESCALATED = "escalated"


class OutcomeReport(BaseModel):
    outcome: Outcome
    reason: str = Field("", max_length=500)
    # Strict: lax mode would read 1 or "yes" as a prescription.
    test_prescribed: StrictBool = False


class ReinforcementRequest(BaseModel):
    count: JsonInt = Field(ge=1, le=100)
    profession: str = Field(min_length=2, max_length=100)
    from_date: IsoDate
    note: str = Field("", max_length=500)


def build_router(database: Database, publish_at_door: DoorPublish, auth_keys: Keys) -> APIRouter:
    router = APIRouter(tags=["centres"], responses=AUTHENTICATED)
    Caller = Annotated[Principal, Depends(authenticator(auth_keys, ServiceName.NOTIFIER))]

    def own_centre(caller: Principal, centre_id: str) -> None:
        if not caller.may_act_as(Role.CENTRE, centre_id):
            raise forbid("a centre sees and reports on its own patients only")

    async def publish(payload: EventPayload, correlation_id: str, centre_id: str) -> str:
        """The centre's report, sent in its name through the centres' door (the
        scheduler's ingress queue, which checks it against the appointment and applies
        it), as if the centre had published it on the broker itself."""
        envelope = await publish_at_door(
            payload, actor=f"centre-{centre_id}", correlation_id=correlation_id
        )
        return envelope.id

    @router.get("/centres/{centre_id}/appointments", summary="The centre's patients of a day")
    async def day_list(
        centre_id: CentreId, caller: Caller, day: date | None = None
    ) -> dict[str, Any]:
        own_centre(caller, centre_id)
        local_day = day or datetime.now(PARIS).date()
        start = datetime.combine(local_day, time(0), PARIS)
        end = start + timedelta(days=1)
        async with database.transaction() as session:
            rows = await store.day_appointments(session, centre_id, start, end)
        return {
            "centre_id": centre_id,
            "day": local_day.isoformat(),
            "appointments": [
                {
                    "appointment_id": r.appointment_id,
                    "referral_id": r.referral_id,
                    "patient_ref": r.patient_ref,
                    # The centre receives the patient: it may know who is coming.
                    "patient_name": f"{r.first_name} {r.last_name}" if r.first_name else None,
                    "start": as_utc(r.start).isoformat(),
                    "end": as_utc(r.end).isoformat(),
                    "box": r.box,
                    "priority": r.priority,
                    "status": r.status,
                    # What the consultation is for: the test the centre prescribes.
                    "test_eligible": r.test_eligible,
                }
                for r in rows
            ],
        }

    @router.post(
        "/centres/{centre_id}/appointments/{appointment_id}/outcome",
        status_code=202,
        summary="Seen, no-show, or escalated to Centre 15",
        responses={**not_found("No such appointment at this centre."), **BODY},
    )
    async def report(
        centre_id: CentreId, appointment_id: str, body: OutcomeReport, caller: Caller
    ) -> dict[str, str]:
        own_centre(caller, centre_id)
        async with database.transaction() as session:
            row = await store.appointment(session, appointment_id)
        if row is None or row.centre_id != centre_id:
            raise HTTPException(404, f"no appointment {appointment_id} at {centre_id}")
        payload: EventPayload
        if body.outcome is Outcome.SEEN:
            payload = ConsultationCompleted(
                appointment_id=appointment_id,
                referral_id=row.referral_id,
                centre_id=centre_id,
                test_prescribed=body.test_prescribed,
                note=body.reason,
            )
        elif body.outcome is Outcome.NO_SHOW:
            payload = ConsultationNoShow(
                appointment_id=appointment_id, referral_id=row.referral_id, centre_id=centre_id
            )
        else:
            payload = PatientEscalated(
                referral_id=row.referral_id,
                centre_id=centre_id,
                appointment_id=appointment_id,
                # Read by Centre 15 and the referrer as it is: French.
                reason=body.reason or "aggravation de l'état du patient",
            )
        event_id = await publish(payload, row.referral_id, centre_id)
        return {"event_id": event_id, "event_type": payload.event_type}

    @router.post(
        "/centres/{centre_id}/reinforcements",
        status_code=202,
        summary="Ask the ARS for health professionals",
        responses=BODY,
    )
    async def reinforce(
        centre_id: CentreId, body: ReinforcementRequest, caller: Caller
    ) -> dict[str, str]:
        own_centre(caller, centre_id)
        payload = ReinforcementRequested(centre_id=centre_id, **body.model_dump())
        event_id = await publish(payload, centre_id, centre_id)
        return {"event_id": event_id, "event_type": payload.event_type}

    return router
