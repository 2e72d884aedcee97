"""The HTTP door: the same submission as on the broker, and the status of a referral;
Centre 15's list of the patients escalated to it."""

import json
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from services.intake.domain.referrers import RateLimited, Registration
from services.intake.domain.status import FINAL, State, message
from services.intake.handlers import Outcome, Verdict, replayed
from services.intake.http.door import Caller, Door, TheDoor, problem, referrer_of
from services.intake.http.reads import read_entry, write_reads
from services.intake.store import history, referrals, rejections
from shared.auth import Role, forbid
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import Envelope, Reason, ReferralSubmitted, ReferrerKind, new_id, utcnow
from shared.geo import commune
from shared.openapi import AUTHENTICATED, BODY, ErrorBody, ProblemBody, not_found
from shared.senders import SenderRefused
from shared.territory import centre_15_scope

log = structlog.get_logger(__name__)

_REFERRAL_SCHEMA = {"$ref": "#/components/schemas/ReferralSubmitted"}

# Every route is behind a token: 401 and 403 are documented once, for all.
router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)


@router.post(
    "/referrals",
    summary="Submit a referral",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REFERRAL_SCHEMA}},
        }
    },
    responses={
        200: {"description": "Already submitted with this reference: the same referral."},
        # Two refusals: the token's actor may not refer so (detail), or the referrer
        # is not registered (error_code unknown_referrer, with its reason).
        403: {
            "model": ErrorBody | ProblemBody,
            "description": "Not in the caller's own name, or an unregistered referrer.",
        },
        409: {
            "model": ProblemBody,
            "description": "This reference was used for another referral: the reason "
            "(reference_conflict, in French), and that referral's referral_id, status, "
            "detail and message, which the refusal leaves as they were.",
        },
        **BODY,
        429: {
            "model": ProblemBody,
            "description": "Past the referrer's quota per minute or per day "
            "(rate_limited); Retry-After says when to come back. A referrer that is "
            "not registered is refused with 403 unknown_referrer (outside development).",
        },
        422: {
            "model": ProblemBody,
            "description": "Refused: every reason, each with a stable code and field.",
        },
    },
)
async def submit(request: Request, caller: Caller, door: TheDoor) -> Response:
    allowed = referrer_of(caller, door.territories)
    submission_id = new_id()
    registration = await _admitted(door, allowed)
    if isinstance(registration, Response):
        return registration
    body = _body(await request.body(), submission_id)
    if isinstance(body, Response):
        return body
    referrer = body.get("referrer")
    if isinstance(referrer, dict):
        named = (referrer.get("kind"), referrer.get("identifier"))
        # An unknown kind is a validation error (422), reported with the others.
        known_kind = isinstance(named[0], str) and named[0] in {k.value for k in ReferrerKind}
        if known_kind and isinstance(named[1], str) and named != allowed:
            raise forbid("a referrer submits in its own name only")
    envelope = Envelope(
        id=submission_id,
        type=ReferralSubmitted.event_type,
        source="http",
        correlation_id=submission_id,
        data=body,
    )
    for attempt in range(2):
        try:
            async with door.database.transaction() as session:
                delivery = Delivery(session=session, envelope=envelope, source="intake")
                outcome = await door.handlers.submit(
                    delivery, owner=allowed, registration=registration
                )
            break
        except IntegrityError:
            # The same reference submitted twice at once: the second sees the first.
            if attempt:
                raise
    door.relay.notify()
    return _answer(outcome, submission_id)


async def _admitted(door: Door, allowed: tuple[str, str]) -> Registration | Response | None:
    """Registered (403 unknown_referrer) and within its quotas (429), before the body is
    read: the count commits on its own, every attempt counts."""
    try:
        async with door.database.transaction() as session:
            return await door.handlers.admit(session, *allowed, utcnow())
    except RateLimited as limited:
        reason = Reason(code="rate_limited", message=limited.cause)
        return problem(
            429, "rate_limited", (reason,), headers={"Retry-After": str(limited.retry_after)}
        )
    except SenderRefused as refused:
        reason = Reason(code=refused.code, field=refused.field, message=refused.cause)
        return problem(403, refused.code, (reason,))


def _body(raw: bytes, submission_id: str) -> dict[str, Any] | Response:
    """The body as a JSON object, or the 422 that says it is none."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep: BodyLimit first
        reason = Reason(code="invalid_json", message=f"The body is not JSON: {exc}")
        return problem(422, "invalid_json", (reason,), submission_id=submission_id)
    if not isinstance(body, dict):
        reason = Reason(code="invalid_type", message="The body must be a JSON object.")
        return problem(422, "invalid_type", (reason,), submission_id=submission_id)
    return body


def _answer(outcome: Outcome, submission_id: str) -> Response:
    if outcome.verdict is Verdict.ACCEPTED:
        return JSONResponse(
            status_code=201,
            content={"referral_id": outcome.referral_id, "status": "received"},
            headers={"Location": f"/referrals/{outcome.referral_id}"},
        )
    if outcome.verdict is Verdict.DUPLICATE:
        # The same referral: where it stands now (it may have an appointment by now).
        current = outcome.status or State.RECEIVED.value
        return JSONResponse(
            status_code=200,
            content={
                "referral_id": outcome.referral_id,
                "status": current,
                "detail": outcome.detail,
                "message": message(current, outcome.detail),
                "duplicate": True,
            },
        )
    if outcome.verdict is Verdict.CONFLICT:
        # Where the referral the reference names stands: unchanged by this refusal.
        current = outcome.status or State.RECEIVED.value
        return problem(
            409,
            "reference_conflict",
            outcome.reasons,
            referral_id=outcome.referral_id,
            status=current,
            detail=outcome.detail,
            message=message(current, outcome.detail),
        )
    code = outcome.reasons[0].code if len(outcome.reasons) == 1 else "invalid_referral"
    return problem(422, code, outcome.reasons, submission_id=submission_id)


@router.get(
    "/referrals/{referral_id}",
    summary="What became of a referral",
    responses=not_found("No such referral or submission of the caller's."),
)
async def read(referral_id: str, caller: Caller, door: TheDoor, request: Request) -> dict[str, Any]:
    kind, identifier = referrer_of(caller, door.territories)
    async with door.database.transaction() as session:
        row = await referrals.referral(session, referral_id)
        if row is None:
            refused = await rejections.rejection(session, referral_id)
            if refused is None or (refused.referrer_kind, refused.referrer_id) != (
                kind,
                identifier,
            ):
                # Another referrer's referral is as invisible as a missing one.
                raise HTTPException(404, f"no referral or submission {referral_id}")
            return _refused(refused)
        own = (row.referrer_kind, row.referrer_id) == (kind, identifier)
        # A SAMU calls back the patients of its départements escalated to it (by the
        # protocol, a regulator or a centre), whoever referred them: it reads those,
        # with the identity it needs to call; any other referral, another
        # territory's escalation too, is as invisible to it as to a referrer that did
        # not send it.
        in_territory = caller.role is Role.CENTRE_15 and centre_15_scope(
            door.territories, caller
        ).covers(row.departement)
        # Outside its queue, a regulator reads a file of its territory by saying why
        # (the console's prompt): the reason is written down with the read (issue 34).
        reasoned = bool(request.headers.get("x-aiguillage-reason", "").strip())
        call_back = in_territory and (row.status == State.ESCALATED.value or reasoned)
        if not own and not call_back:
            raise HTTPException(404, f"no referral or submission {referral_id}")
        entries = await history.history_by_time(session, referral_id)
        sealed = await referrals.identity(session, referral_id) if call_back else None
        person = None if sealed is None else await door.handlers.vault.person(session, sealed)
        if person is not None:
            # Who read which patient's identity, written with the read (issue 34).
            entry = read_entry(caller, request, "GET /referrals/{id}", row.id, row.patient_ref)
            await write_reads(session, [entry])
        current = await replayed(session, referral_id)
    body = _referral(row, entries, final=current is not None and current.state in FINAL)
    if person is not None:
        body["identity"] = _call_back(person, row)
        log.info("identity read by centre 15", referral_id=row.id, reader=caller.subject)
    return body


def _refused(refused: Any) -> dict[str, Any]:
    """A refused submission, as its sender reads it back."""
    return {
        "submission_id": refused.id,
        "reference": refused.reference,
        "referral_id": refused.referral_id,
        "status": State.REJECTED.value,
        "message": message(State.REJECTED.value, {}),
        "final": True,
        "reasons": refused.reasons,
        "at": as_utc(refused.rejected_at).isoformat(),
    }


def _referral(row: Any, entries: Any, *, final: bool) -> dict[str, Any]:
    """A referral with its history, as its referrer reads it."""
    return {
        "referral_id": row.id,
        "reference": row.reference,
        "referrer": {"kind": row.referrer_kind, "identifier": row.referrer_id},
        "status": row.status,
        "detail": row.detail,
        "message": message(row.status, row.detail or {}),
        # At its end (seen, no-show, withdrawn): nothing changes it, nor withdraws it.
        "final": final,
        "received_at": as_utc(row.received_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
        "history": [
            {
                "status": h.status,
                "detail": h.detail,
                "message": message(h.status, h.detail or {}),
                "at": as_utc(h.at).isoformat(),
            }
            for h in entries
        ],
    }


@router.get(
    "/escalations",
    summary="Centre 15's list: the patients escalated to it, to call back (Centre 15)",
)
async def escalations(
    caller: Caller, door: TheDoor, request: Request, limit: int = 100
) -> dict[str, Any]:
    """Every referral of the SAMU's départements whose status is escalated (by the
    protocol, a regulator or a centre), newest first, with what a regulator needs to
    call the patient back. Kept here, so Centre 15 reads it whether or not a page was
    open when it came."""
    scope = centre_15_scope(door.territories, caller)  # 403: not a known SAMU's
    async with door.database.transaction() as session:
        rows = await referrals.with_status(
            session,
            State.ESCALATED.value,
            limit=max(1, min(limit, 500)),
            departements=None if scope.national else scope.departements,
        )
        people = [await door.handlers.vault.person(session, r) for r in rows]
        # Every identity answered is a read, written down (issue 34).
        route = "GET /escalations"
        await write_reads(
            session, [read_entry(caller, request, route, r.id, r.patient_ref) for r in rows]
        )
    log.info("escalations read by centre 15", count=len(rows), reader=caller.subject)
    return {
        "escalations": [
            {
                "referral_id": r.id,
                "referrer": {"kind": r.referrer_kind, "identifier": r.referrer_id},
                "detail": r.detail,
                "message": message(r.status, r.detail or {}),
                "updated_at": as_utc(r.updated_at).isoformat(),
                "identity": _call_back(person, r),
            }
            for r, person in zip(rows, people, strict=True)
        ]
    }


def _call_back(person: Any, row: Any) -> dict[str, Any]:
    """What a regulator needs to call a patient back."""
    town = commune(row.commune_insee)
    return {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "birth_date": person.birth_date.isoformat(),
        "phone": person.phone,
        "address": person.address,
        "commune": {
            "insee": row.commune_insee,
            "name": town.name if town else None,
            "departement": row.departement,
        },
    }


def document_referral_schema(app: FastAPI) -> None:
    """Put the referral's JSON schema in the OpenAPI components: the route reads the raw
    body itself (so that every error gets our reason codes), but documents the model."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = default()
            schema = ReferralSubmitted.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["ReferralSubmitted"] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
