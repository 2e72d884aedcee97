"""What a centre reads of the decisions behind its patients: for each appointment of
its day, the reasons regulation gave (severity findings, risk factors, the rest), the
protocol version, whether a regulator or the protocol decided, and when. A centre
reads its own patients only, of the day it asks for; no identity travels here (the
notifier's day list names the patient)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from services.scheduler import store
from services.scheduler.http.state import ApiDep, Caller
from shared.auth import Role, forbid
from shared.db import as_utc
from shared.openapi import AUTHENTICATED, CentreId
from shared.paris import paris_day_bounds

PARIS = ZoneInfo("Europe/Paris")

router = APIRouter(tags=["centres"], responses=AUTHENTICATED)

# The reasons' code families (services/regulation/domain/rules.py): a sign of severity
# or a minor sign found, and a risk factor.
FINDINGS = ("severity.", "minor.")
RISKS = ("risk.",)


def split_reasons(reasons: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Regulation's reasons as the centre reads them: findings, risk factors, others."""
    out: dict[str, list[dict[str, Any]]] = {"findings": [], "risk_factors": [], "other": []}
    for reason in reasons:
        code = str(reason.get("code", ""))
        kind = (
            "findings"
            if code.startswith(FINDINGS)
            else "risk_factors"
            if code.startswith(RISKS)
            else "other"
        )
        out[kind].append({"code": code, "message": str(reason.get("message", ""))})
    return out


@router.get(
    "/centres/{centre_id}/regulations",
    summary="The decision behind each of the centre's appointments of a day (its own only)",
    responses={403: {"description": "Not this centre."}},
)
async def day_regulations(
    centre_id: CentreId, caller: Caller, api: ApiDep, day: date | None = None
) -> dict[str, Any]:
    if not caller.may_act_as(Role.CENTRE, centre_id):
        raise forbid("a centre reads the decisions behind its own patients only")
    local_day = day or datetime.now(PARIS).date()
    start, end = paris_day_bounds(local_day)
    async with api.database.transaction() as session:
        rows = await store.day_regulations(session, centre_id, start, end)
    return {
        "centre_id": centre_id,
        "day": local_day.isoformat(),
        "regulations": [
            {
                "appointment_id": r.appointment_id,
                "referral_id": r.referral_id,
                **split_reasons(list(r.reasons or [])),
                "protocol_version": r.protocol_version,
                # Who decided, not which regulator: the centre needs no more.
                "by": "protocol" if r.decided_by == "protocol" else "regulator",
                "regulated_at": as_utc(r.regulated_at).isoformat(),
            }
            for r in rows
        ],
    }
