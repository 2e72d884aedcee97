"""Least privilege on the real broker: `aiguillage broker provision` in a throwaway
virtual host, then each actor connects with its own credentials and is allowed what
it must do, and refused the rest (ACCESS_REFUSED from RabbitMQ itself).

Outside actors publish on the ingress exchange only (with ``user_id`` set, as
``EventPublisher`` does), each on its own keys (a centre's end with its id), and read
the one queue provisioned for them; they configure nothing, not even a queue of their
own. The services alone publish on the events exchange."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelAccessRefused
from faststream import FastStream

from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from shared.events import (
    AlertKind,
    CapacityAlert,
    CentreCancelReason,
    ConsultationCancelled,
    Envelope,
    PatientEscalated,
    Priority,
    ReferralReceived,
    ReferralSubmitted,
    ReferrerKind,
    ReferrerRef,
    SlotAssigned,
    SubmissionAcknowledged,
)
from shared.events.referral import Referrer
from shared.provisioning import Rabbitmqctl, build_plan, remove
from shared.release import source_name
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import (
    TopologyMissing,
    actor_queue,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    declare_topology,
    events_exchange,
    ingress_exchange,
)
from tests.helpers import centre, referral
from tests.provisioned import (
    ARS,
    CENTRES,
    NODE,
    REFERRER,
    SAMU,
    Actor,
    Deployment,
    binding,
    consuming,
    declaring,
    deployment,
    invoke,
    message_count,
    provision,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def shared(
    broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    async with deployment(broker_url, tmp_path_factory.mktemp("broker")) as d:
        yield d


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


def by_referrer(reference: str, referrer_id: str) -> ReferralSubmitted:
    """A referral in the referrer's own name, answered on its own key (a door refuses
    any other)."""
    submission = referral(reference, reply_to=referrer_id)
    own = Referrer(kind=ReferrerKind.GP, identifier=referrer_id, reply_to=referrer_id)
    return submission.model_copy(update={"referrer": own})


def alert(departement: str) -> CapacityAlert:
    return CapacityAlert(
        departement=departement,
        kind=AlertKind.SATURATION,
        occupancy_next_24h=0.95,
        booked_next_24h=19,
        capacity_next_24h=20,
        waiting=0,
        threshold=0.9,
    )


# -- the outside actors -------------------------------------------------------------


async def test_centre_15_refers_but_cannot_activate_a_centre(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    async with Actor(d, SAMU) as c15, Actor(d, "intake") as intake:
        sent = await c15.publish(referral("c15-1"))
        # It reached intake's door, which intake reads with its own credentials; the
        # broker vouches for the sender.
        got = await intake.get(f"{ns}.intake.submissions")
        assert (got.message_id, got.user_id) == (sent.id, d.user(SAMU))
        refusal = await c15.refused(c15.publishing(centre("rogue")))
        assert "centre.activated" in refusal
        # Nor on the services' bus, whatever the key.
        await c15.refused(c15.publishing(referral("c15-2"), exchange="events"))
        # Nor in another user's name: the broker checks user_id against the connection.
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="user_id"):
            await c15.on_channel(
                c15.publishing_raw(
                    b"{}", "referral.submitted", user_id=d.user(f"referrer-{REFERRER}")
                )
            )
        assert await message_count(d, SAMU, f"{ns}.scheduler.centres") == 0
        # Its reply queue was provisioned for it, bound to its own answers; it may not
        # bind it to anyone else's, nor read another queue.
        await c15.on_channel(consuming(c15.replies))
        await c15.refused(binding(c15.replies, events_exchange(ns), f"reply.{REFERRER}.#"))
        # Nor another SAMU's answers, nor the national Centre 15's (issue 28).
        await c15.refused(binding(c15.replies, events_exchange(ns), "reply.samu-75.#"))
        await c15.refused(binding(c15.replies, events_exchange(ns), "reply.centre-15.#"))
        await c15.refused(binding(c15.replies, events_exchange(ns), "slot.assigned.*"))
        await c15.refused(consuming(actor_queue(ns, ARS, ()).name(ns)))
        await c15.refused(consuming(f"{ns}.intake.submissions"))


def cancelled(centre_id: str, referral_id: str) -> ConsultationCancelled:
    return ConsultationCancelled(
        appointment_id=f"a-{referral_id}",
        referral_id=referral_id,
        centre_id=centre_id,
        reason_code=CentreCancelReason.BOX_CLOSED,
    )


async def test_a_centre_reads_its_own_queue_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    own, other = (centre_queue(ns, c).name(ns) for c in CENTRES)
    async with (
        Actor(d, "scheduler") as scheduler,
        Actor(d, "centre-poterie") as poterie,
    ):
        assert poterie.replies == own
        mine = await scheduler.publish(slot("poterie", "r-poterie"))
        theirs = await scheduler.publish(slot("cleunay", "r-cleunay"))
        got = await poterie.get(own)
        assert Envelope.model_validate_json(got.body).id == mine.id
        for refused in (
            declaring(other),
            declaring(own),  # its own queue too: it was declared for it
            consuming(other),
            binding(own, events_exchange(ns), "slot.assigned.poterie"),
            binding(own, events_exchange(ns), "slot.assigned.cleunay"),
            binding(own, events_exchange(ns), "#"),
            binding(own, ingress_exchange(ns), "#"),
            poterie.publishing(slot("cleunay", "forged")),
            poterie.publishing(slot("poterie", "forged"), exchange="events"),
        ):
            await poterie.refused(refused)

        async def get_other(channel: AbstractChannel) -> Any:
            queue = await channel.declare_queue(other, passive=True)
            return await queue.get(fail=False)

        await poterie.refused(get_other)
        # What it may do: report on its patients, on keys that end with its own id.
        await poterie.publish(
            PatientEscalated(referral_id="r-poterie", centre_id="poterie", reason="SpO2 86 %")
        )
        refusal = await poterie.refused(
            poterie.publishing(
                PatientEscalated(referral_id="r-cleunay", centre_id="cleunay", reason="forged")
            )
        )
        assert "patient.escalated.cleunay" in refusal
        # "Annulé" too (issue 27): its own consultations only.
        await poterie.publish(cancelled("poterie", "r-poterie"))
        refusal = await poterie.refused(poterie.publishing(cancelled("cleunay", "r-cleunay")))
        assert "consultation.cancelled.cleunay" in refusal
    assert await message_count(d, "centre-poterie", f"{ns}.scheduler.consultations") == 2
    # The other centre's patient is still there, for that centre alone.
    assert await message_count(d, "centre-cleunay", other) == 1
    async with Actor(d, "centre-cleunay") as cleunay:
        got = await cleunay.get(other)
        assert Envelope.model_validate_json(got.body).id == theirs.id


async def test_the_ars_activates_centres_but_cannot_refer(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    async with Actor(d, ARS) as ars, Actor(d, "scheduler") as scheduler:
        sent = await ars.publish(centre("gare-rennes"))
        got = await scheduler.get(f"{ns}.scheduler.centres")
        assert (got.message_id, got.user_id) == (sent.id, d.user(ARS))
        assert "referral.submitted" in await ars.refused(ars.publishing(referral("ars-1")))
        # Its reply queue, provisioned with the alerts it is told of: its region's only
        # (issue 28), Paris's never reach Bretagne's ARS.
        await scheduler.publish(alert("75"))
        await scheduler.publish(alert("35"))
        told = Envelope.model_validate_json((await ars.get(ars.replies)).body)
        assert (told.type, told.data["departement"]) == ("capacity.alert", "35")
        await ars.refused(binding(ars.replies, events_exchange(ns), "referral.received"))
        await ars.refused(binding(ars.replies, events_exchange(ns), "capacity.alert.75"))
        await ars.refused(binding(ars.replies, events_exchange(ns), "reinforcement.requested.*"))
        await ars.refused(consuming(f"{ns}.notifier.contacts"))
        # The ARS's own command works with the ARS's credentials, on the ingress.
        env = {"AIGUILLAGE_BROKER_URL": d.url(ARS), "AIGUILLAGE_NAMESPACE": ns}
        args = ["ars", "activate", "--id", "cli-centre", "--name", "CLI", "--commune", "35238"]
        result = await asyncio.to_thread(invoke, args, env)
        assert result.exit_code == 0, result.output
        got = await scheduler.get(f"{ns}.scheduler.centres")
        assert Envelope.model_validate_json(got.body).data["centre_id"] == "cli-centre"
        assert got.user_id == d.user(ARS)


async def test_a_referrer_is_answered_on_its_own_key_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    async with (
        Actor(d, f"referrer-{REFERRER}") as gp,
        Actor(d, "intake") as intake,
        Actor(d, SAMU) as c15,
    ):
        sent = await gp.publish(by_referrer("gp-1", REFERRER))
        got = await intake.get(f"{ns}.intake.submissions")
        assert (got.message_id, got.user_id) == (sent.id, gp.account.user)
        # Answers on its key reach its provisioned queue; a SAMU's do not.
        for reply_to in (REFERRER, SAMU):
            ack = SubmissionAcknowledged(
                reply_to=reply_to, source_message_id=sent.id, referral_id="r-1", reference="gp-1"
            )
            await intake.publish(ack)
        told = Envelope.model_validate_json((await gp.get(gp.replies)).body)
        assert told.data["reply_to"] == REFERRER
        assert await message_count(d, f"referrer-{REFERRER}", gp.replies) == 0
        assert await message_count(d, SAMU, c15.replies) == 1
        await c15.drain(c15.replies)
        await gp.refused(binding(gp.replies, events_exchange(ns), f"reply.{SAMU}.#"))
        await gp.refused(binding(gp.replies, events_exchange(ns), "reply.*.referral.outcome"))
        await gp.refused(gp.publishing(received("forged", REFERRER)))
        await gp.refused(gp.publishing(received("forged", REFERRER), exchange="events"))


@pytest.mark.parametrize("actor", [SAMU, f"referrer-{REFERRER}", ARS, "centre-poterie"])
async def test_outside_actors_configure_nothing(shared: Deployment, actor: str) -> None:
    """No queue of an outsider's own, under any name or arguments: none of its queues
    can dead-letter into an exchange of ours (attack 5 of tests/security)."""
    d, ns = shared, shared.namespace
    async with Actor(d, actor) as outsider:
        prefix = actor_queue(ns, actor, ()).name(ns).removesuffix("replies")
        for exchange in (events_exchange(ns), ingress_exchange(ns)):
            dead_lettering = {
                "x-dead-letter-exchange": exchange,
                "x-dead-letter-routing-key": "centre.activated",
                "x-message-ttl": 1,
            }
            for name in (f"{prefix}x", f"{ns}.anything", "anything", outsider.replies):
                await outsider.refused(declaring(name, dead_lettering))
        await outsider.refused(declaring(f"{prefix}alerts"))

        async def server_named(channel: AbstractChannel) -> Any:
            return await channel.declare_queue("", exclusive=True, auto_delete=True)

        await outsider.refused(server_named)
        await outsider.refused(
            lambda ch: ch.declare_exchange(f"{ns}.mine", aio_pika.ExchangeType.FANOUT)
        )
        await outsider.refused(lambda ch: ch.queue_delete(outsider.replies))
    # Its queue is still there, as provisioned (a passive declaration would fail).
    await message_count(d, actor, outsider.replies)


# -- the services -------------------------------------------------------------------


async def test_each_service_reads_its_own_queues_only(shared: Deployment) -> None:
    d, ns = shared, shared.namespace
    events = events_exchange(ns)
    own_dlx, intake_dlx = dead_letter_exchange(ns, "regulation"), dead_letter_exchange(ns, "intake")
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
        # Its dead letters go to its own dead-letter exchange; nobody reads another's,
        # and nobody writes another's.
        await regulation.on_channel(regulation.publishing(received("dead", "x"), "-", own_dlx))
        await regulation.refused(regulation.publishing(received("dead", "x"), "-", intake_dlx))
        await regulation.refused(consuming(dead_letter_queue(ns, "regulation")))
        await regulation.refused(consuming(dead_letter_queue(ns, "intake")))
        await regulation.refused(binding(f"{ns}.regulation.referrals", own_dlx, ""))
        # The patient's contact: intake may send it, only the notifier may read it.
        await scheduler.refused(consuming(f"{ns}.notifier.contacts"))
        await intake.refused(consuming(f"{ns}.notifier.contacts"))
        # On the ingress, a service publishes only as the HTTP door of an actor: the
        # scheduler for the ARS, nothing of what intake takes in.
        await intake.refused(intake.publishing(referral("i-1"), exchange="ingress"))
        await scheduler.on_channel(scheduler.publishing(centre("door"), exchange="ingress"))
        await scheduler.refused(scheduler.publishing(referral("s-1"), exchange="ingress"))
        # Nobody but the operator may redeclare (or delete) the exchanges.
        await intake.refused(
            lambda ch: ch.declare_exchange(events, aio_pika.ExchangeType.TOPIC, durable=True)
        )
        await intake.refused(lambda ch: ch.exchange_delete(ingress_exchange(ns)))
    assert await message_count(d, "regulation", dead_letter_queue(ns, "regulation")) == 1
    assert await message_count(d, "regulation", dead_letter_queue(ns, "intake")) == 0


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
    work with its own credentials, trusting no operator: a referral goes from a GP
    through intake's door to a centre's queue, the centre's escalation through the
    scheduler's door reaches the SAMU covering the patient, the notifier provisions a new
    centre's queue.
    """
    # The notifier tells escalations to each SAMU covering the patient's département, on
    # its own key, which that SAMU's user reads (issue 28): SAMU 35 for Rennes, not 75.
    async with (
        deployment(broker_url, tmp_path, samus=(SAMU, "samu-75")) as d,
        contextlib.AsyncExitStack() as stack,
    ):
        ns = d.namespace
        for service, build in BUILDERS.items():
            own = settings.model_copy(
                update={
                    "broker_url": d.url(service.value),
                    "namespace": ns,
                    "max_deliveries": 20,
                    "broker_user_suffix": d.suffix,
                    "broker_operators": [f"nobody{d.suffix}"],
                }
            )
            app = build(own).app()
            await asyncio.wait_for(app.start(), 60)
            stack.push_async_callback(stop, app)
        ars = await stack.enter_async_context(Actor(d, ARS))
        gp = await stack.enter_async_context(Actor(d, f"referrer-{REFERRER}"))
        poterie = await stack.enter_async_context(Actor(d, "centre-poterie"))
        c15 = await stack.enter_async_context(Actor(d, SAMU))
        paris = await stack.enter_async_context(Actor(d, "samu-75"))

        await ars.publish(centre("poterie"))
        await gp.publish(by_referrer("least-1", REFERRER))
        [assigned] = await collect(poterie, poterie.replies, lambda es: len(es) == 1)
        assert (assigned.type, source_name(assigned.source)) == ("slot.assigned", "scheduler")
        referral_id = assigned.data["referral_id"]
        told = await collect(gp, gp.replies, lambda es: "appointment" in outcomes(es))
        [ack] = [e for e in told if e.type == "submission.acknowledged"]
        assert (source_name(ack.source), ack.data["referral_id"]) == ("intake", referral_id)

        await poterie.publish(
            PatientEscalated(
                referral_id=referral_id,
                centre_id="poterie",
                appointment_id=assigned.data["appointment_id"],
                reason="SpO2 86 %",
            )
        )
        [to_c15] = await collect(c15, c15.replies, lambda es: len(es) == 1)
        assert (to_c15.type, source_name(to_c15.source)) == ("referral.outcome", "notifier")
        assert to_c15.data["status"] == "escalated_by_centre"
        assert to_c15.data["referral_id"] == referral_id
        await collect(gp, gp.replies, lambda es: "escalated_by_centre" in outcomes(es))
        assert await message_count(d, "samu-75", paris.replies) == 0

        # A centre nobody provisioned: the notifier declares and binds its queue.
        await ars.publish(centre("gare"))
        gare = centre_queue(ns, "gare").name(ns)
        deadline = time.monotonic() + 30
        while True:
            try:
                await message_count(d, ARS, gare)
                break
            except aio_pika.exceptions.ChannelNotFoundEntity:
                assert time.monotonic() < deadline, "the notifier did not declare it"
                await asyncio.sleep(0.2)
        # Declared before it is bound (AMQP has no atomic declare-and-bind): the
        # scheduler's slot reaches it once the bindings are there too.
        async with Actor(d, "scheduler") as scheduler:
            while await message_count(d, ARS, gare) == 0:
                assert time.monotonic() < deadline, "the centre's queue is not bound"
                await scheduler.publish(slot("gare", "r-gare"))
                await asyncio.sleep(0.2)


# -- the command --------------------------------------------------------------------


def _topic_exchanges(ctl: Rabbitmqctl, vhost: str, user: str) -> set[str]:
    rows = json.loads(ctl.run("list_topic_permissions", "-p", vhost, "--formatter", "json", "-q"))
    return {r["exchange"] for r in rows if r["user"] == user}


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

        result = await asyncio.to_thread(provision, d.args(), broker_url)
        assert result.exit_code == 0, result.output
        assert [user, "unchanged"] in [line.split() for line in result.output.splitlines()]
        async with Actor(d, "centre-poterie") as poterie:  # the same password
            await poterie.refused(consuming(other))
        topics = await asyncio.to_thread(_topic_exchanges, ctl, vhost, user)
        assert topics == {events_exchange(d.namespace), ingress_exchange(d.namespace)}

        # A password given in the file is set; the others stay as they were.
        ars = d.user(ARS)
        new_file = tmp_path / "new.json"
        new_file.write_text(json.dumps({ars: "a-new-password"}))
        result = await asyncio.to_thread(
            provision, d.args("--password-file", str(new_file)), broker_url
        )
        assert result.exit_code == 0, result.output
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            async with Actor(d, ARS):
                pass
        d.passwords[ars] = "a-new-password"
        async with Actor(d, ARS), Actor(d, "intake"):
            pass

        # A centre no longer in the plan (closed) loses its user; the others stay.
        gone = d.user("centre-cleunay")
        result = await asyncio.to_thread(provision, d.args(centres=["poterie"]), broker_url)
        assert result.exit_code == 0, result.output
        users = await asyncio.to_thread(ctl.users)
        assert gone not in users
        assert {d.user("centre-poterie"), d.user(ARS), d.user("intake")} <= users
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            async with Actor(d, "centre-cleunay"):
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
        samus=[SAMU],
        ars_regions=["53"],
    )
    target = tmp_path / "definitions.json"
    ctl = Rabbitmqctl(node=NODE)
    try:
        result = await asyncio.to_thread(
            provision,
            [
                "--vhost", vhost, "--namespace", namespace, "--user-suffix", suffix,
                "--centre", "poterie", "--administrator", f"admin{suffix}", "--samu", SAMU,
                "--ars-region", "53", "--definitions", str(target),
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

        c15_user = f"{SAMU}{suffix}"
        c15 = await aio_pika.connect(urls[c15_user], timeout=10)
        try:
            channel = await c15.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(ingress_exchange(namespace))
            message = aio_pika.Message(b"{}", user_id=c15_user)
            await exchange.publish(message, routing_key="referral.submitted")
            with pytest.raises(ChannelAccessRefused):
                await exchange.publish(message, routing_key="centre.activated")
        finally:
            await c15.close()
        # The outsiders' limits came with it.
        limits = await asyncio.to_thread(ctl.run, "list_user_limits", "--user", c15_user, "-q")
        assert json.loads(limits) == {"max-connections": 5, "max-channels": 20}
        # The topology came with it: the services', the centre's and the actors' reply
        # queues are there, and the administrator may do anything in the virtual host.
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
            for actor in (SAMU, ARS):
                await channel.declare_queue(
                    actor_queue(namespace, actor, ()).name(namespace), passive=True
                )
            await channel.declare_queue(f"{namespace}.scratch", exclusive=True)
        finally:
            await admin.close()
    finally:
        await asyncio.to_thread(remove, plan, ctl)
