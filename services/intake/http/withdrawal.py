"""A referrer withdraws one of its own referrals over HTTP (issue 27).

``POST /referrals/{id}/withdraw`` and ``DELETE /referrals/{id}`` (the same route: some
clients send no body with a DELETE, others expect one) take ``{"reason": <code>}``, a
code of a short list (``WithdrawalReason``). The withdrawal goes through the use case of
the broker door's ``referral.cancelled`` (``handlers.cancellations``): recorded in
the status (``cancelled``, ``by: referrer``, the reason and its code), then on the bus,
whence the scheduler frees the slot and the notifier tells the centre, the patient and
the referrer.

Deny by default: only the referrer that sent the referral withdraws it; anyone else
gets the 404 of a referral it cannot read. Withdrawing again is no error (200, the
same state, nothing emitted twice); a referral already at its end (seen, no-show, a
refused submission) answers 409 with where it stands.
"""

import json
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from services.intake.domain.status import message
from services.intake.domain.withdrawal import Standing
from services.intake.handlers import Withdrawal
from services.intake.http.door import Caller, TheDoor, referrer_of
from shared.events import WithdrawalReason
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR
from shared.openapi import AUTHENTICATED, BODY, ProblemBody, not_found

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


def _state(withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        "referral_id": withdrawal.referral_id,
        "status": withdrawal.status,
        "detail": withdrawal.detail,
        "message": message(withdrawal.status, withdrawal.detail),
    }


router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)
_WITH_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
}


async def withdraw(referral_id: str, request: Request, caller: Caller, door: TheDoor) -> Response:
    owner = referrer_of(caller, door.territories)  # 403 for a role that refers nothing
    reason = _reason_of(await request.body())
    if isinstance(reason, Response):
        return reason
    async with door.database.transaction() as session:
        withdrawal = await door.handlers.withdraw(session, referral_id, owner, reason)
    if withdrawal is None:
        # Another referrer's referral is as invisible as a missing one.
        raise HTTPException(404, f"no referral or submission {referral_id}")
    door.relay.notify()
    if withdrawal.standing is Standing.FINAL:
        return _final(withdrawal)
    # Withdrawn now, or before (nothing more done): the same answer.
    return JSONResponse(_state(withdrawal))


router.post(
    "/referrals/{referral_id}/withdraw",
    summary="Withdraw one of the caller's referrals, with a reason from the list",
    responses=_RESPONSES,
    openapi_extra=_WITH_BODY,
)(withdraw)
router.delete(
    "/referrals/{referral_id}",
    summary="Withdraw one of the caller's referrals (as POST .../withdraw)",
    responses=_RESPONSES,
    openapi_extra=_WITH_BODY,
)(withdraw)


def _final(withdrawal: Withdrawal) -> Response:
    now = message(withdrawal.status, withdrawal.detail)
    return _problem(
        409,
        "referral_final",
        f"Cette demande ne peut plus être retirée : elle est close. {now}",
        None,
        referral_id=withdrawal.referral_id,
        status=withdrawal.status,
        detail=withdrawal.detail,
        message=now,
    )
