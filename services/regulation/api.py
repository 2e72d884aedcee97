"""Centre 15's HTTP API: a regulator's decision, the audit trail, the held queue; each
SAMU's for the départements it covers only (shared.territory)."""

# No ``from __future__ import annotations``: FastAPI reads the ``Caller`` dependency,
# defined inside ``build_router``, from the live annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from services.regulation.domain.override import InvalidOverride
from services.regulation.handlers import Override, UnknownReferral, apply_override
from services.regulation.store import ProtocolBook, case_departement, decision_trail, held_cases
from shared.auth import Keys, Principal, authenticator
from shared.db import Database
from shared.events import Decision, Priority, utcnow
from shared.openapi import AUTHENTICATED, BODY, TerritoryRefusal, invalid, not_found
from shared.outbox import OutboxRelay, add_to_outbox
from shared.settings import ServiceName
from shared.territory import Scope, Territories, centre_15_scope, samu_and_regulator

SOURCE = "regulation"


class DecisionRequest(BaseModel):
    """A regulator confirms, changes or releases the decision that stands."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    priority: Priority | None = Field(
        None, description="Orientations only; default: the protocol's priority for the case."
    )
    comment: str = Field("", max_length=2000)


def build_router(
    database: Database,
    relay: OutboxRelay,
    book: ProtocolBook,
    auth_keys: Keys,
    territories: Territories | None = None,
) -> APIRouter:
    router = APIRouter(tags=["regulation"], responses=AUTHENTICATED)
    Caller = Annotated[Principal, Depends(authenticator(auth_keys, ServiceName.REGULATION))]
    known = territories or Territories()

    def regulator(caller: Principal) -> Scope:
        """The caller's territory: 403 for anyone but a known SAMU's Centre 15."""
        return centre_15_scope(known, caller)

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
    async def decide(referral_id: str, body: DecisionRequest, caller: Caller) -> dict[str, Any]:
        # The token names the regulator: the trail records who decided, not what they say.
        scope = regulator(caller)
        override = Override(
            referral_id=referral_id,
            regulator_id=samu_and_regulator(caller.subject)[1],
            decision=body.decision,
            priority=body.priority,
            comment=body.comment,
            scope=scope,  # another territory's referral: 403 outside_territory
        )
        try:
            async with database.transaction() as session:
                regulated = await apply_override(session, book, override, utcnow())
                envelope = await add_to_outbox(
                    session, regulated, source=SOURCE, correlation_id=referral_id
                )
        except UnknownReferral as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except InvalidOverride as exc:
            raise HTTPException(422, str(exc)) from exc
        relay.notify()
        return {
            **regulated.model_dump(mode="json", include=_DECISION_FIELDS),
            "event_id": envelope.id,
        }

    @router.get(
        "/referrals/{referral_id}/decisions",
        summary="The audit trail: every decision on the referral, oldest first",
        responses=not_found("No such referral in regulation."),
    )
    async def trail(referral_id: str, caller: Caller) -> dict[str, Any]:
        scope = regulator(caller)
        async with database.transaction() as session:
            # Another territory's referral is as invisible as a missing one.
            if not scope.covers(await case_departement(session, referral_id)):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
            found = await decision_trail(session, referral_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
        return found

    @router.get("/held", summary="Referrals held for a regulator, longest waiting first")
    async def held(caller: Caller) -> dict[str, Any]:
        scope = regulator(caller)
        async with database.transaction() as session:
            return {"held": await held_cases(session, None if scope.national else scope)}

    @router.get("/protocols", summary="Protocol versions in the order they applied")
    async def protocol_versions(caller: Caller) -> dict[str, Any]:
        regulator(caller)
        async with database.transaction() as session:
            active = await book.active(session)
            return {"active": active.version, "activations": await book.history(session)}

    return router


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
