"""A referrer withdraws one of its own referrals over HTTP (issue 27).

``POST /referrals/{id}/withdraw`` and ``DELETE /referrals/{id}`` (the same route: some
clients send no body with a DELETE, others expect one) take ``{"reason": <code>}``, a
code of a short list (``WithdrawalReason``). The withdrawal goes through the use case of
the broker door's ``referral.cancelled`` (``IntakeHandlers.on_cancelled``): recorded in
the status (``cancelled``, ``by: referrer``, the reason and its code), then on the bus,
whence the scheduler frees the slot and the notifier tells the centre, the patient and
the referrer.

Deny by default: only the referrer that sent the referral withdraws it; anyone else
gets the 404 of a referral it cannot read. Withdrawing again is no error (200, the
same state, nothing emitted twice); a referral already at its end (seen, no-show, a
refused submission) answers 409 with where it stands.
"""

import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from services.intake import store
from services.intake.api import _referrer_of
from services.intake.handlers import IntakeHandlers, replayed
from services.intake.status import FINAL, State, message
from shared.auth import Keys, Principal, authenticator
from shared.consumer import Delivery
from shared.db import Database
from shared.events import CancelledBy, Envelope, ReferralCancelled, WithdrawalReason
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR
from shared.openapi import AUTHENTICATED, BODY, ProblemBody, not_found
from shared.outbox import OutboxRelay
from shared.settings import ServiceName
from shared.territory import Territories

log = structlog.get_logger(__name__)

_BODY_SCHEMA = {
    "type": "object",
    "required": ["reason"],
    "properties": {
        "reason": {
            "type": "string",
            "enum": [r.value for r in WithdrawalReason],
            "description": "Why: "
            + "; ".join(f"{r.value} ({WITHDRAWAL_REASONS_FR[r]})" for r in WithdrawalReason),
        }
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Withdrawn, now or before: the referral's status (cancelled, with "
        "by and the reason), the same on every call."
    },
    **not_found("No such referral of the caller's."),
    409: {
        "model": ProblemBody,
        "description": "The referral is at its end (seen, no_show, rejected): "
        "referral_final, with its status and message.",
    },
    422: {
        "model": ProblemBody,
        "description": "No reason, or one not on the list (invalid_withdrawal_reason).",
    },
    **BODY,
}


def _problem(code: int, error_code: str, text: str, field: str | None, **extra: Any) -> Response:
    reason = {"code": error_code, "field": field, "message": text}
    return JSONResponse(
        status_code=code, content={"error_code": error_code, "reasons": [reason], **extra}
    )


def _reason_of(raw: bytes) -> WithdrawalReason | Response:
    """The reason the body names, or the 422 that says, in French, what to send."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep: BodyLimit refuses first
        body = None
    given = body.get("reason") if isinstance(body, dict) else None
    try:
        return WithdrawalReason(str(given))
    except ValueError:
        choices = ", ".join(f"{r.value} ({WITHDRAWAL_REASONS_FR[r]})" for r in WithdrawalReason)
        return _problem(
            422,
            "invalid_withdrawal_reason",
            f"Indiquez le motif du retrait, l'un de : {choices}.",
            "reason",
        )


def _state(row: Any) -> dict[str, Any]:
    detail = dict(row.detail or {})
    return {
        "referral_id": row.id,
        "status": row.status,
        "detail": detail,
        "message": message(row.status, detail),
    }


def build_withdrawal_router(
    handlers: IntakeHandlers, database: Database, relay: OutboxRelay, auth_keys: Keys
) -> APIRouter:
    router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)
    Caller = Annotated[Principal, Depends(authenticator(auth_keys, ServiceName.INTAKE))]
    territories = Territories.of(handlers.settings)
    body = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    }

    async def withdraw(referral_id: str, request: Request, caller: Caller) -> Response:
        owner = _referrer_of(caller, territories)  # 403 for a role that refers nothing
        reason = _reason_of(await request.body())
        if isinstance(reason, Response):
            return reason
        async with database.transaction() as session:
            answer = await _withdraw(handlers, session, referral_id, owner, reason)
        relay.notify()
        return answer

    router.post(
        "/referrals/{referral_id}/withdraw",
        summary="Withdraw one of the caller's referrals, with a reason from the list",
        responses=_RESPONSES,
        openapi_extra=body,
    )(withdraw)
    router.delete(
        "/referrals/{referral_id}",
        summary="Withdraw one of the caller's referrals (as POST .../withdraw)",
        responses=_RESPONSES,
        openapi_extra=body,
    )(withdraw)
    return router


async def _withdraw(
    handlers: IntakeHandlers,
    session: Any,
    referral_id: str,
    owner: tuple[str, str],
    reason: WithdrawalReason,
) -> Response:
    """In one transaction, the referral's row locked: what to answer, and the
    withdrawal recorded and staged when there is one to make."""
    if not await store.lock(session, referral_id):
        refused = await store.rejection(session, referral_id)
        if refused is None or (refused.referrer_kind, refused.referrer_id) != owner:
            raise HTTPException(404, f"no referral or submission {referral_id}")
        return _final(referral_id, State.REJECTED.value, {})
    row = await store.referral(session, referral_id)
    if row is None or (row.referrer_kind, row.referrer_id) != owner:
        # Another referrer's referral is as invisible as a missing one.
        raise HTTPException(404, f"no referral or submission {referral_id}")
    current = await replayed(session, referral_id)
    if current is not None and current.state is State.WITHDRAWN:
        return JSONResponse(_state(row))  # withdrawn already: nothing more to do
    if current is not None and current.state in FINAL:
        return _final(referral_id, row.status, dict(row.detail or {}))
    cancel = ReferralCancelled(
        referral_id=referral_id,
        cancelled_by=CancelledBy.REFERRER,
        reason=WITHDRAWAL_REASONS_FR[reason],
        reason_code=reason,
    )
    envelope = Envelope.wrap(cancel, source="intake", correlation_id=referral_id)
    # The broker door's use case: sender None, the owner was checked above.
    await handlers.on_cancelled(Delivery(session=session, envelope=envelope, source="intake"))
    log.info("referral withdrawn over http", referral_id=referral_id, reason=reason.value)
    withdrawn = await store.referral(session, referral_id)
    return JSONResponse(_state(withdrawn))


def _final(referral_id: str, status: str, detail: dict[str, Any]) -> Response:
    now = message(status, detail)
    return _problem(
        409,
        "referral_final",
        f"Cette demande ne peut plus être retirée : elle est close. {now}",
        None,
        referral_id=referral_id,
        status=status,
        detail=detail,
        message=now,
    )
