"""What a route that returns an identity writes down (issue 34): one entry per referral
whose identity it answered, with the token's subject (the authority), the console's
account, page and reason when the console says them (``X-Aiguillage-Account``,
``X-Aiguillage-Page``, ``X-Aiguillage-Reason``: context, the subject stays who read)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.http.door import Caller, TheDoor
from services.intake.store import reads, referrals
from shared.auth import Principal, Role, forbid
from shared.db import as_utc
from shared.events import utcnow
from shared.openapi import AUTHENTICATED


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
        # Percent-encoded by the console (a header is one line of Latin-1).
        "reason": unquote(headers.get("x-aiguillage-reason") or "").strip()[:1000] or None,
    }


# A page read again within this window (a list refreshed on its own, a page reloaded) is
# the same access: written once. A read with a reason is always written.
SAME_READ = timedelta(minutes=15)


async def write_reads(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """The reads, each once per reader, route and referral within ``SAME_READ``."""
    if not entries:
        return
    first = entries[0]
    known = await reads.recent(session, first["reader"], first["route"], first["at"] - SAME_READ)
    fresh = [e for e in entries if e["reason"] or e["referral_id"] not in known]
    await reads.add(session, fresh)


router = APIRouter(tags=["identity reads"], responses=AUTHENTICATED)


@router.get(
    "/identity-reads",
    summary="The log of identity reads, for the data-protection officer (DPO)",
)
async def identity_reads(
    caller: Caller,
    door: TheDoor,
    referral_id: Annotated[str | None, Query(max_length=64)] = None,
    account: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Who read which referral's identity, newest first: of one patient (every referral
    of the patient ``referral_id`` names, by its pseudonym), of one account (the
    console's login, or a token's subject), or all."""
    if caller.role is not Role.DPO:
        raise forbid("the data-protection officer's only")
    async with door.database.transaction() as session:
        patient_ref = None
        if referral_id:
            row = await referrals.referral(session, referral_id)
            if row is None:
                raise HTTPException(404, f"no referral {referral_id}")
            patient_ref = row.patient_ref
        entries = await reads.newest(
            session, patient_ref=patient_ref, account=account or None, limit=limit
        )
    return {
        "reads": [
            {
                "at": as_utc(e.at).isoformat(),
                "referral_id": e.referral_id,
                "reader_role": e.reader_role,
                "reader": e.reader,
                "account": e.account,
                "route": e.route,
                "page": e.page,
                "reason": e.reason,
            }
            for e in entries
        ]
    }
