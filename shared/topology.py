"""The broker topology, declared in one place.

Two topic exchanges, so that outsiders never publish on the services' bus:

- ``<ns>.events``, the internal bus: only the services publish there. The event type
  is the routing key, with a centre id appended where a centre must receive it alone
  (and, for what a centre reports, so that the broker refuses a centre's key that is
  not its own);
- ``<ns>.ingress``, the outside actors' door (Centre 15, referrers, the ARS,
  centres): its only queues are the doors' (``QueueSpec.exchange == INGRESS``), whose
  consumers check each message against its sender (the AMQP ``user_id``) before any
  of it is applied, and then publish on the events exchange what they accepted.

Then one durable quorum queue per (service, subscription); a dead-letter exchange per
owner (``<ns>.<owner>.dlx``, fanout) into its bounded dead-letter queue
(``<ns>.<owner>.dlq``), so that a service, allowed to write its own only, cannot
forge another's dead letters; one queue per centre (``<ns>.centre.<centre_id>``) and
one reply queue per outside actor (``<ns>.actor.<actor>.replies``), both bounded,
declared by the provisioning (outsiders configure nothing).

Every service declares the whole topology at start (declarations are idempotent),
so no start order between services is needed. Under least-privilege credentials
(``aiguillage broker provision``, shared/provisioning.py) a service may configure its
own queues only: the provisioning declares the whole topology, and what the broker
refuses a caller must already exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from shared import broker_nodes
from shared.settings import ServiceName

# Deliveries a quorum queue allows before the broker itself dead-letters a message.
# The consumer dead-letters earlier (after ``max_deliveries``) with the error
# attached; this is the net under a consumer that dies on the message every time.
BROKER_DELIVERY_LIMIT = 20

# Bounds. A door's queue refuses new messages when full (``reject-publish``): the
# sender's publisher confirm is a nack, and it learns to slow down, while what is in
# the queue is kept. A queue read by an outsider (a centre's, an actor's replies) drops
# its oldest message into the dead letters instead: a centre that never listens must
# not fill the broker (90,000 notices sat in centre queues in the national wave), and
# it reads its day's list over HTTP anyway. Dead-letter queues drop their oldest too.
INGRESS_MAX_LENGTH = 10_000
OUTWARD_MAX_LENGTH = 10_000
DEAD_LETTER_MAX_LENGTH = 10_000

EVENTS = "events"
INGRESS = "ingress"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    service: str
    subscription: str
    bindings: tuple[str, ...]
    description: str = ""
    # The exchange the bindings are on: the services' bus, or the outsiders' door.
    exchange: str = EVENTS

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.service}.{self.subscription}"

    @property
    def is_door(self) -> bool:
        return self.exchange == INGRESS


# What a centre reports; the routing key ends with the centre's id, on the ingress
# (where the broker lets a centre publish its own id only) and on the bus.
CENTRE_REPORT_TYPES = (
    "consultation.completed",
    "consultation.no_show",
    "consultation.cancelled",
    "consultation.corrected",
    "patient.escalated",
    "reinforcement.requested",
)

# The ARS's answers to a centre's request for reinforcement, keyed by the centre: at
# the ARS's door, then on the bus to the centre's own queue.
REINFORCEMENT_ANSWER_TYPES = (
    "reinforcement.acknowledged",
    "reinforcement.granted",
    "reinforcement.declined",
)

# The decisions (shared.events.Decision) the notifier tells the referrer of when they
# are made: all but "orient", whose news is the appointment.
REGULATED_TOLD = ("escalate", "home_follow_up", "refuse", "hold")

SUBSCRIPTIONS: dict[ServiceName, tuple[QueueSpec, ...]] = {
    ServiceName.INTAKE: (
        QueueSpec(
            "intake",
            "submissions",
            ("referral.submitted", "referral.cancelled", "referral.updated"),
            "The door of referrals, their cancellations and their corrections (the "
            "patient's name, birth date, commune), from Centre 15, GPs, SOS Médecins and "
            "emergency departments: each is checked against its sender.",
            INGRESS,
        ),
        QueueSpec(
            "intake",
            "outcomes",
            (
                "referral.regulated.*",
                "referral.waitlisted",
                "slot.assigned.*",
                "appointment.rescheduled.*",
                "appointment.cancelled.*",
                "consultation.completed.*",
                "consultation.no_show.*",
                "consultation.cancelled.*",
                "consultation.corrected.*",
                "patient.escalated.*",
            ),
            "What became of each referral downstream, for its referrer to read.",
        ),
    ),
    ServiceName.REGULATION: (
        QueueSpec(
            "regulation",
            "referrals",
            ("referral.received", "patient.relocated"),
            "Referrals accepted by intake, to regulate with the protocol; a patient now "
            "elsewhere (the case's commune and département follow).",
        ),
        QueueSpec(
            "regulation",
            "decisions",
            ("protocol.published", "regulation.decided"),
            "The door of Centre 15: new protocol versions, and regulators' decisions that "
            "supersede the one that stands.",
            INGRESS,
        ),
    ),
    ServiceName.SCHEDULER: (
        QueueSpec(
            "scheduler",
            "centres",
            (
                "centre.activated",
                "centre.capacity_changed",
                "centre.suspended",
                "centre.closed",
                *(f"{t}.*" for t in REINFORCEMENT_ANSWER_TYPES),
            ),
            "The door of the ARS's decisions about centres (one queue, so that they apply "
            "in order), and of its answers to the centres' requests for reinforcement "
            "(keyed by the centre); applied, they go on the bus for the other services.",
            INGRESS,
        ),
        QueueSpec(
            "scheduler",
            "referrals",
            ("referral.regulated.*", "referral.cancelled", "patient.relocated"),
            "Regulated referrals (those oriented to a centre get a slot), cancelled "
            "ones (their slot is freed), and patients now elsewhere (booked nearer if a "
            "slot as early is free there).",
        ),
        QueueSpec(
            "scheduler",
            "consultations",
            tuple(f"{t}.*" for t in CENTRE_REPORT_TYPES),
            "The door of what centres report, each for its own appointments: an outcome "
            "in its time (seen or cancelled by the centre from the slot's start, no-show "
            "from its end), corrected within 24 hours; a no-show or an escalation frees "
            "the slot, a cancellation books the patient again; applied, it goes on the bus.",
            INGRESS,
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
            # No referral.received: the referrer comes with patient.contact (one
            # delivery per referral fewer).
            (
                "referral.rejected",
                # Not orient: an orientation is told with its appointment (slot.assigned).
                *(f"referral.regulated.{d}" for d in REGULATED_TOLD),
                "referral.waitlisted",
                # A withdrawal: told here when no appointment is cancelled with it.
                "referral.cancelled",
                "patient.escalated.*",
                "consultation.no_show.*",
                "consultation.completed.*",
                "consultation.cancelled.*",
                "consultation.corrected.*",
                # The patient restricted its processing: they and their referrer are
                # told nothing more of it (issue 34).
                "referral.restricted",
            ),
            "What the referrer (and the SAMUs covering the patient, for escalations) must be told.",
        ),
        QueueSpec(
            "notifier",
            "centres",
            ("centre.activated",),
            "Centres to provision a queue for, and to name in messages.",
        ),
        QueueSpec(
            "notifier",
            "alerts",
            ("capacity.alert.*",),
            "The départements' saturation alerts, for the ARS's on-call contacts (e-mail and SMS).",
        ),
    ),
}


def events_exchange(namespace: str) -> str:
    return f"{namespace}.{EVENTS}"


def ingress_exchange(namespace: str) -> str:
    return f"{namespace}.{INGRESS}"


def exchange_of(namespace: str, spec: QueueSpec) -> str:
    return f"{namespace}.{spec.exchange}"


def dead_letter_exchange(namespace: str, owner: str) -> str:
    """The owner's own dead-letter exchange (fanout into its dead-letter queue only)."""
    return f"{namespace}.{owner}.dlx"


def dead_letter_queue(namespace: str, owner: str) -> str:
    return f"{namespace}.{owner}.dlq"


# Who has a dead-letter queue: each service, the centres' queues and the actors'
# reply queues (each of the last two together).
CENTRE_OWNER = "centre"
ACTOR_OWNER = "actor"
DEAD_LETTER_OWNERS: tuple[str, ...] = (
    *sorted(s.value for s in ServiceName),
    CENTRE_OWNER,
    ACTOR_OWNER,
)
DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-max-length": DEAD_LETTER_MAX_LENGTH,
    "x-overflow": "drop-head",
}


CENTRE_EVENT_TYPES = (
    "slot.assigned",
    "appointment.rescheduled",
    "appointment.cancelled",
    # What its ARS answers to its requests for reinforcement.
    *REINFORCEMENT_ANSWER_TYPES,
)


def reply_key(actor_key: str) -> str:
    """The binding of every answer to an actor whose reply key is ``actor_key``."""
    return f"reply.{actor_key}.#"


def centre_reply_key(centre_id: str) -> str:
    """What a centre is answered on (a refused report, say)."""
    return f"centre-{centre_id}"


def centre_queue(namespace: str, centre_id: str) -> QueueSpec:
    """A centre's own queue: its assignments, reschedules and cancellations, its ARS's
    answers to its requests for reinforcement, and the answers to what it sent; nothing
    else."""
    return QueueSpec(
        CENTRE_OWNER,
        centre_id,
        (
            *(f"{t}.{centre_id}" for t in CENTRE_EVENT_TYPES),
            reply_key(centre_reply_key(centre_id)),
        ),
        f"Patients of centre {centre_id}.",
    )


def actor_queue(
    namespace: str, actor: str, bindings: tuple[str, ...], purpose: str = "replies"
) -> QueueSpec:
    """An outside actor's reply queue, declared for it by the provisioning (an outsider
    configures nothing on the broker: no queue of its own, no argument of its choice)."""
    return QueueSpec(ACTOR_OWNER, f"{actor}.{purpose}", bindings, f"What {actor} is told.", EVENTS)


def hubsante_queue(namespace: str, samu: str | None = None) -> QueueSpec:
    """Centre 15's answers for the Hub Santé door (aiguillage/hubsante), which speaks as
    the SAMU whose LRM it relays (``samu``; None: the national Centre 15): a queue of its
    own beside that SAMU's replies, so that its client on the broker and the door do not
    take each other's answers."""
    if samu is None:
        return actor_queue(namespace, "centre_15", (reply_key("centre-15"),), "hubsante")
    return actor_queue(namespace, samu, (reply_key(samu),), "hubsante")


def queue_arguments(namespace: str, spec: QueueSpec) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange(namespace, spec.service),
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
    }
    if spec.is_door:
        arguments |= {"x-max-length": INGRESS_MAX_LENGTH, "x-overflow": "reject-publish"}
    elif spec.service in (CENTRE_OWNER, ACTOR_OWNER):
        arguments |= {"x-max-length": OUTWARD_MAX_LENGTH, "x-overflow": "drop-head"}
    return arguments


async def declare_queue(channel: AbstractChannel, namespace: str, spec: QueueSpec) -> None:
    exchange = await channel.get_exchange(exchange_of(namespace, spec), ensure=True)
    queue = await channel.declare_queue(
        spec.name(namespace), durable=True, arguments=queue_arguments(namespace, spec)
    )
    for key in spec.bindings:
        await queue.bind(exchange, routing_key=key)


async def ensure_centre_queue(url: str | Sequence[str], namespace: str, centre_id: str) -> None:
    """A centre's own queue exists from its activation on: the scheduler declares it
    before it books the centre's first patient (nothing for the centre is unroutable),
    and the notifier again when it learns of the centre (declarations are idempotent)."""
    connection = await broker_nodes.connect_first(url)  # a cluster: a node that answers
    async with connection:
        channel = await connection.channel()
        await declare_queue(channel, namespace, centre_queue(namespace, centre_id))


class CentreQueues:
    """Declares centres' queues on one long-lived connection, each centre once per
    process (``ensure_centre_queue`` opens a connection per call: a handler activating
    centres in a batch would spend seconds connecting, inside its transaction)."""

    def __init__(self, url: str | Sequence[str], namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, centre_id: str) -> None:
        if centre_id in self._declared:
            return
        async with self._lock:  # one connection, whoever calls
            if self._channel is None or self._channel.is_closed:
                if self._connection is None or self._connection.is_closed:
                    self._connection = await broker_nodes.connect_first(self.url)
                self._channel = await self._connection.channel()
            queue = centre_queue(self.namespace, centre_id)
            try:
                await declare_queue(self._channel, self.namespace, queue)
            except BaseException:
                # A broken channel or connection is opened again at the next call.
                await self._close()
                raise
            self._declared.add(centre_id)

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            await connection.close()


class TopologyMissing(RuntimeError):
    """A queue or exchange is missing, and these credentials may not declare it."""


# What RabbitMQ says of a quorum queue whose record exists and whose replica is not up
# yet (another connection is declaring it), and how often to try again: 0.1 + 0.2 + ...
# + 1.1 s, about 6.6 s in all.
_STARTING = "is down or inaccessible"
_STARTING_TRIES = 12


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
        for attempt in range(1, _STARTING_TRIES + 1):
            channel = await self._channel()
            try:
                return await channel.declare_queue(name, durable=True, arguments=arguments)
            except ChannelAccessRefused as refused:
                await self._must_exist("queue", name, refused)
                return None
            except ChannelNotFoundEntity as missing:
                # Several processes declare the same topology as they start (every
                # service declares all of it). A quorum queue that another connection is
                # creating has its record before its replica runs; meanwhile RabbitMQ
                # answers 404 "home node ... is down or inaccessible". It is being made:
                # wait for it, a bounded while.
                if _STARTING not in str(missing) or attempt == _STARTING_TRIES:
                    raise
                await asyncio.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

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


async def declare_topology(
    url: str | Sequence[str], namespace: str, extra: Iterable[QueueSpec] = ()
) -> None:
    """Declare exchanges, every service's queues and dead-letter queues (idempotent).

    With least-privilege credentials, what the broker refuses must already exist
    (``TopologyMissing`` otherwise); with full rights everything is declared and bound.
    """
    connection = await broker_nodes.connect_first(url)  # a cluster: a node that answers
    try:
        declarer = _Declarer(connection)
        for name in (events_exchange(namespace), ingress_exchange(namespace)):
            await declarer.exchange(name, aio_pika.ExchangeType.TOPIC)
        for owner in DEAD_LETTER_OWNERS:
            dlx = dead_letter_exchange(namespace, owner)
            await declarer.exchange(dlx, aio_pika.ExchangeType.FANOUT)
            dlq = await declarer.queue(
                dead_letter_queue(namespace, owner), DEAD_LETTER_QUEUE_ARGUMENTS
            )
            if dlq is not None:
                await dlq.bind(dlx, routing_key="")
        specs = [spec for specs in SUBSCRIPTIONS.values() for spec in specs]
        for spec in [*specs, *extra]:
            queue = await declarer.queue(spec.name(namespace), queue_arguments(namespace, spec))
            if queue is not None:
                for key in spec.bindings:
                    await queue.bind(exchange_of(namespace, spec), routing_key=key)
    finally:
        await connection.close()


async def delete_topology(
    url: str | Sequence[str], namespace: str, centre_ids: Iterable[str] = ()
) -> None:
    """Remove a namespace's exchanges and queues (tests and demos clean up with it)."""
    connection = await broker_nodes.connect_first(url)  # a cluster: a node that answers
    try:
        channel = await connection.channel()
        names = [spec.name(namespace) for specs in SUBSCRIPTIONS.values() for spec in specs]
        names += [centre_queue(namespace, c).name(namespace) for c in centre_ids]
        names += [dead_letter_queue(namespace, s) for s in DEAD_LETTER_OWNERS]
        for name in names:
            await channel.queue_delete(name)
        for exchange in (events_exchange(namespace), ingress_exchange(namespace)):
            await channel.exchange_delete(exchange)
        for owner in DEAD_LETTER_OWNERS:
            await channel.exchange_delete(dead_letter_exchange(namespace, owner))
    finally:
        await connection.close()
