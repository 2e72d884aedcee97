"""Least privilege on the real broker: `aiguillage broker provision` in a throwaway
virtual host, then each actor connects with its own credentials and is allowed what
it must do, and refused the rest (ACCESS_REFUSED from RabbitMQ itself)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused
from faststream import FastStream
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from shared.events import (
    Envelope,
    EventPayload,
    PatientEscalated,
    Priority,
    ReferralReceived,
    ReferrerKind,
    ReferrerRef,
    SlotAssigned,
)
from shared.provisioning import (
    Plan,
    Rabbitmqctl,
    actor_queue_prefix,
    broker_url,
    build_plan,
    remove,
)
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings, get_settings
from shared.topology import (
    TopologyMissing,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    declare_topology,
    events_exchange,
)
from tests.helpers import centre, referral

pytestmark = pytest.mark.integration

CENTRES = ("poterie", "cleunay")
REFERRER = "sos-rennes"

# The broker's node, when the tests use another one than rabbitmqctl's default.
NODE = os.environ.get("AIGUILLAGE_TEST_RABBITMQ_NODE")


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    # The commands read the environment through the cached settings: fresh each time.
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()


def _provision(args: list[str], base_url: str) -> Any:
    return _invoke(["broker", "provision", *args], {"AIGUILLAGE_BROKER_URL": base_url})


@dataclass
class Deployment:
    """A namespace in its own virtual host, with its users and their passwords."""

    base_url: str
    plan: Plan
    passwords: dict[str, str]
    suffix: str

    @property
    def namespace(self) -> str:
        return self.plan.namespace

    def user(self, actor: str) -> str:
        return self.plan.account(actor).user

    def url(self, actor: str) -> str:
        user = self.user(actor)
        return broker_url(self.base_url, user, self.passwords[user], self.plan.vhost)

    def args(self, *extra: str) -> list[str]:
        args = ["--vhost", self.plan.vhost, "--namespace", self.namespace]
        if NODE:
            args += ["--node", NODE]
        args += ["--user-suffix", self.suffix, *extra]
        for c in CENTRES:
            args += ["--centre", c]
        return [*args, "--referrer", REFERRER]


@contextlib.asynccontextmanager
async def deployment(broker_url_: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    """Provisioned with the command (known passwords from a file); everything it
    created is deleted afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:10]
    suffix = f"-{tag}"
    plan = build_plan(
        f"t-{tag}", f"aig-test-{tag}", centres=CENTRES, referrers=[REFERRER], user_suffix=suffix
    )
    passwords = {user: f"pw-{uuid.uuid4().hex}" for user in plan.users}
    password_file = tmp_path / f"passwords-{tag}.json"
    password_file.write_text(json.dumps(passwords))
    d = Deployment(broker_url_, plan, passwords, suffix)
    try:
        result = await asyncio.to_thread(
            _provision, d.args("--password-file", str(password_file)), broker_url_
        )
        assert result.exit_code == 0, result.output
        yield d
    finally:
        await asyncio.to_thread(remove, plan, Rabbitmqctl(node=NODE))


@pytest.fixture(scope="module")
async def shared(
    broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    async with deployment(broker_url, tmp_path_factory.mktemp("broker")) as d:
        yield d


class Actor:
    """One connection as one user; each operation on a channel of its own, since a
    refusal closes the channel."""

    def __init__(self, d: Deployment, actor: str) -> None:
        self.d = d
        self.actor = actor
        self.connection: AbstractConnection | None = None

    async def __aenter__(self) -> Self:
        self.connection = await aio_pika.connect(self.d.url(self.actor), timeout=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.connection is not None
        await self.connection.close()

    async def on_channel(self, operation: Callable[[AbstractChannel], Awaitable[Any]]) -> Any:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True)
        try:
            return await asyncio.wait_for(operation(channel), 10)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def refused(self, operation: Callable[[AbstractChannel], Awaitable[Any]]) -> str:
        with pytest.raises(ChannelAccessRefused) as refusal:
            await self.on_channel(operation)
        return str(refusal.value)

    def publishing(
        self, payload: EventPayload, routing_key: str | None = None, exchange_name: str = ""
    ) -> Callable[[AbstractChannel], Awaitable[Any]]:
        async def publish(channel: AbstractChannel) -> Envelope:
            envelope = Envelope.wrap(payload, source=self.actor, correlation_id=uuid.uuid4().hex)
            name = exchange_name or events_exchange(self.d.namespace)
            exchange = await channel.get_exchange(name)
            await exchange.publish(
                aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=envelope.id,
                ),
                routing_key=routing_key or payload.routing_key(),
            )
            return envelope

        return publish

    async def publish(self, payload: EventPayload, routing_key: str | None = None) -> Envelope:
        envelope: Envelope = await self.on_channel(self.publishing(payload, routing_key))
        return envelope

    async def get(self, queue: str, timeout: float = 10.0) -> AbstractIncomingMessage:
        """One message from ``queue`` (consumed with this user's rights), acked."""

        async def get(channel: AbstractChannel) -> AbstractIncomingMessage:
            declared = await channel.declare_queue(queue, passive=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = await declared.get(fail=False, timeout=5)
                if message is not None:
                    await message.ack()
                    return message
                await asyncio.sleep(0.1)
            raise TimeoutError(f"nothing in {queue} after {timeout}s")

        assert self.connection is not None
        channel = await self.connection.channel()
        try:
            return await get(channel)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def own_queue(self, name: str, *keys: str) -> str:
        """Declare a queue under the actor's prefix, bound to ``keys``."""
        full = f"{actor_queue_prefix(self.d.namespace, self.actor)}{name}"

        async def declare(channel: AbstractChannel) -> None:
            queue = await channel.declare_queue(full, durable=True)
            for key in keys:
                await queue.bind(events_exchange(self.d.namespace), routing_key=key)

        await self.on_channel(declare)
        return full


async def _ignore(message: AbstractIncomingMessage) -> None:
    pass


def consuming(queue: str) -> Callable[[AbstractChannel], Awaitable[Any]]:
    async def consume(channel: AbstractChannel) -> Any:
        declared = await channel.declare_queue(queue, passive=True)
        return await declared.consume(_ignore)

    return consume


def declaring(queue: str) -> Callable[[AbstractChannel], Awaitable[Any]]:
    async def declare(channel: AbstractChannel) -> Any:
        return await channel.declare_queue(queue, durable=True)

    return declare


def binding(queue: str, exchange: str, key: str) -> Callable[[AbstractChannel], Awaitable[Any]]:
    async def bind(channel: AbstractChannel) -> Any:
        declared = await channel.declare_queue(queue, passive=True)
        return await declared.bind(exchange, routing_key=key)

    return bind


async def message_count(d: Deployment, actor: str, queue: str) -> int:
    """Passive declaration: needs no permission, counts what waits in the queue."""
    async with Actor(d, actor) as a:

        async def count(channel: AbstractChannel) -> int:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result.message_count
            assert result is not None
            return result

        counted: int = await a.on_channel(count)
        return counted


def slot(centre_id: str, referral_id: str) -> SlotAssigned:
    start = datetime.now(UTC) + timedelta(hours=2)
    return SlotAssigned(
        centre_id=centre_id,
        appointment_id=f"apt-{uuid.uuid4().hex[:8]}",
        referral_id=referral_id,
        patient_ref="pat-1",
        centre_name=f"Centre {centre_id}",
        centre_commune_insee="35238",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.URGENT,
        distance_km=1.0,
    )


def received(referral_id: str, reply_to: str) -> ReferralReceived:
    return ReferralReceived(
        referral_id=referral_id,
        patient_ref="pat-1",
        age=50,
        sex="female",
        commune_insee="35238",
        departement="35",
        clinical={"symptomatic": True},
        referrer=ReferrerRef(kind=ReferrerKind.GP, identifier="gp-1", reply_to=reply_to),
        purpose="consultation",
        submitted_at=datetime.now(UTC),
    )


# -- the outside actors -------------------------------------------------------------


async def test_centre_15_refers_but_cannot_activate_a_centre(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    async with Actor(d, "centre_15") as c15, Actor(d, "intake") as intake:
        sent = await c15.publish(referral("c15-1"))
        # It reached intake's queue, which intake reads with its own credentials.
        got = await intake.get(f"{ns}.intake.submissions")
        assert got.message_id == sent.id
        refusal = await c15.refused(c15.publishing(centre("rogue")))
        assert "centre.activated" in refusal
        assert await message_count(d, "centre_15", f"{ns}.scheduler.centres") == 0
        # Its own reply queue, bound to its own answers; nobody else's.
        replies = await c15.own_queue("replies", "reply.centre-15.#")
        await c15.refused(binding(replies, events_exchange(ns), f"reply.{REFERRER}.#"))
        await c15.refused(binding(replies, events_exchange(ns), "slot.assigned.*"))
        await c15.refused(declaring(f"{actor_queue_prefix(ns, 'ars')}alerts"))
        await c15.refused(consuming(f"{ns}.intake.submissions"))


async def test_a_centre_reads_its_own_queue_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    own, other = (centre_queue(ns, c).name(ns) for c in CENTRES)
    async with (
        Actor(d, "scheduler") as scheduler,
        Actor(d, "centre-poterie") as poterie,
    ):
        mine = await scheduler.publish(slot("poterie", "r-poterie"))
        theirs = await scheduler.publish(slot("cleunay", "r-cleunay"))
        got = await poterie.get(own)
        assert Envelope.model_validate_json(got.body).id == mine.id
        for refused in (
            declaring(other),
            consuming(other),
            binding(own, events_exchange(ns), "slot.assigned.cleunay"),
            binding(own, events_exchange(ns), "slot.assigned.*"),
            binding(own, events_exchange(ns), "#"),
            poterie.publishing(slot("cleunay", "forged")),
        ):
            await poterie.refused(refused)

        async def get_other(channel: AbstractChannel) -> Any:
            queue = await channel.declare_queue(other, passive=True)
            return await queue.get(fail=False)

        await poterie.refused(get_other)
        # What it may do: report on its patients, on its own queue's keys.
        await poterie.publish(
            PatientEscalated(referral_id="r-poterie", centre_id="poterie", reason="SpO2 86 %")
        )
        await poterie.on_channel(binding(own, events_exchange(ns), "slot.assigned.poterie"))
    # The other centre's patient is still there, for that centre alone.
    assert await message_count(d, "centre-cleunay", other) == 1
    async with Actor(d, "centre-cleunay") as cleunay:
        got = await cleunay.get(other)
        assert Envelope.model_validate_json(got.body).id == theirs.id


async def test_the_ars_activates_centres_but_cannot_refer(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    async with Actor(d, "ars") as ars, Actor(d, "scheduler") as scheduler:
        sent = await ars.publish(centre("gare-rennes"))
        got = await scheduler.get(f"{ns}.scheduler.centres")
        assert got.message_id == sent.id
        assert "referral.submitted" in await ars.refused(ars.publishing(referral("ars-1")))
        alerts = await ars.own_queue("alerts", "capacity.alert.*", "reinforcement.requested")
        await ars.refused(binding(alerts, events_exchange(ns), "referral.received"))
        await ars.refused(consuming(f"{ns}.notifier.contacts"))
        # The ARS's own command works with the ARS's credentials.
        env = {"AIGUILLAGE_BROKER_URL": d.url("ars"), "AIGUILLAGE_NAMESPACE": ns}
        args = ["ars", "activate", "--id", "cli-centre", "--name", "CLI", "--commune", "35238"]
        result = await asyncio.to_thread(_invoke, args, env)
        assert result.exit_code == 0, result.output
        got = await scheduler.get(f"{ns}.scheduler.centres")
        assert Envelope.model_validate_json(got.body).data["centre_id"] == "cli-centre"


async def test_a_referrer_is_answered_on_its_own_key_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    actor = f"referrer-{REFERRER}"
    async with Actor(d, actor) as gp:
        await gp.publish(referral("gp-1", reply_to=REFERRER))
        replies = await gp.own_queue("replies", f"reply.{REFERRER}.#")
        await gp.refused(binding(replies, events_exchange(ns), "reply.centre-15.#"))
        await gp.refused(binding(replies, events_exchange(ns), "reply.*.referral.outcome"))
        await gp.refused(gp.publishing(received("forged", REFERRER)))


# -- the services -------------------------------------------------------------------


async def test_each_service_reads_its_own_queues_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    events, dlx = events_exchange(ns), dead_letter_exchange(ns)
    async with (
        Actor(d, "regulation") as regulation,
        Actor(d, "scheduler") as scheduler,
        Actor(d, "intake") as intake,
    ):
        await regulation.on_channel(consuming(f"{ns}.regulation.referrals"))
        await regulation.refused(consuming(f"{ns}.intake.submissions"))
        await regulation.refused(declaring(f"{ns}.intake.submissions"))
        # Another service's event, or another service's binding: refused.
        await regulation.refused(regulation.publishing(received("forged", "x")))
        await regulation.refused(binding(f"{ns}.regulation.referrals", events, "contact.notifier"))
        # Dead letters go to the dead-letter exchange; nobody reads another's.
        await regulation.on_channel(regulation.publishing(received("dead", "x"), "regulation", dlx))
        await regulation.refused(consuming(dead_letter_queue(ns, "intake")))
        await regulation.refused(binding(f"{ns}.regulation.referrals", dlx, "intake"))
        # The patient's contact: intake may send it, only the notifier may read it.
        await scheduler.refused(consuming(f"{ns}.notifier.contacts"))
        await intake.refused(consuming(f"{ns}.notifier.contacts"))
        # Nobody but the operator may redeclare (or delete) the exchanges.
        await intake.refused(
            lambda ch: ch.declare_exchange(events, aio_pika.ExchangeType.TOPIC, durable=True)
        )


async def test_declaring_where_nothing_was_provisioned_says_so(shared: Deployment) -> None:
    with pytest.raises(TopologyMissing, match="aiguillage broker provision"):
        await asyncio.wait_for(declare_topology(shared.url("intake"), "not-provisioned"), 30)
    # Where everything is provisioned, a service's declaration goes through.
    await asyncio.wait_for(declare_topology(shared.url("intake"), shared.namespace), 30)


BUILDERS: dict[ServiceName, Callable[[Settings], ServiceRuntime]] = {
    ServiceName.INTAKE: build_intake,
    ServiceName.REGULATION: build_regulation,
    ServiceName.SCHEDULER: build_scheduler,
    ServiceName.NOTIFIER: build_notifier,
}


async def collect(
    actor: Actor, queue: str, done: Callable[[list[Envelope]], bool], timeout: float = 30.0
) -> list[Envelope]:
    seen: list[Envelope] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{queue}: condition not met; saw {[e.type for e in seen]}")
        with contextlib.suppress(TimeoutError):
            seen.append(Envelope.model_validate_json((await actor.get(queue, remaining)).body))
    return seen


async def stop(app: FastStream) -> None:
    await asyncio.wait_for(app.stop(), 30)


def outcomes(envelopes: list[Envelope]) -> list[str]:
    return [e.data["status"] for e in envelopes if e.type == "referral.outcome"]


async def test_the_four_services_run_under_their_own_users(
    broker_url: str, settings: Settings, tmp_path: Path
) -> None:
    """Each service starts (its declarations of the topology included) and does its
    work with its own credentials: a referral goes from a GP to a centre's queue, the
    centre's escalation reaches Centre 15, the notifier provisions a new centre's queue.
    """
    async with deployment(broker_url, tmp_path) as d, contextlib.AsyncExitStack() as stack:
        ns = d.namespace
        for service, build in BUILDERS.items():
            own = settings.model_copy(
                update={"broker_url": d.url(service.value), "namespace": ns, "max_deliveries": 20}
            )
            app = build(own).app()
            await asyncio.wait_for(app.start(), 60)
            stack.push_async_callback(stop, app)
        ars = await stack.enter_async_context(Actor(d, "ars"))
        gp = await stack.enter_async_context(Actor(d, f"referrer-{REFERRER}"))
        poterie = await stack.enter_async_context(Actor(d, "centre-poterie"))
        c15 = await stack.enter_async_context(Actor(d, "centre_15"))
        gp_replies = await gp.own_queue("replies", f"reply.{REFERRER}.#")
        c15_replies = await c15.own_queue("replies", "reply.centre-15.#")
        poterie_queue = centre_queue(ns, "poterie").name(ns)

        await ars.publish(centre("poterie"))
        await gp.publish(referral("least-1", reply_to=REFERRER))
        [assigned] = await collect(poterie, poterie_queue, lambda es: len(es) == 1)
        assert (assigned.type, assigned.source) == ("slot.assigned", "scheduler")
        referral_id = assigned.data["referral_id"]
        told = await collect(gp, gp_replies, lambda es: "appointment" in outcomes(es))
        [ack] = [e for e in told if e.type == "submission.acknowledged"]
        assert (ack.source, ack.data["referral_id"]) == ("intake", referral_id)

        await poterie.publish(
            PatientEscalated(referral_id=referral_id, centre_id="poterie", reason="SpO2 86 %")
        )
        [to_c15] = await collect(c15, c15_replies, lambda es: len(es) == 1)
        assert (to_c15.type, to_c15.source) == ("referral.outcome", "notifier")
        assert to_c15.data["status"] == "escalated_by_centre"
        await collect(gp, gp_replies, lambda es: "escalated_by_centre" in outcomes(es))

        # A centre nobody provisioned: the notifier declares and binds its queue.
        await ars.publish(centre("gare"))
        gare = centre_queue(ns, "gare").name(ns)
        deadline = time.monotonic() + 30
        while True:
            try:
                await message_count(d, "ars", gare)
                break
            except aio_pika.exceptions.ChannelNotFoundEntity:
                assert time.monotonic() < deadline, "the notifier did not declare it"
                await asyncio.sleep(0.2)
        async with Actor(d, "scheduler") as scheduler:
            await scheduler.publish(slot("gare", "r-gare"))
        assert await message_count(d, "ars", gare) == 1


# -- the command --------------------------------------------------------------------


async def test_provisioning_again_resets_permissions_and_keeps_passwords(
    broker_url: str, tmp_path: Path
) -> None:
    async with deployment(broker_url, tmp_path) as d:
        ctl = Rabbitmqctl(node=NODE)
        user, vhost = d.user("centre-poterie"), d.plan.vhost
        # Someone widened the centre's rights by hand.
        await asyncio.to_thread(ctl.run, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        await asyncio.to_thread(
            ctl.run, "set_topic_permissions", "-p", vhost, user, "amq.topic", ".*", ".*"
        )
        other = centre_queue(d.namespace, "cleunay").name(d.namespace)
        async with Actor(d, "centre-poterie") as poterie:
            await poterie.on_channel(consuming(other))

        result = await asyncio.to_thread(_provision, d.args(), broker_url)
        assert result.exit_code == 0, result.output
        assert [user, "unchanged"] in [line.split() for line in result.output.splitlines()]
        async with Actor(d, "centre-poterie") as poterie:  # the same password
            await poterie.refused(consuming(other))
        topic = json.loads(
            await asyncio.to_thread(
                ctl.run, "list_topic_permissions", "-p", vhost, "--formatter", "json", "-q"
            )
        )
        assert {r["exchange"] for r in topic if r["user"] == user} == {events_exchange(d.namespace)}

        # A password given in the file is set; the others stay as they were.
        ars = d.user("ars")
        new_file = tmp_path / "new.json"
        new_file.write_text(json.dumps({ars: "a-new-password"}))
        result = await asyncio.to_thread(
            _provision, d.args("--password-file", str(new_file)), broker_url
        )
        assert result.exit_code == 0, result.output
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            async with Actor(d, "ars"):
                pass
        d.passwords[ars] = "a-new-password"
        async with Actor(d, "ars"), Actor(d, "intake"):
            pass


async def test_the_definitions_file_is_the_same_plan(broker_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    namespace, vhost, suffix = f"t-{tag}", f"aig-test-{tag}", f"-{tag}"
    plan = build_plan(
        namespace,
        vhost,
        centres=["poterie"],
        user_suffix=suffix,
        administrator=f"admin{suffix}",
    )
    target = tmp_path / "definitions.json"
    ctl = Rabbitmqctl(node=NODE)
    try:
        result = await asyncio.to_thread(
            _provision,
            [
                "--vhost", vhost, "--namespace", namespace, "--user-suffix", suffix,
                "--centre", "poterie", "--administrator", f"admin{suffix}",
                "--definitions", str(target),
            ],
            broker_url,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        # The passwords are printed once, with each user's URL.
        urls = {
            line.split()[0]: line.split()[2]
            for line in result.output.splitlines()
            if line.startswith("  ") and "amqp://" in line
        }
        assert set(urls) == set(plan.users)
        assert vhost not in await asyncio.to_thread(ctl.vhosts)  # nothing changed yet
        # As a broker does at boot (on standard input: rabbitmqctl runs as the broker's
        # user, which may not read the test's files).
        await asyncio.to_thread(ctl.import_definitions, json.loads(target.read_text()))

        c15 = await aio_pika.connect(urls[f"centre_15{suffix}"], timeout=10)
        try:
            channel = await c15.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(events_exchange(namespace))
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="referral.submitted")
            with pytest.raises(ChannelAccessRefused):
                await exchange.publish(aio_pika.Message(b"{}"), routing_key="centre.activated")
        finally:
            await c15.close()
        # The topology came with it: the services' and the centre's queues are there,
        # and the administrator may do anything in the virtual host.
        admin = await aio_pika.connect(urls[f"admin{suffix}"], timeout=10)
        try:
            channel = await admin.channel()
            submissions = await channel.declare_queue(
                f"{namespace}.intake.submissions", passive=True
            )
            assert submissions.declaration_result.message_count == 1
            await channel.declare_queue(
                centre_queue(namespace, "poterie").name(namespace), passive=True
            )
            await channel.declare_queue(f"{namespace}.scratch", exclusive=True)
        finally:
            await admin.close()
    finally:
        await asyncio.to_thread(remove, plan, ctl)
