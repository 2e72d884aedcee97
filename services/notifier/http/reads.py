"""What a notifier route that returns a patient's name writes down (issue 34), as
intake's routes do: one entry per referral whose name it answered, in the same
transaction as the read, with the token's subject (the authority), the console's
account and page when the console says them (``X-Aiguillage-Account``,
``X-Aiguillage-Page``: context, the subject stays who read); and the log itself, for
the data-protection officer (``GET /identity-reads``, DPO tokens only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import reads
from shared.auth import BEARER, Principal, Role, forbid
from shared.db import Database, as_utc
from shared.events import utcnow
from shared.openapi import AUTHENTICATED

# A list read again within this window by the same account (refreshed on its own, a
# page reloaded, the day exported) is the same access: written once. Another person of
# the same centre (the same token subject, another console account) is another access.
SAME_READ = timedelta(minutes=15)


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
        "reason": None,
    }


async def write_reads(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """The reads, each once per reader, account, route and referral within
    ``SAME_READ``."""
    if not entries:
        return
    first = entries[0]
    known = await reads.recent(
        session, first["reader"], first["account"], first["route"], first["at"] - SAME_READ
    )
    await reads.add(session, [e for e in entries if e["referral_id"] not in known])


@dataclass(frozen=True)
class ReadsApi:
    database: Database
    authenticate: Callable[..., Principal]


def _api(request: Request) -> ReadsApi:
    api: ReadsApi = request.app.state.reads_api
    return api


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    return _api(request).authenticate(credentials)


router = APIRouter(tags=["identity reads"], responses=AUTHENTICATED)


@router.get(
    "/identity-reads",
    summary="The log of the patients' names read from the notifier, for the DPO",
)
async def identity_reads(
    caller: Annotated[Principal, Depends(_caller)],
    api: Annotated[ReadsApi, Depends(_api)],
    referral_id: Annotated[str | None, Query(max_length=64)] = None,
    account: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Who read which referral's patient name here, newest first: of one patient (every
    referral of the patient ``referral_id`` names, by its pseudonym; none when the
    notifier never heard of it), of one account (the console's login, or a token's
    subject), or all."""
    if caller.role is not Role.DPO:
        raise forbid("the data-protection officer's only")
    async with api.database.transaction() as session:
        refs: list[str] | None = None
        if referral_id:
            found = await reads.patient_ref(session, referral_id)
            refs = [found] if found is not None else []
        entries = await reads.newest(
            session, patient_refs=refs, account=account or None, limit=limit
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
