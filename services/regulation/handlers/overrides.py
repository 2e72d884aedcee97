"""A regulator's decision supersedes the one that stood: from Centre 15's door
(regulation.decided) or its HTTP API, which share ``apply_override``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.override import InvalidOverride, regulator_outcome
from services.regulation.handlers.decisions import record_decision
from services.regulation.store.cases import load_case
from services.regulation.store.protocols import ProtocolBook
from shared.consumer import Delivery, PermanentError
from shared.events import Decision, Priority, ReferralRegulated, RegulationDecided, utcnow
from shared.senders import ActorKind, Sender, SenderRefused
from shared.territory import NATIONAL, OUTSIDE_TERRITORY, OutsideTerritory, Scope, Territories

log = structlog.get_logger(__name__)


class UnknownReferral(LookupError):
    """No case for this referral (yet: its referral.received may still be in flight)."""


@dataclass(frozen=True)
class Override:
    referral_id: str
    regulator_id: str
    decision: Decision
    priority: Priority | None
    comment: str
    # The deciding SAMU's territory; None: an operator, who answers for itself.
    scope: Scope | None = None


async def apply_override(
    session: AsyncSession, book: ProtocolBook, override: Override, now: datetime
) -> ReferralRegulated:
    """Append the regulator's decision, superseding the one that stands, under the
    protocol that applies now; the event to stage is returned.

    Raises ``UnknownReferral``, ``OutsideTerritory`` and ``InvalidOverride``.
    """
    record = await load_case(session, override.referral_id, lock=True)
    if record is None:
        raise UnknownReferral(f"no referral {override.referral_id} in regulation")
    if override.scope is not None and not override.scope.covers(record.departement):
        raise OutsideTerritory(override.scope)
    protocol = await book.active(session)
    outcome = regulator_outcome(
        record.case(),
        protocol,
        decision=override.decision,
        priority=override.priority,
        regulator_id=override.regulator_id,
        comment=override.comment,
        now=now,
    )
    regulated = await record_decision(
        session,
        record,
        outcome,
        decided_by=override.regulator_id,
        now=now,
        supersedes=record.current_decision_id,
        comment=override.comment,
    )
    log.info(
        "regulator decided",
        referral_id=override.referral_id,
        decision=outcome.decision.value,
        priority=outcome.priority.value if outcome.priority else None,
        supersedes=record.current_decision_id,
        protocol_version=outcome.protocol_version,
    )
    return regulated


class OverrideHandlers:
    """The ``decisions`` door's regulation.decided."""

    book: ProtocolBook
    territories: Territories

    def _scope(self, sender: Sender | None) -> Scope | None:
        """The territory a decision's sender decides for: a SAMU's, the national Centre
        15's; None for an operator in its own name (or no broker: in-memory)."""
        if sender is None or sender.trusted:
            return None
        if sender.kind is not ActorKind.CENTRE_15:
            raise SenderRefused("sender_not_allowed", "only Centre 15 decides", "type")
        scope = self.territories.scope(sender.actor or NATIONAL)
        # Resolved by the sender policy, which refuses what covers nothing: an operator
        # acting for the national Centre 15 where it is not enabled covers it all.
        return scope or Scope(NATIONAL, frozenset(), national=True)

    async def on_regulation_decided(self, delivery: Delivery) -> None:
        # Parsed by its (type, version), as before the table of routes: a version the
        # catalogue lacks is dead-lettered as invalid at once, not retried.
        event = delivery.envelope.payload()
        if isinstance(event, RegulationDecided):
            await self._override(delivery, event)

    async def _override(self, delivery: Delivery, event: RegulationDecided) -> None:
        override = Override(
            referral_id=event.referral_id,
            regulator_id=event.regulator_id,
            decision=event.decision,
            priority=event.priority,
            comment=event.comment,
            scope=self._scope(delivery.sender),
        )
        try:
            # UnknownReferral propagates: retried, then dead-lettered.
            regulated = await apply_override(delivery.session, self.book, override, utcnow())
        except InvalidOverride as exc:
            raise PermanentError("invalid_decision", str(exc)) from exc
        except OutsideTerritory as exc:
            # Answered on the SAMU's own key (request.refused), recorded, never applied.
            raise SenderRefused(
                OUTSIDE_TERRITORY, "the referral is outside the SAMU's départements", "referral_id"
            ) from exc
        await delivery.emit(regulated, correlation_id=event.referral_id)
