"""A referrer's own referrals ("Mes demandes" in the console), searchable.

A referrer (or a Centre 15) sees the referrals it sent and nothing else: the token's
subject says whose they are, never a parameter. The patient's names are shown (the
referrer wrote them; it must recognise its patients), nothing more of the identity.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.intake.domain.status import message
from services.intake.http.door import Caller, TheDoor, referrer_of
from services.intake.http.reads import read_entry, write_reads
from services.intake.store import referrals
from shared.db import as_utc
from shared.openapi import AUTHENTICATED

MAX_LIMIT = 200
# A search by name reads the referrer's newest referrals this far back (names are sealed).
SCAN = 2000

router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)


@router.get("/referrals", summary="The caller's own referrals, newest first, searchable")
async def own_referrals(
    caller: Caller,
    door: TheDoor,
    request: Request,
    q: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    kind, identifier = referrer_of(caller, door.territories)  # 403 for anyone else
    words = q.strip().lower().split()[:5]
    found: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []
    async with door.database.transaction() as session:
        # The names are sealed: the search reads the newest SCAN, unsealed, here.
        rows = await referrals.of_referrer(session, kind, identifier, SCAN if words else limit)
        vault = door.handlers.vault
        for r in rows:
            first = await vault.field(session, r, "first_name") or ""
            last = await vault.field(session, r, "last_name") or ""
            text = " ".join((r.reference, first, last, r.status)).lower()
            if all(word in text for word in words):
                found.append(_own(r, first, last))
                shown.append(read_entry(caller, request, "GET /referrals", r.id, r.patient_ref))
            if len(found) == limit:
                break
        # The names shown are reads of the identity, written down (issue 34).
        await write_reads(session, shown)
    return {"referrals": found}


def _own(r: Any, first_name: str, last_name: str) -> dict[str, Any]:
    return {
        "referral_id": r.id,
        "reference": r.reference,
        "patient": {"first_name": first_name, "last_name": last_name},
        "status": r.status,
        "detail": r.detail,
        "message": message(r.status, r.detail or {}),
        "received_at": as_utc(r.received_at).isoformat(),
        "updated_at": as_utc(r.updated_at).isoformat(),
    }
