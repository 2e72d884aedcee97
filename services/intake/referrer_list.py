"""A referrer's own referrals ("Mes demandes" in the console), searchable.

A referrer (or a Centre 15) sees the referrals it sent and nothing else: the token's
subject says whose they are, never a parameter. The patient's names are shown (the
referrer wrote them; it must recognise its patients), nothing more of the identity.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, select

from services.intake.api import _referrer_of
from services.intake.status import message
from services.intake.tables import identities, referrals
from shared.auth import Keys, Principal, authenticator
from shared.db import Database, as_utc
from shared.openapi import AUTHENTICATED
from shared.settings import ServiceName
from shared.territory import Territories

MAX_LIMIT = 200


def build_list_router(database: Database, auth_keys: Keys) -> APIRouter:
    router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)
    Caller = Annotated[Principal, Depends(authenticator(auth_keys, ServiceName.INTAKE))]
    territories = Territories.of(auth_keys)  # the settings: a SAMU's name is checked

    @router.get("/referrals", summary="The caller's own referrals, newest first, searchable")
    async def own_referrals(
        caller: Caller,
        q: Annotated[str, Query(max_length=100)] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    ) -> dict[str, Any]:
        kind, identifier = _referrer_of(caller, territories)  # 403 for anyone else
        query = (
            select(
                referrals.c.id,
                referrals.c.reference,
                referrals.c.status,
                referrals.c.detail,
                referrals.c.received_at,
                referrals.c.updated_at,
                identities.c.first_name,
                identities.c.last_name,
            )
            .join(identities, identities.c.referral_id == referrals.c.id)
            .where(referrals.c.referrer_kind == kind, referrals.c.referrer_id == identifier)
            .order_by(referrals.c.received_at.desc())
            .limit(limit)
        )
        words = q.strip().lower().split()[:5]
        for word in words:
            pattern = f"%{word.replace('%', '').replace('_', '')}%"
            query = query.where(
                or_(
                    func.lower(referrals.c.reference).like(pattern),
                    func.lower(identities.c.last_name).like(pattern),
                    func.lower(identities.c.first_name).like(pattern),
                    func.lower(referrals.c.status).like(pattern),
                )
            )
        async with database.transaction() as session:
            rows = (await session.execute(query)).all()
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

    return router
