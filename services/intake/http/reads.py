"""What a route that returns an identity writes down (issue 34): one entry per referral
whose identity it answered, with the token's subject (the authority), the console's
account, page and reason when the console says them (``X-Aiguillage-Account``,
``X-Aiguillage-Page``, ``X-Aiguillage-Reason``: context, the subject stays who read)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from shared.auth import Principal
from shared.events import utcnow


def read_entry(
    caller: Principal, request: Request, route: str, referral_id: str, patient_ref: str | None
) -> dict[str, Any]:
    headers = request.headers
    return {
        "at": utcnow(),
        "referral_id": referral_id,
        "patient_ref": patient_ref,
        "reader_role": caller.role.value,
        "reader": caller.subject[:200],
        "account": (headers.get("x-aiguillage-account") or "")[:320] or None,
        "route": route,
        "page": (headers.get("x-aiguillage-page") or "")[:100] or None,
        "reason": (headers.get("x-aiguillage-reason") or "")[:1000] or None,
    }
