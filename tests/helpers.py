"""Test helpers that talk to the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.consumer import Delivery
from shared.db import Database
from shared.events import (
    CentreActivated,
    CentreKind,
    Clinical,
    Decision,
    Envelope,
    EventPayload,
    OpeningPeriod,
    PatientIdentity,
    Priority,
    ReferralRegulated,
    ReferralSubmitted,
    Referrer,
    ReferrerKind,
    Vitals,
    new_id,
    utcnow,
)
from shared.runtime import ServiceRuntime
from shared.topology import dead_letter_queue, events_exchange, ingress_exchange

# Every namespace a test of this session used: what the services declared in them that
# no fixture knows of (the centres' queues, declared on activation) is deleted at the
# end of the run (tests/conftest.py).
NAMESPACES: list[str] = []


def fresh_namespace(prefix: str = "t") -> str:
    """A namespace of the test's own on the broker, cleaned up after the run."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:10]}"
    NAMESPACES.append(namespace)
    return namespace


class Tap:
    """A private queue bound to the events exchange: sees what the services publish
    (``exchange="ingress"``: what outside actors send to the doors)."""

    def __init__(self, url: str, namespace: str, *keys: str, exchange: str = "events") -> None:
        self.url, self.namespace, self.keys = url, namespace, keys or ("#",)
        self.exchange_name = (
            ingress_exchange(namespace) if exchange == "ingress" else events_exchange(namespace)
        )
        self.messages: list[AbstractIncomingMessage] = []
        self.envelopes: list[Envelope] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Tap:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange(self.exchange_name)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self.keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        with contextlib.suppress(ValueError):
            self.envelopes.append(Envelope.model_validate_json(message.body))
        self._arrived.set()

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.envelopes if e.type == event_type]

    async def wait_for(
        self, predicate: Callable[[list[Envelope]], bool], timeout: float = 20.0
    ) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while not predicate(self.envelopes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                types = [e.type for e in self.envelopes]
                raise TimeoutError(f"condition not met in {timeout}s; saw {types}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))
        return self.envelopes


async def dead_letters(
    url: str, namespace: str, service: str, expected: int, timeout: float = 20.0
) -> list[AbstractIncomingMessage]:
    """Read (and ack) what the service dead-lettered."""
    connection = await aio_pika.connect(url)
    got: list[AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue(namespace, service), passive=True)
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            got.append(message)
    finally:
        await connection.close()
    return got


def centre(
    centre_id: str,
    insee: str = "35238",
    boxes: int = 2,
    hours: str = "00:00-24:00",
    minutes: int = 20,
) -> CentreActivated:
    opens, closes = hours.split("-")
    return CentreActivated(
        centre_id=centre_id,
        name=f"Centre {centre_id}",
        kind=CentreKind.TEMPORARY_DEDICATED,
        commune_insee=insee,
        opening_hours=tuple(OpeningPeriod(weekday=d, opens=opens, closes=closes) for d in range(7)),
        boxes=boxes,
        consultation_minutes=minutes,
        first_day=date.today() - timedelta(days=1),
    )


def oriented(
    referral_id: str,
    insee: str = "35238",
    priority: Priority = Priority.ROUTINE,
    within: timedelta = timedelta(hours=12),
) -> ReferralRegulated:
    """Regulation's decision that sends the patient to a centre, due ``within``."""
    return ReferralRegulated(
        referral_id=referral_id,
        patient_ref=f"pat-{referral_id}",
        decision=Decision.ORIENT,
        priority=priority,
        deadline=utcnow() + within,
        protocol_version="1",
        decided_by="protocol",
        decision_id=new_id(),
        age=40,
        commune_insee=insee,
        departement=insee[:2],
    )


async def handle(
    database: Database,
    handler: Callable[[Delivery], Any],
    payload: EventPayload,
    *,
    handled: asyncio.Event | None = None,
    commit: asyncio.Event | None = None,
) -> Delivery:
    """A service's handler on one event, in its own transaction, as its consumer runs it
    (no broker); ``handled`` is set once the handler is done, and the transaction
    commits only once ``commit`` is set (a race held open)."""
    async with database.transaction() as session:
        delivery = Delivery(
            session=session,
            envelope=Envelope.wrap(payload, source="test", correlation_id=new_id()),
            source="scheduler",
        )
        await handler(delivery)
        if handled is not None:
            handled.set()
        if commit is not None:
            await commit.wait()
    return delivery


def referral(
    reference: str,
    *,
    insee: str = "35238",
    severe: bool = False,
    reply_to: str | None = "tests",
    **patient: Any,
) -> ReferralSubmitted:
    identity = {
        "first_name": "Éloïse",
        "last_name": "Dupont-Lajoie",
        "birth_date": date(1985, 5, 17),
        "nir": "285057800608441",
        "phone": "0612345678",
        "email": "eloise.dl@exemple.fr",
        "sms_consent": True,
        "commune_insee": insee,
        **patient,
    }
    return ReferralSubmitted(
        referrer=Referrer(kind=ReferrerKind.GP, identifier="10001234567", reply_to=reply_to),
        reference=reference,
        patient=PatientIdentity.model_validate(identity),
        clinical=Clinical(
            symptomatic=True,
            symptoms=("fever", "cough"),
            onset_date=date.today() - timedelta(days=2),
            vitals=Vitals(
                spo2=88.0 if severe else 97.0,
                respiratory_rate=18,
                systolic_bp=120,
                temperature_c=38.2,
            ),
        ),
    )


@contextlib.asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    """A service started in the test's process (migrations, topology, consumers, relay)."""
    app = runtime.app()
    await asyncio.wait_for(app.start(), 60)
    try:
        yield runtime
    finally:
        await asyncio.wait_for(app.stop(), 60)


def scheduler_queue(handlers: Any, subscription: str) -> Callable[[Delivery], Any]:
    """What the scheduler's consumer of ``subscription`` does with a delivery: its
    ``app.py`` table's handler for the event's type (the runtime's own dispatcher)."""
    from services.scheduler.app import ROUTES
    from shared.routing import dispatcher

    return dispatcher(handlers, ROUTES, subscription)
