"""The FHIR R4 door (issue 36): a referrer's software submits, reads and withdraws
referrals as FHIR resources, with the same tokens and through the same handlers as the
JSON door (``handlers.submit``, ``handlers.withdraw``), so the same rules apply.

- ``POST /fhir`` (a transaction ``Bundle``) or ``POST /fhir/ServiceRequest`` (a Bundle,
  or a ServiceRequest with its Patient and Observations contained): a referral.
- ``GET /fhir/ServiceRequest/{id}``: where it stands; ``GET /fhir/Appointment?based-on=``:
  its booking; ``POST /fhir/ServiceRequest/{id}/$cancel``: its withdrawal.
- ``GET /fhir/metadata``: the CapabilityStatement.

Every answer is ``application/fhir+json``; every refusal an ``OperationOutcome`` in
French, the token's 401 and 403 too (``FhirRoute``). A referrer reads and withdraws its
own referrals only: another's is as missing as one that does not exist (404).
The mapping is ``domain/fhir.py``'s.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError

from services.intake.domain import fhir
from services.intake.domain.referrers import RateLimited
from services.intake.domain.status import FINAL, message
from services.intake.domain.withdrawal import Standing
from services.intake.handlers import Outcome, Verdict, replayed
from services.intake.http.door import Caller, Door, TheDoor, referrer_of
from services.intake.store import history, referrals
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import Envelope, ReferralSubmitted, WithdrawalReason, new_id, utcnow
from shared.labels import FHIR_REFUSALS, FHIR_SERVICE_REQUEST_NOTES
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR
from shared.openapi import BODY
from shared.senders import SenderRefused


class FhirResponse(JSONResponse):
    media_type = fhir.FHIR_JSON


def outcome(code: int, issues: list[fhir.Issue], headers: dict[str, str] | None = None) -> Response:
    return FhirResponse(fhir.operation_outcome(issues), status_code=code, headers=headers)


_ISSUE_TYPES = {401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported"}


class FhirRoute(APIRoute):
    """A route whose refusals are OperationOutcomes, whatever raises them (the token's
    401 and 403 come from a dependency, before the route's own code)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                text = FHIR_REFUSALS.get(exc.status_code, FHIR_REFUSALS[422])
                issue = fhir.Issue(_ISSUE_TYPES.get(exc.status_code, "processing"), text)
                return outcome(exc.status_code, [issue], dict(exc.headers or {}))
            except RequestValidationError as exc:
                issues = [
                    fhir.Issue("invalid", FHIR_REFUSALS[422], ".".join(map(str, e["loc"])))
                    for e in exc.errors()
                ]
                return outcome(422, issues)

        return answer


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {fhir.FHIR_JSON: {"schema": schema}}}


_RESOURCE = {"type": "object", "required": ["resourceType"]}
_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **_content(_OUTCOME)}
    for code, text in {
        401: "No valid bearer token (OperationOutcome, login).",
        403: "The token's role may not refer, or the referrer is not registered.",
        404: "No referral of the caller's with this id.",
        422: "Invalid: every issue, in French, on its FHIR element (expression).",
    }.items()
}
_SUBMITTED: dict[int | str, dict[str, Any]] = {
    **_REFUSALS,
    200: {
        "description": "A transaction-response Bundle, or the same referral again "
        "(its reference already submitted, same content).",
        **_content(_RESOURCE),
    },
    201: {
        "description": "The ServiceRequest as recorded (Location: its URL).",
        **_content(_RESOURCE),
    },
    409: {"description": "This reference was used for another referral.", **_content(_OUTCOME)},
    429: {"description": "Past the referrer's quota (Retry-After).", **_content(_OUTCOME)},
    # The body's size and depth, judged before any route (shared.http.BodyLimit): the
    # JSON door's refusal, application/json.
    **BODY,
}
_SUBMITTED.pop(404)
# A transaction answers its Bundle with 200, whatever its entries' statuses.
_TRANSACTION = {code: answer for code, answer in _SUBMITTED.items() if code != 201}
_BUNDLE_BODY = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {"resourceType": {"enum": ["Bundle"]}, "type": {"enum": ["transaction"]}},
    "description": "A transaction Bundle: a Patient, a ServiceRequest, Observations.",
}
_REQUEST_BODY = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"enum": ["ServiceRequest", "Bundle"]}},
    "description": "A ServiceRequest (Patient and Observations contained), or a "
    "transaction Bundle.",
}
_CANCEL_BODY = {
    "type": "object",
    "required": ["resourceType", "parameter"],
    "properties": {
        "resourceType": {"enum": ["Parameters"]},
        "parameter": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "valueCode"],
                "properties": {
                    "name": {"enum": ["reason"]},
                    "valueCode": {"enum": [r.value for r in WithdrawalReason]},
                },
            },
        },
    },
}


def _body_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_content(schema)}}


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)


@router.get(
    "/metadata",
    summary="FHIR CapabilityStatement: what the FHIR door supports",
    response_class=FhirResponse,
    responses={200: {"description": "The CapabilityStatement.", **_content(_RESOURCE)}},
)
async def metadata() -> Response:
    return FhirResponse(fhir.capability_statement(utcnow().date().isoformat()))


async def _admitted(door: Door, owner: tuple[str, str]) -> Any:
    """The JSON door's admission: registered (403), within its quotas (429)."""
    try:
        async with door.database.transaction() as session:
            return await door.handlers.admit(session, *owner, utcnow())
    except RateLimited as limited:
        retry = {"Retry-After": str(limited.retry_after)}
        text = FHIR_REFUSALS[429].format(seconds=limited.retry_after)
        return outcome(429, [fhir.Issue("throttled", text)], retry)
    except SenderRefused:
        text = FHIR_SERVICE_REQUEST_NOTES["unknown_referrer"]
        issue = fhir.Issue("forbidden", text, "ServiceRequest.requester")
        return outcome(403, [issue])


def _read_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep: BodyLimit first
        return None


async def _submit(
    request: Request, caller: Caller, door: TheDoor, kinds: tuple[str, ...]
) -> Outcome | Response:
    """Both submitting routes, for a body of one of ``kinds``: the handlers' Outcome,
    or the refusal."""
    owner = referrer_of(caller, door.territories)
    registration = await _admitted(door, owner)
    if isinstance(registration, Response):
        return registration
    body = _read_json(await request.body())
    if isinstance(body, dict) and body.get("resourceType") not in kinds:
        text = f"Ce point d'entrée prend : {' ou '.join(kinds)} (transaction)."
        return outcome(422, [fhir.Issue("structure", text, "resourceType")])
    read = fhir.submission(body)
    if isinstance(read, list):
        return outcome(422, read)
    submission_id = new_id()
    # The referrer is the token's: a FHIR requester is not trusted to say it.
    data = {**read, "referrer": {"kind": owner[0], "identifier": owner[1]}}
    envelope = Envelope(
        id=submission_id,
        type=ReferralSubmitted.event_type,
        source="http",
        correlation_id=submission_id,
        data=data,
    )
    for attempt in range(2):
        try:
            async with door.database.transaction() as session:
                delivery = Delivery(session=session, envelope=envelope, source="intake")
                answered = await door.handlers.submit(
                    delivery, owner=owner, registration=registration
                )
            break
        except IntegrityError:
            # The same reference submitted twice at once: the second sees the first.
            if attempt:
                raise
    door.relay.notify()
    return answered


async def _refusal(answered: Outcome) -> Response | None:
    if answered.verdict is Verdict.CONFLICT:
        now = message(answered.status or "received", answered.detail)
        issues = [
            fhir.Issue("duplicate", r.message, "ServiceRequest.identifier")
            for r in answered.reasons
        ]
        issues.append(fhir.Issue("informational", f"{answered.referral_id} : {now}"))
        return outcome(409, issues)
    if answered.verdict is Verdict.REJECTED:
        return outcome(422, fhir.issues_from_reasons(answered.reasons))
    return None


@router.post(
    "",
    summary="FHIR transaction: a Bundle with the Patient, the ServiceRequest, Observations",
    response_class=FhirResponse,
    responses=_TRANSACTION,
    openapi_extra=_body_of(_BUNDLE_BODY),
)
async def transaction(request: Request, caller: Caller, door: TheDoor) -> Response:
    answered = await _submit(request, caller, door, ("Bundle",))
    if isinstance(answered, Response):
        return answered
    refused = await _refusal(answered)
    if refused is not None:
        return refused
    found = await _own(door, str(answered.referral_id), referrer_of(caller, door.territories))
    assert found is not None  # just recorded, the caller's
    created = answered.verdict is Verdict.ACCEPTED
    return FhirResponse(fhir.transaction_response(fhir.service_request(found), created))


@router.post(
    "/ServiceRequest",
    summary="Submit a referral as a FHIR ServiceRequest (or a transaction Bundle)",
    response_class=FhirResponse,
    status_code=201,
    responses=_SUBMITTED,
    openapi_extra=_body_of(_REQUEST_BODY),
)
async def create(request: Request, caller: Caller, door: TheDoor) -> Response:
    answered = await _submit(request, caller, door, ("ServiceRequest", "Bundle"))
    if isinstance(answered, Response):
        return answered
    refused = await _refusal(answered)
    if refused is not None:
        return refused
    found = await _own(door, str(answered.referral_id), referrer_of(caller, door.territories))
    assert found is not None  # just recorded, the caller's
    location = f"{str(request.base_url).rstrip('/')}/fhir/ServiceRequest/{found.referral_id}"
    created = answered.verdict is Verdict.ACCEPTED
    return FhirResponse(
        fhir.service_request(found),
        status_code=201 if created else 200,
        headers={"Location": location} if created else None,
    )


async def _own(door: Door, referral_id: str, owner: tuple[str, str]) -> fhir.Referral | None:
    """The caller's own referral as FHIR reads it, or None (missing, or another's)."""
    async with door.database.transaction() as session:
        row = await referrals.referral(session, referral_id)
        if row is None or (row.referrer_kind, row.referrer_id) != owner:
            return None
        current = await replayed(session, referral_id)
        entries = await history.history_by_time(session, referral_id)
    detail = dict(row.detail or {})
    return fhir.Referral(
        referral_id=row.id,
        reference=row.reference,
        status=row.status,
        detail=detail,
        message=message(row.status, detail),
        final=current is not None and current.state in FINAL,
        received_at=as_utc(row.received_at).isoformat(),
        updated_at=as_utc(row.updated_at).isoformat(),
        history=tuple((h.status, dict(h.detail or {})) for h in entries),
    )


def _missing(referral_id: str) -> Response:
    issue = fhir.Issue("not-found", FHIR_REFUSALS[404], f"ServiceRequest/{referral_id}")
    return outcome(404, [issue])


@router.get(
    "/ServiceRequest/{referral_id}",
    summary="Read a referral as a FHIR ServiceRequest: where it stands",
    response_class=FhirResponse,
    responses={**_REFUSALS, 200: {"description": "The ServiceRequest.", **_content(_RESOURCE)}},
)
async def read(referral_id: str, caller: Caller, door: TheDoor) -> Response:
    found = await _own(door, referral_id, referrer_of(caller, door.territories))
    if found is None:
        return _missing(referral_id)
    return FhirResponse(fhir.service_request(found))


@router.get(
    "/Appointment",
    summary="Search the Appointment of a referral (based-on its ServiceRequest)",
    response_class=FhirResponse,
    responses={
        **_REFUSALS,
        200: {"description": "A searchset Bundle: the booking, if any.", **_content(_RESOURCE)},
    },
)
async def appointments(
    request: Request,
    caller: Caller,
    door: TheDoor,
    based_on: Annotated[str, Query(alias="based-on", max_length=80)],
) -> Response:
    referral_id = based_on.removeprefix("ServiceRequest/")
    found = await _own(door, referral_id, referrer_of(caller, door.territories))
    # Another's referral, or none: an empty search, as FHIR answers a search.
    booked = fhir.appointment(found) if found is not None else None
    base = f"{str(request.base_url).rstrip('/')}/fhir"
    return FhirResponse(fhir.searchset([booked] if booked else [], base))


def _reason(raw: bytes) -> WithdrawalReason | Response:
    body = _read_json(raw)
    given = None
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        parameters = body.get("parameter")
        # Whatever a client sends: a "parameter" that is no list names no reason.
        for parameter in parameters if isinstance(parameters, list) else []:
            if isinstance(parameter, dict) and parameter.get("name") == "reason":
                given = parameter.get("valueCode")
    try:
        return WithdrawalReason(str(given))
    except ValueError:
        choices = ", ".join(f"{r.value} ({WITHDRAWAL_REASONS_FR[r]})" for r in WithdrawalReason)
        text = f"Indiquez le motif du retrait (paramètre « reason »), l'un de : {choices}."
        return outcome(422, [fhir.Issue("required", text, "Parameters.parameter('reason')")])


@router.post(
    "/ServiceRequest/{referral_id}/$cancel",
    summary="Withdraw one of the caller's referrals ($cancel, with a reason)",
    response_class=FhirResponse,
    responses={
        **_REFUSALS,
        200: {"description": "The ServiceRequest, revoked (now or before).", **_content(_RESOURCE)},
        409: {"description": "At its end (seen, no-show): not withdrawn.", **_content(_OUTCOME)},
        **BODY,
    },
    openapi_extra=_body_of(_CANCEL_BODY),
)
async def cancel(referral_id: str, request: Request, caller: Caller, door: TheDoor) -> Response:
    owner = referrer_of(caller, door.territories)
    reason = _reason(await request.body())
    if isinstance(reason, Response):
        return reason
    async with door.database.transaction() as session:
        withdrawn = await door.handlers.withdraw(session, referral_id, owner, reason)
    if withdrawn is None:
        return _missing(referral_id)
    door.relay.notify()
    if withdrawn.standing is Standing.FINAL:
        now = message(withdrawn.status, withdrawn.detail)
        text = f"Cette demande ne peut plus être retirée : elle est close. {now}"
        return outcome(409, [fhir.Issue("business-rule", text, "ServiceRequest.status")])
    found = await _own(door, referral_id, owner)
    if found is None:  # a refused submission: nothing to withdraw (handled as FINAL)
        return _missing(referral_id)
    return FhirResponse(fhir.service_request(found))
