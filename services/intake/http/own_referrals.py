"""A referrer's own referrals ("Mes demandes" in the console), searchable.

A referrer (or a Centre 15) sees the referrals it sent and nothing else: the token's
subject says whose they are, never a parameter. The patient's names are shown (the
referrer wrote them; it must recognise its patients), nothing more of the identity.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.intake.domain.status import message
from services.intake.http.door import Caller, TheDoor, referrer_of
from services.intake.store import referrals
from shared.db import as_utc
from shared.openapi import AUTHENTICATED

MAX_LIMIT = 200

router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)


@router.get("/referrals", summary="The caller's own referrals, newest first, searchable")
async def own_referrals(
    caller: Caller,
    door: TheDoor,
    q: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    kind, identifier = referrer_of(caller, door.territories)  # 403 for anyone else
    words = q.strip().lower().split()[:5]
    async with door.database.transaction() as session:
        rows = await referrals.of_referrer(session, kind, identifier, words, limit)
    return {
        "referrals": [
            {
                "referral_id": r.id,
                "reference": r.reference,
                "patient": {"first_name": r.first_name, "last_name": r.last_name},
                "status": r.status,
                "detail": r.detail,
                "message": message(r.status, r.detail or {}),
                "received_at": as_utc(r.received_at).isoformat(),
                "updated_at": as_utc(r.updated_at).isoformat(),
            }
            for r in rows
        ]
    }
