"""The centres' HTTP API: the day's patients (its own only), and what happened to them.

What a centre reports goes to the scheduler's door on the broker, which decides; the
outcomes' time rule (shared/outcomes.py) is checked here first, with this service's
clock, so that a centre hears at once, with the code and the French reason, what the
door would refuse later on its reply key.

The routes are module-level functions on ``router``; what they need (the database, the
door, the keys, the clock) is the ``CentresApi`` that ``install`` puts in the app's
state, read per request by ``Depends``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.handlers.sealing import ContactVault
from services.notifier.http.reads import ReadsApi, read_entry, write_reads
from services.notifier.http.reads import router as reads_router
from services.notifier.store import centres

# The bearer scheme every service's authenticator reads (one security scheme in the
# OpenAPI for all of them).
from shared.auth import BEARER, Keys, Principal, Role, authenticator, forbid
from shared.db import Database, as_utc
from shared.events import (
    CentreCancelReason,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Envelope,
    EventPayload,
    PatientEscalated,
    ReinforcementRequested,
    utcnow,
)
from shared.events.base import IsoDate, JsonInt
from shared.openapi import AUTHENTICATED, BODY, CentreId, ProblemBody, Responses, not_found
from shared.outcomes import (
    OutcomeRefused,
    correctable_until,
    recorded,
    refuse_correction,
    refuse_record,
)
from shared.paris import paris_day_bounds
from shared.settings import ServiceName, Settings

# Sends an actor's request on the ingress, in its name (ServiceRuntime.publish_at_door).
DoorPublish = Callable[..., Awaitable[Envelope]]

PARIS = ZoneInfo("Europe/Paris")


class Outcome(StrEnum):
    SEEN = "seen"
    NO_SHOW = "no_show"
    # The centre could not hold the consultation: the patient is booked again.
    CANCELLED = "cancelled"
    ESCALATED = "escalated"


class OutcomeReport(BaseModel):
    outcome: Outcome
    reason: str = Field("", max_length=500)
    # Why a consultation was cancelled ("cancelled" only), from the page's short list.
    reason_code: CentreCancelReason | None = None
    # Strict: lax mode would read 1 or "yes" as a prescription.
    test_prescribed: StrictBool = False


class Correction(BaseModel):
    outcome: ConsultationOutcome = Field(description="The outcome that stands from now on.")
    reason: str = Field("", max_length=500)
    test_prescribed: StrictBool = False


# The outcomes' time rule, and the correction's window: a code and a French reason.
OUT_OF_TIME: Responses = {
    409: {
        "model": ProblemBody,
        "description": "Not now: before the slot's start (seen, cancelled) or end "
        "(no-show), an outcome already recorded, nothing to correct, a cancelled "
        "consultation (never corrected, nor corrected into), or past the 24 hours a "
        "correction is allowed (shared/outcomes.py).",
    }
}


def _refused(refused: OutcomeRefused) -> JSONResponse:
    return JSONResponse(
        status_code=409,
        content={
            "error_code": refused.code,
            "reasons": [{"code": refused.code, "message": refused.message}],
        },
    )


def _outcome_at(row: Any) -> datetime | None:
    return as_utc(row.outcome_at) if row.outcome_at is not None else None


class ReinforcementRequest(BaseModel):
    count: JsonInt = Field(ge=1, le=100)
    profession: str = Field(min_length=2, max_length=100)
    from_date: IsoDate
    note: str = Field("", max_length=500)


@dataclass(frozen=True)
class CentresApi:
    """What the centres' routes need, in the app's state (``install``). ``clock``: what
    the outcomes' time rule is judged by (tests set it)."""

    database: Database
    publish_at_door: DoorPublish
    authenticate: Callable[..., Principal]
    clock: Callable[[], datetime] = utcnow
    # Unseals the patients' names of the day list (issue 34).
    vault: ContactVault = field(default_factory=lambda: ContactVault.of(Settings()))


def install(
    app: FastAPI,
    database: Database,
    publish_at_door: DoorPublish,
    auth_keys: Keys,
    clock: Callable[[], datetime] = utcnow,
    vault: ContactVault | None = None,
) -> None:
    """The centres' routes on ``app``, and the log of the names they answered (the
    DPO's), with what they need in its state."""
    authenticate = authenticator(auth_keys, ServiceName.NOTIFIER)
    app.state.centres_api = CentresApi(
        database,
        publish_at_door,
        authenticate,
        clock,
        vault or ContactVault.of(Settings()),
    )
    app.state.reads_api = ReadsApi(database, authenticate)
    app.include_router(router)
    app.include_router(reads_router)


def _api(request: Request) -> CentresApi:
    api: CentresApi = request.app.state.centres_api
    return api


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    """The caller whose token is for the notifier, or a 401 (shared.auth)."""
    return _api(request).authenticate(credentials)


Api = Annotated[CentresApi, Depends(_api)]
Caller = Annotated[Principal, Depends(_caller)]
router = APIRouter(tags=["centres"], responses=AUTHENTICATED)


def own_centre(caller: Principal, centre_id: str) -> None:
    if not caller.may_act_as(Role.CENTRE, centre_id):
        raise forbid("a centre sees and reports on its own patients only")


async def publish(
    api: CentresApi, payload: EventPayload, correlation_id: str, centre_id: str
) -> str:
    """The centre's report, sent in its name through the centres' door (the
    scheduler's ingress queue, which checks it against the appointment and applies
    it), as if the centre had published it on the broker itself."""
    envelope = await api.publish_at_door(
        payload, actor=f"centre-{centre_id}", correlation_id=correlation_id
    )
    return envelope.id


async def own_appointment(api: CentresApi, centre_id: str, appointment_id: str) -> Any:
    async with api.database.transaction() as session:
        row = await centres.appointment(session, appointment_id)
    if row is None or row.centre_id != centre_id:
        raise HTTPException(404, f"no appointment {appointment_id} at {centre_id}")
    return row


@router.get("/centres/{centre_id}/appointments", summary="The centre's patients of a day")
async def day_list(
    centre_id: CentreId, caller: Caller, api: Api, request: Request, day: date | None = None
) -> dict[str, Any]:
    """The day's appointments, each with its patient's name: every name answered is
    written down (who, when, which referral, from which page), in the read's
    transaction (issue 34)."""
    own_centre(caller, centre_id)
    local_day = day or datetime.now(PARIS).date()
    # The day's bounds in UTC, as the appointments are kept: a Paris time compared as
    # it is on SQLite (text) missed the appointments of 23:00-24:00 UTC (the day after
    # in Paris); and a day is not 24 hours when the clocks change.
    start, end = paris_day_bounds(local_day)
    async with api.database.transaction() as session:
        rows = await centres.day_appointments(session, centre_id, start, end)
        described = await centres.centre_description(session, centre_id)
        names = {r.appointment_id: await _patient_name(api.vault, session, r) for r in rows}
        await write_reads(
            session,
            [
                read_entry(caller, request, DAY_LIST_ROUTE, r.referral_id, r.patient_ref)
                for r in rows
                if names[r.appointment_id] is not None
            ],
        )
    return {
        "centre_id": centre_id,
        # Its name and address as the ARS described it (None: not heard of yet).
        "centre": None
        if described is None
        else {
            "name": described.name,
            "address": described.address,
            "commune_insee": described.commune_insee,
        },
        "day": local_day.isoformat(),
        "appointments": [_listed(r, names[r.appointment_id]) for r in rows],
    }


# The route as the log of identity reads names it.
DAY_LIST_ROUTE = "GET /centres/{id}/appointments"


async def _patient_name(vault: ContactVault, session: AsyncSession, row: Any) -> str | None:
    """The patient's names, unsealed; None while the contact has not arrived."""
    if row.key_id is None and row.first_name is None:
        return None
    first = await vault.field(session, row, "first_name")
    last = await vault.field(session, row, "last_name")
    return f"{first} {last}" if first else None


def _listed(r: Any, patient_name: str | None) -> dict[str, Any]:
    """One appointment of the centre's day list."""
    return {
        "appointment_id": r.appointment_id,
        "referral_id": r.referral_id,
        "patient_ref": r.patient_ref,
        # The centre receives the patient: it may know who is coming.
        "patient_name": patient_name,
        "start": as_utc(r.start).isoformat(),
        "end": as_utc(r.end).isoformat(),
        "box": r.box,
        "priority": r.priority,
        "status": r.status,
        # What the consultation is for: the test the centre prescribes.
        "test_eligible": r.test_eligible,
        # Who referred the patient, as a kind (GP, pharmacist...): None if not known.
        "referrer_kind": r.referrer_kind,
        # Its patient restricted its processing (issue 34): listed, never exported.
        "restricted": bool(r.restricted),
        # When its outcome was recorded, and until when it may be corrected.
        "outcome_at": _iso(_outcome_at(r)),
        "correctable_until": _iso(
            correctable_until(at) if (at := _outcome_at(r)) is not None else None
        ),
    }


@router.post(
    "/centres/{centre_id}/appointments/{appointment_id}/outcome",
    status_code=202,
    summary="Seen, no-show, cancelled by the centre (the patient booked again), or "
    "escalated to Centre 15",
    response_model=dict[str, str],
    responses={**not_found("No such appointment at this centre."), **OUT_OF_TIME, **BODY},
)
async def report(
    centre_id: CentreId, appointment_id: str, body: OutcomeReport, caller: Caller, api: Api
) -> Any:
    own_centre(caller, centre_id)
    row = await own_appointment(api, centre_id, appointment_id)
    if body.outcome is not Outcome.ESCALATED:
        # An escalation is never too early: a patient may worsen in the waiting room.
        refused = refuse_record(
            ConsultationOutcome(body.outcome.value),
            start=as_utc(row.start),
            end=as_utc(row.end),
            now=api.clock(),
            already=recorded(row.status),
        )
        if refused is not None:
            return _refused(refused)
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
    elif body.outcome is Outcome.CANCELLED:
        payload = ConsultationCancelled(
            appointment_id=appointment_id,
            referral_id=row.referral_id,
            centre_id=centre_id,
            reason_code=body.reason_code,
        )
    else:
        payload = PatientEscalated(
            referral_id=row.referral_id,
            centre_id=centre_id,
            appointment_id=appointment_id,
            # Read by Centre 15 and the referrer as it is: French.
            reason=body.reason or "aggravation de l'état du patient",
        )
    event_id = await publish(api, payload, row.referral_id, centre_id)
    return {"event_id": event_id, "event_type": payload.event_type}


@router.post(
    "/centres/{centre_id}/appointments/{appointment_id}/correction",
    status_code=202,
    summary="Correct a recorded outcome (seen into no-show, or back) within 24 hours",
    response_model=dict[str, str],
    responses={**not_found("No such appointment at this centre."), **OUT_OF_TIME, **BODY},
)
async def correct(
    centre_id: CentreId, appointment_id: str, body: Correction, caller: Caller, api: Api
) -> Any:
    own_centre(caller, centre_id)
    row = await own_appointment(api, centre_id, appointment_id)
    refused = refuse_correction(
        body.outcome,
        start=as_utc(row.start),
        end=as_utc(row.end),
        now=api.clock(),
        already=recorded(row.status),
        recorded_at=_outcome_at(row),
    )
    if refused is not None:
        return _refused(refused)
    payload = ConsultationCorrected(
        appointment_id=appointment_id,
        referral_id=row.referral_id,
        centre_id=centre_id,
        outcome=body.outcome,
        test_prescribed=body.test_prescribed,
        reason=body.reason,
    )
    event_id = await publish(api, payload, row.referral_id, centre_id)
    return {"event_id": event_id, "event_type": payload.event_type}


@router.post(
    "/centres/{centre_id}/reinforcements",
    status_code=202,
    summary="Ask the ARS for health professionals",
    responses=BODY,
)
async def reinforce(
    centre_id: CentreId, body: ReinforcementRequest, caller: Caller, api: Api
) -> dict[str, str]:
    own_centre(caller, centre_id)
    payload = ReinforcementRequested(centre_id=centre_id, **body.model_dump())
    event_id = await publish(api, payload, centre_id, centre_id)
    return {"event_id": event_id, "event_type": payload.event_type}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
