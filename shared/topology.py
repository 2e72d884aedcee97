"""The broker topology, declared in one place.

- one durable topic exchange for events (``<ns>.events``): the event type is the
  routing key, with a centre id appended where a centre must receive it alone;
- one durable quorum queue per (service, subscription), dead-lettering to
- one direct dead-letter exchange (``<ns>.dlx``) and a dead-letter queue per
  service (``<ns>.<service>.dlq``), where the consumer puts what it cannot
  process, with the error in the headers;
- one queue per centre (``<ns>.centre.<centre_id>``) bound to that centre's keys.

Every service declares the whole topology at start (declarations are idempotent),
so no start order between services is needed. Under least-privilege credentials
(``aiguillage broker provision``, shared/provisioning.py) a service may configure its
own queues only: the provisioning declares the whole topology, and what the broker
refuses a caller must already exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from shared.settings import ServiceName

# Deliveries a quorum queue allows before the broker itself dead-letters a message.
# The consumer dead-letters earlier (after ``max_deliveries``) with the error
# attached; this is the net under a consumer that dies on the message every time.
BROKER_DELIVERY_LIMIT = 20


@dataclass(frozen=True, slots=True)
class QueueSpec:
    service: str
    subscription: str
    bindings: tuple[str, ...]
    description: str = ""

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.service}.{self.subscription}"


SUBSCRIPTIONS: dict[ServiceName, tuple[QueueSpec, ...]] = {
    ServiceName.INTAKE: (
        QueueSpec(
            "intake",
            "submissions",
            ("referral.submitted",),
            "Referrals pushed by Centre 15, GPs, SOS Médecins and emergency departments.",
        ),
        QueueSpec(
            "intake",
            "outcomes",
            (
                "referral.regulated",
                "referral.waitlisted",
                "referral.cancelled",
                "slot.assigned.*",
                "appointment.rescheduled.*",
                "appointment.cancelled.*",
                "consultation.completed",
                "consultation.no_show",
                "patient.escalated",
            ),
            "What became of each referral downstream, for its referrer to read.",
        ),
    ),
    ServiceName.REGULATION: (
        QueueSpec(
            "regulation",
            "referrals",
            ("referral.received",),
            "Referrals accepted by intake, to regulate with the protocol.",
        ),
        QueueSpec(
            "regulation",
            "decisions",
            ("protocol.published", "regulation.decided"),
            "New protocol versions, and Centre 15 regulators' decisions that supersede "
            "the one that stands.",
        ),
    ),
    ServiceName.SCHEDULER: (
        QueueSpec(
            "scheduler",
            "centres",
            ("centre.activated", "centre.capacity_changed", "centre.suspended", "centre.closed"),
            "The ARS's decisions about centres (one queue, so that they apply in order).",
        ),
        QueueSpec(
            "scheduler",
            "referrals",
            ("referral.regulated",),
            "Regulated referrals: those oriented to a centre get a slot.",
        ),
        QueueSpec(
            "scheduler",
            "consultations",
            ("consultation.completed", "consultation.no_show", "patient.escalated"),
            "What centres report: a no-show or an escalation frees the slot.",
        ),
    ),
    ServiceName.NOTIFIER: (
        QueueSpec(
            "notifier",
            "assignments",
            ("slot.assigned.*", "appointment.rescheduled.*", "appointment.cancelled.*"),
            "Appointments, to tell the centre, the referrer and the patient.",
        ),
        QueueSpec(
            "notifier",
            "contacts",
            ("contact.notifier",),
            "The patient's contact details, which only the notifier receives.",
        ),
        QueueSpec(
            "notifier",
            "referrals",
            (
                "referral.received",
                "referral.rejected",
                "referral.regulated",
                "referral.waitlisted",
                "patient.escalated",
                "consultation.no_show",
                "consultation.completed",
            ),
            "What the referrer (and Centre 15, for escalations) must be told.",
        ),
        QueueSpec(
            "notifier",
            "centres",
            ("centre.activated",),
            "Centres to provision a queue for, and to name in messages.",
        ),
    ),
}


def events_exchange(namespace: str) -> str:
    return f"{namespace}.events"


def dead_letter_exchange(namespace: str) -> str:
    return f"{namespace}.dlx"


def dead_letter_queue(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.dlq"


# Who has a dead-letter queue: each service, and the centres' queues (together).
DEAD_LETTER_OWNERS: tuple[str, ...] = (*sorted(s.value for s in ServiceName), "centre")
DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


CENTRE_EVENT_TYPES = ("slot.assigned", "appointment.rescheduled", "appointment.cancelled")


def centre_queue(namespace: str, centre_id: str) -> QueueSpec:
    """A centre's own queue: its assignments, reschedules and cancellations, nothing else."""
    return QueueSpec(
        "centre",
        centre_id,
        tuple(f"{t}.{centre_id}" for t in CENTRE_EVENT_TYPES),
        f"Patients of centre {centre_id}.",
    )


def queue_arguments(namespace: str, service: str) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange(namespace),
        "x-dead-letter-routing-key": service,
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
    }


async def declare_queue(channel: AbstractChannel, namespace: str, spec: QueueSpec) -> None:
    exchange = await channel.get_exchange(events_exchange(namespace), ensure=True)
    queue = await channel.declare_queue(
        spec.name(namespace), durable=True, arguments=queue_arguments(namespace, spec.service)
    )
    for key in spec.bindings:
        await queue.bind(exchange, routing_key=key)


class TopologyMissing(RuntimeError):
    """A queue or exchange is missing, and these credentials may not declare it."""


class _Declarer:
    """Declares on one channel. Where the broker refuses (least-privilege credentials),
    what it refused must exist already, and is left as it is; bindings are made only
    on what this caller declared."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.channel: AbstractChannel | None = None

    async def _channel(self) -> AbstractChannel:
        if self.channel is None or self.channel.is_closed:
            self.channel = await self.connection.channel()
        return self.channel

    async def exchange(self, name: str, kind: aio_pika.ExchangeType) -> None:
        channel = await self._channel()
        try:
            await channel.declare_exchange(name, kind, durable=True)
        except ChannelAccessRefused as refused:
            await self._must_exist("exchange", name, refused)

    async def queue(self, name: str, arguments: dict[str, Any]) -> AbstractQueue | None:
        channel = await self._channel()
        try:
            return await channel.declare_queue(name, durable=True, arguments=arguments)
        except ChannelAccessRefused as refused:
            await self._must_exist("queue", name, refused)
            return None

    async def _must_exist(self, kind: str, name: str, refused: Exception) -> None:
        # The refusal closed the channel; a passive declaration needs no permission.
        channel = self.channel = await self.connection.channel()
        try:
            if kind == "exchange":
                await channel.get_exchange(name, ensure=True)
            else:
                await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            raise TopologyMissing(
                f"{kind} {name!r} does not exist and these credentials may not declare it: "
                "declare the topology with `aiguillage broker provision`"
            ) from refused


async def declare_topology(url: str, namespace: str, extra: Iterable[QueueSpec] = ()) -> None:
    """Declare exchanges, every service's queues and dead-letter queues (idempotent).

    With least-privilege credentials, what the broker refuses must already exist
    (``TopologyMissing`` otherwise); with full rights everything is declared and bound.
    """
    connection = await aio_pika.connect(url)
    try:
        declarer = _Declarer(connection)
        events = events_exchange(namespace)
        dlx = dead_letter_exchange(namespace)
        await declarer.exchange(events, aio_pika.ExchangeType.TOPIC)
        await declarer.exchange(dlx, aio_pika.ExchangeType.DIRECT)
        for owner in DEAD_LETTER_OWNERS:
            dlq = await declarer.queue(
                dead_letter_queue(namespace, owner), DEAD_LETTER_QUEUE_ARGUMENTS
            )
            if dlq is not None:
                await dlq.bind(dlx, routing_key=owner)
        specs = [spec for specs in SUBSCRIPTIONS.values() for spec in specs]
        for spec in [*specs, *extra]:
            queue = await declarer.queue(
                spec.name(namespace), queue_arguments(namespace, spec.service)
            )
            if queue is not None:
                for key in spec.bindings:
                    await queue.bind(events, routing_key=key)
    finally:
        await connection.close()


async def delete_topology(url: str, namespace: str, centre_ids: Iterable[str] = ()) -> None:
    """Remove a namespace's exchanges and queues (tests and demos clean up with it)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        names = [spec.name(namespace) for specs in SUBSCRIPTIONS.values() for spec in specs]
        names += [centre_queue(namespace, c).name(namespace) for c in centre_ids]
        names += [dead_letter_queue(namespace, s) for s in DEAD_LETTER_OWNERS]
        for name in names:
            await channel.queue_delete(name)
        await channel.exchange_delete(events_exchange(namespace))
        await channel.exchange_delete(dead_letter_exchange(namespace))
    finally:
        await connection.close()
