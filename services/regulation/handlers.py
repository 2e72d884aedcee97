"""Regulation's consumers: each received referral gets a decision from the protocol
that applies; a published protocol becomes the one that applies; a regulator's
decision supersedes the one that stood."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.override import InvalidOverride, regulator_outcome
from services.regulation.domain.protocol import load_protocol
from services.regulation.domain.rules import decide
from services.regulation.store import (
    CaseRecord,
    ProtocolBook,
    ProtocolConflict,
    add_case,
    load_case,
    record_decision,
)
from shared.consumer import Delivery, PermanentError
from shared.events import (
    Decision,
    Priority,
    ProtocolPublished,
    ReferralReceived,
    ReferralRegulated,
    RegulationDecided,
    utcnow,
)
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


class RegulationHandlers:
    def __init__(self, book: ProtocolBook, territories: Territories | None = None) -> None:
        self.book = book
        self.territories = territories or Territories()

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

    async def on_received(self, delivery: Delivery) -> None:
        referral = delivery.payload_as(ReferralReceived)
        session = delivery.session
        if await load_case(session, referral.referral_id) is not None:
            # The same referral under another event id: its decision already stands.
            log.info("referral already regulated", referral_id=referral.referral_id)
            return
        record = CaseRecord(
            referral_id=referral.referral_id,
            patient_ref=referral.patient_ref,
            age=referral.age,
            commune_insee=referral.commune_insee,
            departement=referral.departement,
            referrer_kind=referral.referrer.kind,
            purpose=referral.purpose,
            clinical=referral.clinical,
        )
        await add_case(session, record, received_at=referral.submitted_at)
        protocol = await self.book.active(session)
        now = utcnow()
        outcome = decide(record.case(), protocol, now)
        regulated = await record_decision(session, record, outcome, decided_by="protocol", now=now)
        await delivery.emit(regulated, correlation_id=referral.referral_id)

    async def on_decision(self, delivery: Delivery) -> None:
        """The ``decisions`` queue: protocol versions and regulators' decisions."""
        payload = delivery.envelope.payload()
        if isinstance(payload, ProtocolPublished):
            await self._protocol(delivery, payload)
        elif isinstance(payload, RegulationDecided):
            await self._override(delivery, payload)

    async def _protocol(self, delivery: Delivery, event: ProtocolPublished) -> None:
        try:
            protocol = load_protocol(event.document)
        except ValidationError as exc:
            raise PermanentError("invalid_protocol", str(exc)) from exc
        if protocol.version != event.protocol_version:
            raise PermanentError(
                "protocol_version_mismatch",
                f"protocol_version {event.protocol_version!r} but the document is version "
                f"{protocol.version!r}",
            )
        try:
            activated = await self.book.activate(
                delivery.session,
                protocol,
                source=delivery.envelope.source,
                event_id=delivery.envelope.id,
                now=utcnow(),
            )
        except ProtocolConflict as exc:
            raise PermanentError("protocol_version_conflict", str(exc)) from exc
        log.info(
            "protocol version applies" if activated else "protocol version already applies",
            protocol_version=protocol.version,
        )

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
