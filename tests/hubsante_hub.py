"""A small Hub Santé for tests: the hub's test topology in a vhost of the test's own,
a router that dispatches as the hub does, and an LRM played by the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from aiguillage.hubsante import messages, schema
from aiguillage.hubsante.door import ORIGIN_HEADER, HubSanteDoor
from shared.events import Envelope, SubmissionAcknowledged
from shared.publisher import EventPublisher
from shared.senders import CENTRE_15_KEY
from shared.settings import Settings
from shared.topology import ingress_exchange

DATA = Path(__file__).parent / "hubsante" / "data"
LRM = "fr.health.samuA"
DOOR = "fr.health.aiguillage"
# The queue each distributionKind goes to (the hub's README).
QUEUE_OF_KIND = {"Ack": "ack", "Error": "info"}


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def definitions(vhost: str, clients: tuple[str, ...]) -> dict[str, Any]:
    """The hub's test topology, moved to ``vhost``, with the queues of ``clients`` too
    (the hub declares each client's three queues)."""
    topology: dict[str, Any] = json.loads((DATA / "hub-topology.definitions.json").read_text())
    topology["vhosts"] = [{"name": vhost}]
    for kind in ("exchanges", "queues", "policies", "bindings"):
        for item in topology.get(kind, []):
            item["vhost"] = vhost
    for client in clients:
        for suffix in ("message", "ack", "info"):
            name = f"{client}.{suffix}"
            if any(q["name"] == name for q in topology["queues"]):
                continue
            topology["queues"].append(
                {
                    "name": name,
                    "vhost": vhost,
                    "durable": True,
                    "auto_delete": False,
                    "arguments": {},
                }
            )
            topology["bindings"].append(
                {
                    "source": "distribution",
                    "vhost": vhost,
                    "destination": name,
                    "destination_type": "queue",
                    "routing_key": name,
                    "arguments": {},
                }
            )
    return topology


@contextlib.asynccontextmanager
async def hub_vhost(broker_url: str, clients: tuple[str, ...]) -> AsyncIterator[str]:
    """The hub's topology in a fresh vhost (deleted afterwards): its AMQP URL."""
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl is needed to import the hub's topology")
    vhost = f"hubsante-{uuid.uuid4().hex[:8]}"
    user = urlsplit(broker_url).username or "guest"
    await asyncio.to_thread(_rabbitmqctl, "add_vhost", vhost)
    try:
        await asyncio.to_thread(
            _rabbitmqctl, "set_permissions", "-p", vhost, user, ".*", ".*", ".*"
        )
        # A file rabbitmqctl can read: it runs as the broker's user (not ours), and
        # RabbitMQ 3.10 takes no definitions on stdin.
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir="/tmp") as file:
            file.write(json.dumps(definitions(vhost, clients)))
            file.flush()
            os.chmod(file.name, 0o644)
            await asyncio.to_thread(_rabbitmqctl, "import_definitions", file.name)
        parts = urlsplit(broker_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
    finally:
        await asyncio.to_thread(_rabbitmqctl, "delete_vhost", vhost)


class HubRouter:
    """Dispatches what clients publish on ``hubsante`` to the recipient's queue by kind,
    passing on the key it was published with. It checks nothing itself (the real hub
    refuses a sender inconsistency): the door must. A message without a readable
    recipient goes to ``fallback`` (the door under test), where the real hub would
    answer it itself."""

    def __init__(self, url: str, fallback: str) -> None:
        self.url, self.fallback = url, fallback

    async def __aenter__(self) -> HubRouter:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel(publisher_confirms=True)
        self._distribution = await channel.get_exchange("distribution", ensure=False)
        queue = await channel.get_queue("dispatch", ensure=False)
        await queue.consume(self._route)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _route(self, delivery: AbstractIncomingMessage) -> None:
        async with delivery.process():
            try:
                message = json.loads(delivery.body)
                address = message["descriptor"]["explicitAddress"]["explicitAddressValue"]
                kind = message.get("distributionKind")
            except (ValueError, KeyError, TypeError, RecursionError):
                address, kind = self.fallback, None
            if not isinstance(address, str):
                address = self.fallback
            suffix = QUEUE_OF_KIND.get(str(kind), "message")
            await self._distribution.publish(
                aio_pika.Message(
                    delivery.body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    headers={ORIGIN_HEADER: delivery.routing_key or ""},
                ),
                routing_key=f"{address}.{suffix}",
            )


class Lrm:
    """A SAMU's regulation software on the hub, played by the test."""

    def __init__(self, url: str, client_id: str = LRM) -> None:
        self.url, self.client_id = url, client_id
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Lrm:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel(publisher_confirms=True)
        self._hub = await channel.get_exchange("hubsante", ensure=False)
        for suffix in ("message", "ack", "info"):
            queue = await channel.get_queue(f"{self.client_id}.{suffix}", ensure=False)
            await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _on_message(self, delivery: AbstractIncomingMessage) -> None:
        self.received.append(json.loads(delivery.body))
        self._arrived.set()

    async def publish(self, message: dict[str, Any], routing_key: str | None = None) -> None:
        await self.publish_raw(json.dumps(message).encode(), routing_key)

    async def publish_raw(self, body: bytes, routing_key: str | None = None) -> None:
        await self._hub.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            ),
            routing_key=routing_key or self.client_id,
        )

    def case(self, to: str, content: dict[str, Any], kind: str = "Report") -> dict[str, Any]:
        use_case = (
            "createCaseHealthUpdate"
            if "createCaseHealthUpdate" in content
            else ("createCaseHealth")
        )
        return messages.envelope(self.client_id, to, kind, use_case, content[use_case])

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.received:
                if predicate(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [m.get("distributionKind") for m in self.received]
                raise TimeoutError(f"no such message in {timeout}s; received {kinds}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))


def body(message: dict[str, Any]) -> dict[str, Any]:
    """The RC-DE message inside an envelope."""
    content: dict[str, Any] = message["content"][0]["jsonContent"]["embeddedJsonContent"]
    return content["message"]  # type: ignore[no-any-return]


def answers(distribution_id: str) -> Callable[[dict[str, Any]], bool]:
    """An Ack or an RS-ERROR naming ``distribution_id``."""

    def named(message: dict[str, Any]) -> bool:
        inner = body(message)
        if "reference" in inner:
            return bool(inner["reference"]["distributionID"] == distribution_id)
        if "error" in inner:
            return bool(inner["error"]["referencedDistributionID"] == distribution_id)
        return False

    return named


@contextlib.asynccontextmanager
async def door_on_hub(
    settings: Settings, clients: tuple[str, ...] = ()
) -> AsyncIterator[tuple[Lrm, HubSanteDoor]]:
    """The door, on a hub of its own with an LRM (and the queues of ``clients``, for
    other LRMs: ``Lrm(door.settings.hubsante_url, client)``); on the way out, checks that
    every message the door sent validates against the hub's whole-message schema."""
    async with hub_vhost(settings.broker_url, (DOOR, *clients)) as url:
        door = HubSanteDoor(
            settings.model_copy(update={"hubsante_url": url, "hubsante_client_id": DOOR})
        )
        sent: list[dict[str, Any]] = []
        real_send = door.send

        async def recorded(message: dict[str, Any]) -> None:
            sent.append(message)
            await real_send(message)

        door.send = recorded  # type: ignore[method-assign]
        async with HubRouter(url, fallback=DOOR), Lrm(url) as lrm:
            await door.start()
            try:
                yield lrm, door
            finally:
                await door.stop()
        assert sent and all(schema.errors(m) == [] for m in sent)
        # Every RS-SAS-RDV names its regulator: a name and the SAMU's e-mail, none empty.
        for rdv in (m for m in sent if "appointment" in body(m)):
            block = body(rdv)["appointment"]["regulator"]
            assert all(block[k].strip() for k in ("regulatorName", "regulatorFirstname")), block
            assert "@" in block["regulatorEmail"], block
        assert all(m["distributionID"].startswith(f"{DOOR}_") for m in sent)


def oriented_case(case_id: str, age: str = "P75Y", insee: str = "35238") -> dict[str, Any]:
    """A symptomatic adult at risk (75) the regulator oriented to a consultation."""
    return {
        "createCaseHealth": {
            "caseId": case_id,
            "creation": "2026-12-01T08:00:00+01:00",
            "qualification": {"details": {"priority": "P2"}},
            "location": {"city": {"name": "Rennes", "inseeCode": insee}},
            "owner": LRM,
            "patient": [
                {
                    "patientId": f"{LRM}.patient.{case_id.rsplit('.', 1)[-1]}.1",
                    "detail": {"age": age},
                    "identity": {
                        "nonStrictFeatures": {
                            "complete": "Jeanne Martin",
                            "firstName": "Jeanne",
                            "lastName": "Martin",
                        },
                        "strictFeatures": {"sex": "F"},
                    },
                }
            ],
            "medicalNote": [
                {
                    "operator": {"role": "MEDECIN"},
                    "medicalNoteId": f"{LRM}.medicalNote.n1",
                    "freetext": "Fièvre 38,5, toux depuis 3 jours, pas de dyspnée.",
                }
            ],
            "decision": [
                {
                    "operator": {"role": "MEDECIN", "label": "Dr Sophie Bernard"},
                    "creation": "2026-12-01T08:05:00+01:00",
                    "decisionType": "ORIENT",
                    "orientationType": "SANTE",
                }
            ],
        }
    }


class FakeIntake:
    """Intake, played by the test: takes what the door publishes on the ingress and
    answers on Centre 15's reply key as intake would (the door follows an answer to the
    submissions it made only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: list[Envelope] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> FakeIntake:
        self._connection = await aio_pika.connect_robust(self.settings.broker_url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange(ingress_exchange(self.settings.namespace))
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in ("referral.#", "regulation.#"):
            await queue.bind(exchange, key)
        await queue.consume(self._on_message, no_ack=True)
        self.intake = EventPublisher(self.settings.broker_url, self.settings.namespace, "intake")
        await self.intake.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.intake.__aexit__(None, None, None)
        await self._connection.close()

    async def _on_message(self, delivery: AbstractIncomingMessage) -> None:
        self.received.append(Envelope.model_validate_json(delivery.body))
        self._arrived.set()

    async def wait_for(
        self, kind: str, predicate: Callable[[Envelope], bool] = lambda _: True
    ) -> Envelope:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for envelope in self.received:
                if envelope.type == kind and predicate(envelope):
                    return envelope
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 0.5)
        raise TimeoutError(f"no {kind} from the door; received {[e.type for e in self.received]}")

    async def acknowledge(self, source_message_id: str, reference: str) -> str:
        """intake's acknowledgement of the message ``source_message_id``: the referral id."""
        referral_id = str(uuid.uuid4())
        await self.intake.publish(
            SubmissionAcknowledged(
                reply_to=CENTRE_15_KEY,
                source_message_id=source_message_id,
                referral_id=referral_id,
                reference=reference,
            ),
            correlation_id=referral_id,
        )
        return referral_id
