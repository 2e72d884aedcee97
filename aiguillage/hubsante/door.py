"""The door process (``aiguillage run hubsante``): a Hub Santé client on the hub's
broker, and a Centre 15 on Aiguillage's.

- In: ``<id>.message`` on the hub. A case the regulator oriented to a consultation is
  published on ``<ns>.ingress`` as ``referral.submitted`` from Centre 15 (operator user
  acting for ``centre_15``, or the ``centre_15`` user itself); updates and ``Cancel``
  become ``regulation.decided`` / ``referral.cancelled``; an update's patient details
  or location become ``referral.updated`` (intake applies them, the scheduler may book
  nearer).
- Answers: the AMQP ack once the case is held (in the door's table and confirmed by
  Aiguillage's broker), then the hub's functional Ack or an RS-ERROR, always to the
  publisher. Several messages at once, one case's in arrival order (``lanes``), each
  within a time budget; bounds and JSON first (``guard``), never a requeue.
- Out: Centre 15's answers (``reply.centre-15.#`` on ``<ns>.events``) mapped back to
  the case: RS-SAS-RDV for the appointment, an RS-EDA-MAJ note for the rest.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from sqlalchemy import ColumnElement, and_, delete, insert, select, update

from aiguillage.hubsante import cases, guard, messages, schema
from aiguillage.hubsante.lanes import Lanes
from aiguillage.hubsante.messages import ErrorCode
from aiguillage.hubsante.store import applied, open_database
from aiguillage.hubsante.store import cases as table
from shared.db import Database
from shared.events import (
    CancelledBy,
    Decision,
    Envelope,
    Priority,
    ReferralCancelled,
    ReferralSubmitted,
    RegulationDecided,
    new_id,
)
from shared.http import development
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology, hubsante_queue

log = structlog.get_logger(__name__)

HUB_EXCHANGE = "hubsante"
# The key a message was published with on the hub, when the hub passes it on (our test
# hub does). The hub itself refuses a sender inconsistency at its entry; the door checks
# again whatever reaches it.
ORIGIN_HEADER = "x-hubsante-routing-key"
# Hub messages handled at once (one case's still one after the other).
CONCURRENCY = 8
# Each hub message's budget, its validation and handling: past it the publisher is told
# (700, send it again) and the message acked, so that none holds its place for long.
# Under the hub's 5 s TTL (its test topology).
BUDGET_SECONDS = 3.0
# A publish on the hub waits that long for its confirm at most.
SEND_SECONDS = 10.0
# Intake's codes that mean the case id was used for another case.
_CONFLICT = {"reference_conflict"}
# What goes back as a note on the LRM's case, in French, for the regulator.
_NOTE = {
    "escalated": "Aiguillage : patient réorienté vers le SAMU / les urgences",
    "escalated_by_centre": "Aiguillage : le centre de consultation rend le patient au SAMU",
    "refused": "Aiguillage : orientation en centre de consultation refusée",
    "home_follow_up": "Aiguillage : suivi à domicile par le médecin traitant",
    "waitlisted": "Aiguillage : patient en liste d'attente, aucun créneau disponible",
    "held_for_regulator": "Aiguillage : décision du régulateur inapplicable telle quelle, "
    "dossier en attente d'un régulateur d'Aiguillage",
}
# Development only (tests, the demo): a reserved domain, never a mailbox of anyone's.
DEVELOPMENT_REGULATOR_EMAIL = "regulation@samu.invalid"


def regulator_email(settings: Settings) -> str:
    """The SAMU's functional e-mail for RS-SAS-RDV's regulator block: the setting, or
    in development only a reserved address; refused empty anywhere else."""
    if settings.hubsante_regulator_email:
        return settings.hubsante_regulator_email
    if development(settings):
        return DEVELOPMENT_REGULATOR_EMAIL
    raise ValueError(
        "AIGUILLAGE_HUBSANTE_REGULATOR_EMAIL is empty: every RS-SAS-RDV names the SAMU's "
        "functional e-mail (docs/operations/settings.md)"
    )


def _as_samu(referral: ReferralSubmitted, samu: str | None) -> ReferralSubmitted:
    """A SAMU refers in its own name, answered on its own key (intake's door checks
    both); the LRM's case keeps its sender in the door's table."""
    if samu is None:
        return referral
    referrer = referral.referrer.model_copy(update={"identifier": samu, "reply_to": samu})
    return referral.model_copy(update={"referrer": referrer})


def replies_queue(namespace: str) -> str:
    return hubsante_queue(namespace).name(namespace)


class HubSanteDoor:
    def __init__(self, settings: Settings) -> None:
        if not settings.hubsante_url:
            raise ValueError("AIGUILLAGE_HUBSANTE_URL is empty: the Hub Santé door is off")
        self.settings = settings
        self.client_id = settings.hubsante_client_id
        self.regulator_email = regulator_email(settings)
        # The SAMU whose LRM it relays (issue 28): its cases, its territory, its answers.
        self.samu = settings.hubsante_samu or None
        self.publisher = EventPublisher(
            settings.broker_url, settings.namespace, "hubsante", actor=self.samu or "centre_15"
        )
        self._database: Database | None = None
        self._hub_channel: AbstractChannel | None = None
        self._hub_exchange: AbstractExchange | None = None
        self._lanes = Lanes(CONCURRENCY)
        self.budget_seconds = BUDGET_SECONDS

    @property
    def database(self) -> Database:
        assert self._database is not None
        return self._database

    async def start(self) -> None:
        self._database = await open_database(self.settings)
        await self.publisher.__aenter__()
        self._hub = await aio_pika.connect_robust(self.settings.hubsante_url)
        self._hub_channel = await self._hub.channel(publisher_confirms=True)
        # Enough for every place, and as many waiting behind a case's earlier messages.
        await self._hub_channel.set_qos(prefetch_count=2 * CONCURRENCY)
        self._hub_exchange = await self._hub_channel.get_exchange(HUB_EXCHANGE, ensure=False)
        # The answers to what we sent (.ack, .info) go through the same checks: an
        # invalid one gets its 300, a valid Ack or Error is never answered.
        for suffix in ("message", "ack", "info"):
            queue = await self._hub_channel.get_queue(f"{self.client_id}.{suffix}", ensure=False)
            await queue.consume(self.on_hub_message)
        # Declared and bound where this user may (an operator); provisioned for the
        # least-privilege Centre 15 user, which may only read it.
        spec = hubsante_queue(self.settings.namespace, self.samu)
        await declare_topology(self.settings.broker_url, self.settings.namespace, [spec])
        self._bus = await aio_pika.connect_robust(self.settings.broker_url)
        channel = await self._bus.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(spec.name(self.settings.namespace), passive=True)
        await queue.consume(self.on_reply)
        # Compiles every pattern now, and says which would not run on RE2 (none today).
        log.info(
            "hubsante door started",
            client_id=self.client_id,
            fallback_patterns=schema.fallback_patterns(),
        )

    async def stop(self) -> None:
        for connection in (getattr(self, "_hub", None), getattr(self, "_bus", None)):
            if connection is not None:
                await connection.close()
        await self.publisher.__aexit__(None, None, None)
        if self._database is not None:
            await self._database.dispose()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- sending on the hub -------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Every message we send validates against the hub's whole-message schema."""
        problems = schema.errors(message)
        if problems:  # our own bug: never put it on the hub
            raise ValueError(f"outgoing message fails the hub's schema: {problems[:3]}")
        assert self._hub_exchange is not None
        await self._hub_exchange.publish(
            aio_pika.Message(
                json.dumps(message, ensure_ascii=False).encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                message_id=message["distributionID"],
            ),
            routing_key=self.client_id,
            timeout=SEND_SECONDS,
        )
        log.info(
            "hubsante sent",
            kind=message["distributionKind"],
            to=message["descriptor"]["explicitAddress"]["explicitAddressValue"],
            distribution_id=message["distributionID"],
        )

    async def _error(
        self, to: str, code: ErrorCode, cause: str, referenced: str, source: Any = None
    ) -> None:
        await self.send(messages.error(self.client_id, to, code, cause, referenced, source))

    # -- in: the hub's messages -------------------------------------------------------

    async def on_hub_message(self, delivery: AbstractIncomingMessage) -> None:
        origin = (delivery.headers or {}).get(ORIGIN_HEADER)
        published_with = origin if isinstance(origin, str) and origin else None
        # Read before any await, so that the case's lane is taken in arrival order.
        try:
            message: Any = guard.read(delivery.body, self.settings.max_message_bytes)
        except guard.Unreadable as exc:
            message = exc
        case_id = guard.case_id(message)
        key = (guard.publisher(message, published_with), case_id) if case_id else None
        await self._lanes.run(key, lambda: self._process(delivery, message, published_with))

    async def _process(
        self, delivery: AbstractIncomingMessage, message: Any, published_with: str | None
    ) -> None:
        # Never requeued: what failed once would fail again. The publisher is answered
        # instead; a failure to answer (the hub away) rejects it to the hub's dead letters.
        async with delivery.process(requeue=False):
            try:
                await asyncio.wait_for(self.handle(message, published_with), self.budget_seconds)
            except TimeoutError:
                log.warning("hubsante message over its budget", seconds=self.budget_seconds)
                cause = f"message non traité en {self.budget_seconds:g} s"
                await self._failed(message, published_with, cause)
            except Exception as exc:
                # The log names the error, never the case's content.
                log.exception("hubsante message failed", error=type(exc).__name__)
                cause = f"la porte n'a pas pu le traiter ({type(exc).__name__})"
                await self._failed(message, published_with, cause)

    async def _failed(self, message: Any, published_with: str | None, cause: str) -> None:
        """700: the LRM may send it again."""
        to = guard.publisher(message, published_with)
        if to:
            await self._error(
                to,
                ErrorCode.INTERNAL_CLIENT_ERROR,
                f"{cause} ; renvoyez-le",
                guard.distribution_id(message),
            )

    async def handle(self, message: Any, published_with: str | None) -> None:
        """One message from the hub, as ``guard.read`` gave it (or its ``Unreadable``).
        ``published_with``: the key it was published with, when the hub passes it on."""
        to = guard.publisher(message, published_with)
        if not isinstance(message, dict):
            if to:
                cause = (
                    str(message)
                    if isinstance(message, guard.Unreadable)
                    else "le message n'est pas un objet JSON"
                )
                await self._error(to, ErrorCode.INVALID_MESSAGE, cause, "unknown")
            return
        referenced = guard.distribution_id(message)
        # In a thread: the budget answers on time even for a validation that ran long.
        problems = await asyncio.to_thread(schema.errors, message)
        if problems:
            # Even a message that says it is an Ack: an error is not an acknowledgement.
            if to:
                cause = schema.cause(problems)
                await self._error(to, ErrorCode.INVALID_MESSAGE, cause, referenced, message)
            return
        if message["distributionKind"] in ("Ack", "Error"):
            log.info("hubsante answer received", kind=message["distributionKind"])
            return  # never acknowledge an acknowledgement
        sender = str(message["senderID"])  # the schema requires it, a string
        refusal = guard.sender_refusal(sender, referenced, published_with)
        if refusal is not None:
            await self._error(to or sender, ErrorCode.SENDER_INCONSISTENCY, refusal, referenced)
            return
        await self._dispatch(message, sender, referenced)

    async def _dispatch(self, message: dict[str, Any], sender: str, distribution_id: str) -> None:
        content = message["content"][0]["jsonContent"]["embeddedJsonContent"]["message"]
        kind = content.get("kind") or message["distributionKind"]
        case = content.get("createCaseHealth") or content.get("createCaseHealthUpdate")
        if not isinstance(case, dict):
            # Another use case: received, nothing for a consultation door to do.
            await self.send(messages.ack(self.client_id, sender, distribution_id))
            return
        refusal = guard.case_refusal(str(case["caseId"]), sender)
        if refusal is not None:
            await self._error(sender, *refusal, distribution_id)
        elif kind == "Cancel":
            await self.cancel(case, sender, distribution_id)
        elif "createCaseHealth" in content:
            await self.create(case, sender, distribution_id)
        else:
            await self.update(case, sender, distribution_id)

    async def create(self, case: dict[str, Any], sender: str, distribution_id: str) -> None:
        case_id = str(case["caseId"])
        digest = cases.content_hash(case)
        row = await self._case(sender, case_id)
        if row is not None:
            if row.content_hash != digest:
                await self._error(
                    sender,
                    ErrorCode.CASE_ALREADY_EXISTS,
                    f"case {case_id} was already sent with other content",
                    distribution_id,
                )
            elif row.answered:
                await self.send(messages.ack(self.client_id, sender, distribution_id))
            else:  # sent again before intake answered (a crash, a lost answer): publish again
                await self._submit(case, sender, cases.last_decision(case), distribution_id)
            return
        decision = cases.last_decision(case)
        if decision is None or decision.decision is not Decision.ORIENT:
            # Not oriented to a consultation: a case shared with us, nothing to book.
            await self.send(messages.ack(self.client_id, sender, distribution_id))
            return
        try:
            cases.referral(case, sender, decision)
        except (cases.Insufficient, ValueError) as exc:
            await self._error(sender, ErrorCode.INSUFFICIENT_DATA, str(exc), distribution_id)
            return
        priority = cases.priority(case)
        async with self.database.transaction() as session:
            await session.execute(
                insert(table).values(
                    case_id=case_id,
                    sender=sender,
                    content_hash=digest,
                    distribution_id=distribution_id,
                    answered=False,
                    decision=decision.decision.value,
                    priority=priority.value if priority else None,
                    regulator=decision.regulator,
                    # The decision travels with the referral (cases.attached): regulation
                    # applies it, there is nothing left to release on a hold.
                    released=True,
                    appointment_seq=0,
                    appointment_open=False,
                    created_at=datetime.now(UTC),
                )
            )
        await self._submit(case, sender, decision, distribution_id)

    async def _submit(
        self,
        case: dict[str, Any],
        sender: str,
        decision: cases.RegulatorDecision | None,
        distribution_id: str,
    ) -> None:
        """Publishes the referral under an id of our own, recorded first: intake's answer
        to that id, and to no other message, binds the case (``_answered``). A new id
        each time: intake answers a message it already took (its inbox) no more."""
        assert decision is not None
        referral = _as_samu(cases.referral(case, sender, decision), self.samu)
        submission_id = new_id()
        async with self.database.transaction() as session:
            await session.execute(
                update(table)
                .where(_key(sender, str(case["caseId"])))
                .values(submission_id=submission_id, distribution_id=distribution_id)
            )
        await self.publisher.publish(
            referral, correlation_id=referral.reference, event_id=submission_id
        )

    async def _case(self, sender: str, case_id: str) -> Any:
        async with self.database.transaction() as session:
            return (await session.execute(select(table).where(_key(sender, case_id)))).first()

    async def _known(self, case_id: str, sender: str, distribution_id: str) -> Any:
        row = await self._case(sender, case_id)
        if row is None or row.referral_id is None:
            await self._error(
                sender,
                ErrorCode.WRONG_MESSAGE_SEQUENCE,
                f"case {case_id} is not a referral acknowledged by Aiguillage",
                distribution_id,
            )
            return None
        return row

    async def cancel(self, case: dict[str, Any], sender: str, distribution_id: str) -> None:
        row = await self._known(str(case["caseId"]), sender, distribution_id)
        if row is None:
            return
        await self.publisher.publish(
            ReferralCancelled(
                referral_id=row.referral_id,
                cancelled_by=CancelledBy.REFERRER,
                reason="case cancelled by the LRM (Hub Santé)",
            ),
            correlation_id=row.referral_id,
        )
        await self.send(messages.ack(self.client_id, sender, distribution_id))

    async def update(self, case: dict[str, Any], sender: str, distribution_id: str) -> None:
        row = await self._known(str(case["caseId"]), sender, distribution_id)
        if row is None:
            return
        decision = cases.last_decision(case)
        if decision is not None and decision.cancel:
            await self.cancel(case, sender, distribution_id)
            return
        try:
            correction = cases.correction(case, str(row.referral_id))
        except ValueError as exc:
            await self._error(sender, ErrorCode.INSUFFICIENT_DATA, str(exc), distribution_id)
            return
        if decision is not None and decision.decision is not None:
            priority = cases.priority(case) or (Priority(row.priority) if row.priority else None)
            await self._decide(row, decision.decision, priority, decision.regulator)
        if correction is not None:
            # The patient's details or place, applied by intake to the SAMU's own referral
            # (the broker user is the sender); a new commune may book nearer, told back
            # as an RS-SAS-RDV UpdateAppointment (_outcome, "rescheduled").
            await self.publisher.publish(correction, correlation_id=row.referral_id)
        # Other changes (notes, a qualification) are received, not applied (README).
        await self.send(messages.ack(self.client_id, sender, distribution_id))

    async def _decide(
        self, row: Any, decision: Decision, priority: Priority | None, regulator: str
    ) -> None:
        await self.publisher.publish(
            RegulationDecided(
                referral_id=row.referral_id,
                regulator_id=regulator,
                decision=decision,
                priority=priority if decision is Decision.ORIENT else None,
                comment=f"Hub Santé, dossier {row.case_id}",
            ),
            correlation_id=row.referral_id,
        )

    # -- out: what Aiguillage tells Centre 15 -------------------------------------------

    async def on_reply(self, delivery: AbstractIncomingMessage) -> None:
        # One at a time (prefetch 1), alongside the hub's messages: each reads and
        # writes its case's row in transactions of its own.
        async with delivery.process(requeue=True):
            try:
                envelope = Envelope.model_validate_json(delivery.body)
            except ValueError:
                log.warning("not an event on Centre 15's key", key=delivery.routing_key)
                return
            await self.on_event(envelope)

    async def on_event(self, envelope: Envelope) -> None:
        data = envelope.data
        async with self.database.transaction() as session:
            if await session.scalar(
                select(applied.c.event_id).where(applied.c.event_id == envelope.id)
            ):
                return
        if envelope.type in ("submission.acknowledged", "submission.error"):
            await self._answered(envelope.type, data)
        elif envelope.type == "referral.outcome":
            await self._outcome(data)
        async with self.database.transaction() as session:
            await session.execute(insert(applied).values(event_id=envelope.id))

    async def _row(self, column: str, value: str) -> Any:
        async with self.database.transaction() as session:
            return (await session.execute(select(table).where(table.c[column] == value))).first()

    async def _answered(self, kind: str, data: dict[str, Any]) -> None:
        """Intake's answer to a submission: followed only when it answers one the door
        published itself (its id), never for a reference, which any Centre 15
        submission may name (an HTTP one reusing a case id would re-point the case)."""
        source = data.get("source_message_id")
        row = await self._row("submission_id", source) if isinstance(source, str) else None
        if row is None:
            return  # another Centre 15 client's submission, or one we sent again since
        if kind == "submission.acknowledged":
            await self._bind(row, str(data["referral_id"]))
            return
        code = str(data.get("error_code", ""))
        reasons = "; ".join(
            f"{r.get('code')} ({r.get('field')}): {r.get('message')}"
            for r in data.get("reasons", [])
        )
        if row.referral_id is None:
            async with self.database.transaction() as session:
                # Refused: the LRM may send the case corrected under the same id.
                await session.execute(delete(table).where(_same(row)))
        await self._error(
            row.sender,
            ErrorCode.CASE_ALREADY_EXISTS if code in _CONFLICT else ErrorCode.INSUFFICIENT_DATA,
            f"{code}: {data.get('cause', '')} {reasons}".strip(),
            row.distribution_id,
        )

    async def _bind(self, row: Any, referral_id: str) -> None:
        """The case is its referral's for good."""
        if row.referral_id not in (None, referral_id):
            log.warning("hubsante case already bound", case_sender=row.sender)
            return
        async with self.database.transaction() as session:
            await session.execute(
                update(table).where(_same(row)).values(referral_id=referral_id, answered=True)
            )
        if not row.answered:
            await self.send(messages.ack(self.client_id, row.sender, row.distribution_id))

    async def _outcome(self, data: dict[str, Any]) -> None:
        row = await self._row("referral_id", str(data.get("referral_id")))
        if row is None:
            return
        status, detail = str(data.get("status")), data.get("detail") or {}
        if status == "held_for_regulator" and row.decision and not row.released:
            # A case taken before its decision travelled with the referral: the protocol
            # held it, and the LRM's regulator's decision is the one that stands.
            priority = Priority(row.priority) if row.priority else None
            await self._decide(row, Decision(row.decision), priority, row.regulator)
            async with self.database.transaction() as session:
                await session.execute(update(table).where(_same(row)).values(released=True))
            return
        # Held although the decision travelled with the referral: regulation could not
        # apply it as given (its reasons say why); the LRM's regulator is told (_NOTE).
        if status in ("appointment", "rescheduled"):
            await self._appointment(row, "booked", detail)
            return
        if status == "cancelled" and row.appointment_open:
            await self._appointment(row, "cancelled", detail)
        elif status == "no_show" and row.appointment_open:
            await self._appointment(row, "noshow", detail)
        elif status == "seen" and row.appointment_open:
            await self._appointment(row, "fulfilled", detail)
        elif status in _NOTE:
            reasons = detail.get("reasons") or detail.get("reason") or ""
            text = f"{_NOTE[status]}. {data.get('message', '')} {reasons}".strip()
            await self.send(messages.case_note(self.client_id, row.sender, row.case_id, text))

    async def _appointment(self, row: Any, status: str, detail: dict[str, Any]) -> None:
        open_ = bool(row.appointment_open)
        seq = row.appointment_seq if open_ else row.appointment_seq + 1
        appointment_id = row.appointment_id if open_ else f"{row.case_id}.rdv.{seq}"
        if status == "booked":
            start, end = detail.get("start"), detail.get("end")
            centre_id, centre_name = detail.get("centre_id"), detail.get("centre_name")
        else:  # a report on the appointment the LRM knows
            start, end = row.appointment_start, row.appointment_end
            centre_id, centre_name = row.centre_id, row.centre_name
        if not start:
            return
        await self.send(
            messages.appointment(
                self.client_id,
                row.sender,
                appointment_id=appointment_id,
                method="UpdateAppointment" if open_ else "CreateAppointment",
                status=status,
                start=str(start),
                end=str(end) if end else None,
                centre_id=centre_id,
                centre_name=centre_name,
                # The case names its regulator by a label only, and carries no e-mail:
                # the SAMU's functional one (a setting).
                regulator=messages.regulator(row.regulator, self.regulator_email),
            )
        )
        async with self.database.transaction() as session:
            await session.execute(
                update(table)
                .where(_same(row))
                .values(
                    appointment_id=appointment_id,
                    appointment_seq=seq,
                    appointment_open=status == "booked",
                    appointment_start=start,
                    appointment_end=end,
                    centre_id=centre_id,
                    centre_name=centre_name,
                )
            )


def _key(sender: str, case_id: str) -> ColumnElement[bool]:
    """A case is its sender's: the same case id from another SAMU is another case."""
    return and_(table.c.sender == sender, table.c.case_id == case_id)


def _same(row: Any) -> ColumnElement[bool]:
    return _key(row.sender, row.case_id)
