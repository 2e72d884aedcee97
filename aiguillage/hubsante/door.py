"""The door process (``aiguillage run hubsante``): a Hub Santé client on the hub's
broker, and a Centre 15 on Aiguillage's.

- In: ``<id>.message`` on the hub. A case the regulator oriented to a consultation is
  published on ``<ns>.ingress`` as ``referral.submitted`` from Centre 15 (operator user
  acting for ``centre_15``, or the ``centre_15`` user itself); updates and ``Cancel``
  become ``regulation.decided`` / ``referral.cancelled``.
- Answers: the AMQP ack once the case is held (in the door's table and confirmed by
  Aiguillage's broker), then the hub's functional Ack or an RS-ERROR.
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
from sqlalchemy import delete, insert, select, update

from aiguillage.hubsante import cases, messages, schema
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
    RegulationDecided,
)
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology, hubsante_queue

log = structlog.get_logger(__name__)

HUB_EXCHANGE = "hubsante"
# The key a message was published with on the hub, when the hub passes it on (our test
# hub does). The hub itself refuses a sender inconsistency at its entry; the door checks
# again whatever reaches it.
ORIGIN_HEADER = "x-hubsante-routing-key"
# Intake's codes that mean the case id was used for another case.
_CONFLICT = {"reference_conflict"}
# What goes back as a note on the LRM's case, in French, for the regulator.
_NOTE = {
    "escalated": "Aiguillage : patient réorienté vers le SAMU / les urgences",
    "escalated_by_centre": "Aiguillage : le centre de consultation rend le patient au SAMU",
    "refused": "Aiguillage : orientation en centre de consultation refusée",
    "home_follow_up": "Aiguillage : suivi à domicile par le médecin traitant",
    "waitlisted": "Aiguillage : patient en liste d'attente, aucun créneau disponible",
}


def replies_queue(namespace: str) -> str:
    return hubsante_queue(namespace).name(namespace)


class HubSanteDoor:
    def __init__(self, settings: Settings) -> None:
        if not settings.hubsante_url:
            raise ValueError("AIGUILLAGE_HUBSANTE_URL is empty: the Hub Santé door is off")
        self.settings = settings
        self.client_id = settings.hubsante_client_id
        self.publisher = EventPublisher(
            settings.broker_url, settings.namespace, "hubsante", actor="centre_15"
        )
        self._database: Database | None = None
        self._hub_channel: AbstractChannel | None = None
        self._hub_exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()  # one message at a time: the case table is the state

    @property
    def database(self) -> Database:
        assert self._database is not None
        return self._database

    async def start(self) -> None:
        self._database = await open_database(self.settings)
        await self.publisher.__aenter__()
        self._hub = await aio_pika.connect_robust(self.settings.hubsante_url)
        self._hub_channel = await self._hub.channel(publisher_confirms=True)
        await self._hub_channel.set_qos(prefetch_count=1)
        self._hub_exchange = await self._hub_channel.get_exchange(HUB_EXCHANGE, ensure=False)
        # The answers to what we sent (.ack, .info) go through the same checks: an
        # invalid one gets its 300, a valid Ack or Error is never answered.
        for suffix in ("message", "ack", "info"):
            queue = await self._hub_channel.get_queue(f"{self.client_id}.{suffix}", ensure=False)
            await queue.consume(self.on_hub_message)
        # Declared and bound where this user may (an operator); provisioned for the
        # least-privilege Centre 15 user, which may only read it.
        spec = hubsante_queue(self.settings.namespace)
        await declare_topology(self.settings.broker_url, self.settings.namespace, [spec])
        self._bus = await aio_pika.connect_robust(self.settings.broker_url)
        channel = await self._bus.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(spec.name(self.settings.namespace), passive=True)
        await queue.consume(self.on_reply)
        log.info("hubsante door started", client_id=self.client_id)

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
        async with self._lock, delivery.process(requeue=True):
            origin = (delivery.headers or {}).get(ORIGIN_HEADER)
            published_with = origin if isinstance(origin, str) else None
            try:
                await self.handle(delivery.body, published_with)
            except Exception as exc:
                # Never a message that blocks the queue: the sender hears of it (700) and
                # may send it again; the log names the error, never the case's content.
                log.exception("hubsante message failed", error=type(exc).__name__)
                sender = _sender_of(delivery.body) or published_with
                if sender:
                    await self._error(
                        sender,
                        ErrorCode.INTERNAL_CLIENT_ERROR,
                        f"the door could not process it ({type(exc).__name__}); send it again",
                        _distribution_of(delivery.body),
                    )

    async def handle(self, body: bytes, published_with: str | None) -> None:
        """One message from the hub. ``published_with``: the routing key it was
        published with, when known (else the senderID stands for it)."""
        try:
            message: Any = json.loads(body)
        except ValueError:
            message = None
        sender = message.get("senderID") if isinstance(message, dict) else None
        # Answered where it came from: its sender, else the key it was published with.
        to = sender if isinstance(sender, str) and sender else published_with
        if not isinstance(message, dict):
            if to:
                cause = "not a JSON object"
                await self._error(to, ErrorCode.INVALID_MESSAGE, cause, "unknown")
            return
        distribution_id = message.get("distributionID")
        referenced = distribution_id if isinstance(distribution_id, str) else "unknown"
        problems = schema.errors(message)
        if problems:
            # Even a message that says it is an Ack: an error is not an acknowledgement.
            if to:
                cause = "Could not validate message against schema: " + "; ".join(problems)
                await self._error(to, ErrorCode.INVALID_MESSAGE, cause, referenced, message)
            return
        if message["distributionKind"] in ("Ack", "Error"):
            log.info("hubsante answer received", kind=message["distributionKind"])
            return  # never acknowledge an acknowledgement
        distribution_id = referenced
        sender = str(sender)  # the schema requires it, a string
        if (published_with is not None and sender != published_with) or not (
            distribution_id.startswith(f"{sender}_")
        ):
            await self._error(
                published_with or str(sender),
                ErrorCode.SENDER_INCONSISTENCY,
                "senderID must be the routing key and begin the distributionID",
                distribution_id,
            )
            return
        content = message["content"][0]["jsonContent"]["embeddedJsonContent"]["message"]
        kind = content.get("kind") or message["distributionKind"]
        if "createCaseHealth" in content:
            case = content["createCaseHealth"]
            if kind == "Cancel":
                await self.cancel(case, sender, distribution_id)
            else:
                await self.create(case, sender, distribution_id)
        elif "createCaseHealthUpdate" in content:
            update_ = content["createCaseHealthUpdate"]
            if kind == "Cancel":
                await self.cancel(update_, sender, distribution_id)
            else:
                await self.update(update_, sender, distribution_id)
        else:
            # Another use case: received, nothing for a consultation door to do.
            await self.send(messages.ack(self.client_id, sender, distribution_id))

    async def create(self, case: dict[str, Any], sender: str, distribution_id: str) -> None:
        case_id = str(case["caseId"])
        digest = cases.content_hash(case)
        async with self.database.transaction() as session:
            row = (await session.execute(select(table).where(table.c.case_id == case_id))).first()
        if row is not None:
            if row.content_hash != digest or row.sender != sender:
                await self._error(
                    sender,
                    ErrorCode.CASE_ALREADY_EXISTS,
                    f"case {case_id} was already sent with other content",
                    distribution_id,
                )
            elif row.answered:
                await self.send(messages.ack(self.client_id, sender, distribution_id))
            else:  # redelivered before intake answered (a crash): publish it again
                await self._submit(case, sender, cases.last_decision(case))
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
                    released=False,
                    appointment_seq=0,
                    appointment_open=False,
                    created_at=datetime.now(UTC),
                )
            )
        await self._submit(case, sender, decision)

    async def _submit(
        self, case: dict[str, Any], sender: str, decision: cases.RegulatorDecision | None
    ) -> None:
        assert decision is not None
        referral = cases.referral(case, sender, decision)
        await self.publisher.publish(referral, correlation_id=referral.reference)

    async def _known(self, case_id: str, sender: str, distribution_id: str) -> Any:
        async with self.database.transaction() as session:
            row = (await session.execute(select(table).where(table.c.case_id == case_id))).first()
        if row is None or row.sender != sender or row.referral_id is None:
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
        if decision is not None and decision.decision is not None:
            priority = cases.priority(case) or (Priority(row.priority) if row.priority else None)
            await self._decide(row, decision.decision, priority, decision.regulator)
        # Other changes (notes, patient details) are received, not applied (README).
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
        async with self._lock, delivery.process(requeue=True):
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

    async def _row(self, **where: Any) -> Any:
        ((column, value),) = where.items()
        async with self.database.transaction() as session:
            return (await session.execute(select(table).where(table.c[column] == value))).first()

    async def _answered(self, kind: str, data: dict[str, Any]) -> None:
        reference = data.get("reference")
        row = await self._row(case_id=reference) if isinstance(reference, str) else None
        if row is None:
            return  # another Centre 15 client's submission
        if kind == "submission.acknowledged":
            async with self.database.transaction() as session:
                await session.execute(
                    update(table)
                    .where(table.c.case_id == row.case_id)
                    .values(referral_id=data["referral_id"], answered=True)
                )
            if not row.answered:
                await self.send(messages.ack(self.client_id, row.sender, row.distribution_id))
            return
        code = str(data.get("error_code", ""))
        reasons = "; ".join(
            f"{r.get('code')} ({r.get('field')}): {r.get('message')}"
            for r in data.get("reasons", [])
        )
        async with self.database.transaction() as session:
            # Refused: the LRM may send the case corrected under the same id.
            await session.execute(delete(table).where(table.c.case_id == row.case_id))
        await self._error(
            row.sender,
            ErrorCode.CASE_ALREADY_EXISTS if code in _CONFLICT else ErrorCode.INSUFFICIENT_DATA,
            f"{code}: {data.get('cause', '')} {reasons}".strip(),
            row.distribution_id,
        )

    async def _outcome(self, data: dict[str, Any]) -> None:
        row = await self._row(referral_id=str(data.get("referral_id")))
        if row is None:
            return
        status, detail = str(data.get("status")), data.get("detail") or {}
        if status == "held_for_regulator":
            if row.decision and not row.released:
                # The protocol lacked what the case does not carry: the LRM's regulator
                # already decided, and that decision is the one that stands.
                priority = Priority(row.priority) if row.priority else None
                await self._decide(row, Decision(row.decision), priority, row.regulator)
                async with self.database.transaction() as session:
                    await session.execute(
                        update(table).where(table.c.case_id == row.case_id).values(released=True)
                    )
            return
        if status in ("appointment", "rescheduled"):
            await self._appointment(row, "booked", detail)
        elif status == "cancelled" and row.appointment_open:
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
        names = row.regulator.split(" ", 1)
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
                # The case names its regulator by a label only; RS-SAS-RDV wants names
                # and an e-mail the case does not carry (left empty).
                regulator={
                    "regulatorName": names[-1],
                    "regulatorFirstname": names[0] if len(names) > 1 else "",
                    "regulatorEmail": "",
                },
            )
        )
        async with self.database.transaction() as session:
            await session.execute(
                update(table)
                .where(table.c.case_id == row.case_id)
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


def _field(body: bytes, name: str) -> str | None:
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _sender_of(body: bytes) -> str | None:
    return _field(body, "senderID")


def _distribution_of(body: bytes) -> str:
    return _field(body, "distributionID") or "unknown"
