"""Centre 15's HTTP API: a regulator's decision, the audit trail, the held queue; each
SAMU's for the départements it covers only (shared.territory)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from services.regulation.domain.override import InvalidOverride
from services.regulation.handlers import Override, UnknownReferral, apply_override
from services.regulation.http.state import ApiDep, Caller
from services.regulation.store.cases import case_departement, decision_trail, held_cases
from shared.events import Decision, Priority, utcnow
from shared.openapi import AUTHENTICATED, BODY, TerritoryRefusal, invalid, not_found
from shared.outbox import add_to_outbox
from shared.territory import samu_and_regulator

SOURCE = "regulation"

router = APIRouter(tags=["regulation"], responses=AUTHENTICATED)


class DecisionRequest(BaseModel):
    """A regulator confirms, changes or releases the decision that stands."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    priority: Priority | None = Field(
        None, description="Orientations only; default: the protocol's priority for the case."
    )
    comment: str = Field("", max_length=2000)


@router.post(
    "/referrals/{referral_id}/decision",
    status_code=status.HTTP_201_CREATED,
    summary="A regulator's decision: it supersedes the one that stands",
    responses={
        **not_found("No such referral in regulation (yet)."),
        403: {
            "model": TerritoryRefusal,
            "description": "Not Centre 15, a subject that is no known SAMU, or a referral "
            "outside the SAMU's départements (error_code outside_territory, in French).",
        },
        **BODY,
        **invalid("The decision does not fit its schema, or cannot stand as given."),
    },
)
async def decide(
    referral_id: str, body: DecisionRequest, caller: Caller, api: ApiDep
) -> dict[str, Any]:
    # The token names the regulator: the trail records who decided, not what they say.
    scope = api.regulator(caller)
    override = Override(
        referral_id=referral_id,
        regulator_id=samu_and_regulator(caller.subject)[1],
        decision=body.decision,
        priority=body.priority,
        comment=body.comment,
        scope=scope,  # another territory's referral: 403 outside_territory
    )
    try:
        async with api.database.transaction() as session:
            regulated = await apply_override(session, api.book, override, utcnow())
            envelope = await add_to_outbox(
                session, regulated, source=SOURCE, correlation_id=referral_id
            )
    except UnknownReferral as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidOverride as exc:
        raise HTTPException(422, str(exc)) from exc
    api.relay.notify()
    return {
        **regulated.model_dump(mode="json", include=_DECISION_FIELDS),
        "event_id": envelope.id,
    }


@router.get(
    "/referrals/{referral_id}/decisions",
    summary="The audit trail: every decision on the referral, oldest first",
    responses=not_found("No such referral in regulation."),
)
async def trail(referral_id: str, caller: Caller, api: ApiDep) -> dict[str, Any]:
    scope = api.regulator(caller)
    async with api.database.transaction() as session:
        # Another territory's referral is as invisible as a missing one.
        if not scope.covers(await case_departement(session, referral_id)):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
        found = await decision_trail(session, referral_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
    return found


@router.get("/held", summary="Referrals held for a regulator, longest waiting first")
async def held(caller: Caller, api: ApiDep) -> dict[str, Any]:
    scope = api.regulator(caller)
    async with api.database.transaction() as session:
        return {"held": await held_cases(session, None if scope.national else scope)}


@router.get("/protocols", summary="Protocol versions in the order they applied")
async def protocol_versions(caller: Caller, api: ApiDep) -> dict[str, Any]:
    api.regulator(caller)
    async with api.database.transaction() as session:
        active = await api.book.active(session)
        return {"active": active.version, "activations": await api.book.history(session)}


_DECISION_FIELDS = {
    "referral_id",
    "decision_id",
    "decision",
    "priority",
    "deadline",
    "test_eligible",
    "reasons",
    "protocol_version",
    "decided_by",
    "supersedes",
}
