"""The plan of broker users and permissions, computed from the topology and the
producers (the real broker's verdicts are in tests/integration/test_broker_permissions.py).
The regexes are plain PCRE that Python's ``re`` reads the same way."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from services.notifier.handlers import CENTRE_15 as NOTIFIER_CENTRE_15_KEY
from shared.contracts import OUTSIDE_PRODUCERS, PUBLISHERS, routing_key_pattern
from shared.provisioning import (
    CENTRE_15_REPLY_TO,
    OUTSIDER_LIMITS,
    AccountKind,
    Plan,
    ProvisioningError,
    Rabbitmqctl,
    apply,
    broker_url,
    build_plan,
    definitions,
    password_hash,
    plan_user_pattern,
    remove_stale_users,
)
from shared.settings import ServiceName
from shared.topology import (
    ACTOR_OWNER,
    CENTRE_OWNER,
    DEAD_LETTER_OWNERS,
    DEAD_LETTER_QUEUE_ARGUMENTS,
    INGRESS_MAX_LENGTH,
    SUBSCRIPTIONS,
    actor_queue,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    events_exchange,
    ingress_exchange,
    queue_arguments,
)

NS = "aig"
PLAN = build_plan(
    NS,
    "aig-vhost",
    centres=["poterie", "cleunay"],
    referrers=["sos-rennes"],
    samus=["samu-35", "samu-75"],
    ars_regions=["53", "11"],
)
SERVICES = {s.value for s in ServiceName}
OUTSIDERS = {
    "samu-35",
    "samu-75",
    "referrer-sos-rennes",
    "ars-53",
    "ars-11",
    "centre-poterie",
    "centre-cleunay",
}


def allows(regex: str, name: str) -> bool:
    return re.search(regex, name) is not None


def who(permission: str, name: str, plan: Plan = PLAN) -> set[str]:
    return {a.actor for a in plan.accounts if allows(getattr(a, permission), name)}


def example(pattern: str) -> str:
    return pattern.format(
        centre_id="poterie", departement="35", reply_to="sos-rennes", decision="orient"
    )


def replies(actor: str) -> str:
    return actor_queue(NS, actor, ()).name(NS)


def test_each_service_queue_is_read_and_configured_by_its_service_alone() -> None:
    for service, specs in SUBSCRIPTIONS.items():
        account = PLAN.account(service.value)
        for spec in specs:
            name = spec.name(NS)
            assert who("read", name) == {service.value}, name
            assert who("configure", name) == {service.value}, name
            assert who("write", name) == {service.value}, name  # binding it
            # A door's bindings are on the ingress, the others' on the bus.
            bind = "ingress_read" if spec.is_door else "topic_read"
            for key in spec.bindings:
                assert allows(getattr(account, bind), key), (name, key)


def test_the_doors_are_the_only_queues_on_the_ingress() -> None:
    doors = {spec.name(NS) for specs in SUBSCRIPTIONS.values() for spec in specs if spec.is_door}
    assert doors == {
        f"{NS}.intake.submissions",
        f"{NS}.regulation.decisions",
        f"{NS}.scheduler.centres",
        f"{NS}.scheduler.consultations",
    }
    for key in ("slot.assigned.poterie", "referral.received", "reply.sos-rennes.x", "#"):
        assert who("ingress_read", key) == set(), key


# They declare a centre's queue when the ARS activates it (the scheduler before it
# books the centre's first patient, the notifier when it learns of the centre).
CENTRE_QUEUE_DECLARERS = {"notifier", "scheduler"}


def test_a_centre_queue_is_read_by_that_centre_and_declared_by_the_services() -> None:
    poterie = centre_queue(NS, "poterie")
    assert who("read", poterie.name(NS)) == {"centre-poterie"} | CENTRE_QUEUE_DECLARERS
    # Outsiders configure nothing: the provisioning (or a service, for a centre
    # activated since) declares it and binds it.
    assert who("configure", poterie.name(NS)) == CENTRE_QUEUE_DECLARERS
    for key in poterie.bindings:
        assert who("topic_read", key) == CENTRE_QUEUE_DECLARERS, key
    # Its answers come with its assignments.
    assert "reply.centre-poterie.#" in poterie.bindings
    assert not allows(PLAN.account("centre-poterie").read, centre_queue(NS, "cleunay").name(NS))
    # A centre reports ("vu", "absent", "annulé"...) on keys ending with its own id only.
    poterie_writes = PLAN.account("centre-poterie").ingress_write
    assert allows(poterie_writes, "consultation.cancelled.poterie")
    assert not allows(poterie_writes, "consultation.cancelled.cleunay")
    for service in SERVICES - CENTRE_QUEUE_DECLARERS:
        assert not allows(PLAN.account(service).configure, poterie.name(NS)), service


def test_outsiders_configure_nothing_bind_nothing_and_read_their_own_queue() -> None:
    for actor in OUTSIDERS:
        account = PLAN.account(actor)
        assert account.configure == account.topic_read == account.ingress_read == "^$", actor
        assert account.topic_write == "^$", actor
        # The ingress is the one thing it writes (publishes to).
        assert allows(account.write, ingress_exchange(NS)), actor
        for name in (
            events_exchange(NS),
            *(dead_letter_exchange(NS, o) for o in DEAD_LETTER_OWNERS),
        ):
            assert not allows(account.write, name), (actor, name)
        own = (
            centre_queue(NS, actor.removeprefix("centre-")).name(NS)
            if account.kind is AccountKind.CENTRE
            else replies(actor)
        )
        assert who("read", own) - SERVICES == {actor}, actor
        assert dict(account.limits) == OUTSIDER_LIMITS, actor
        # Under any name, server-named (amq.gen-...) included; its own queue too.
        for name in (f"{NS}.actor.{actor}.alerts", f"{NS}.anything", "amq.gen-x", own):
            assert not allows(account.configure, name), (actor, name)
    # The services have no limits: a limit would throttle the deployment's own work.
    assert all(not PLAN.account(s).limits for s in SERVICES)


def test_reply_queues_are_declared_by_the_plan_on_their_own_answers() -> None:
    bindings = {spec.name(NS): spec.bindings for spec in PLAN.actor_queues}
    assert bindings == {
        replies("samu-35"): ("reply.samu-35.#",),
        replies("samu-75"): ("reply.samu-75.#",),
        replies("referrer-sos-rennes"): ("reply.sos-rennes.#",),
        replies("ars-53"): (
            *(f"capacity.alert.{d}" for d in ("22", "29", "35", "56")),
            *(f"capacity.forecast.{d}" for d in ("22", "29", "35", "56")),
            *(f"reinforcement.raised_again.{d}" for d in ("22", "29", "35", "56")),
            "reply.ars-53.#",
        ),
        replies("ars-11"): (
            *(f"capacity.alert.{d}" for d in ("75", "77", "78", "91", "92", "93", "94", "95")),
            *(f"capacity.forecast.{d}" for d in ("75", "77", "78", "91", "92", "93", "94", "95")),
            *(
                f"reinforcement.raised_again.{d}"
                for d in ("75", "77", "78", "91", "92", "93", "94", "95")
            ),
            "reply.ars-11.#",
        ),
    }
    assert {spec.name(NS) for spec in PLAN.actor_queues} <= {s.name(NS) for s in PLAN.queues()}
    for spec in PLAN.actor_queues:
        # Read by its actor alone, on the bus; bound by nobody else afterwards.
        assert who("read", spec.name(NS)) == {spec.subscription.removesuffix(".replies")}
        assert spec.exchange == "events"
        assert queue_arguments(NS, spec)["x-overflow"] == "drop-head"


def test_nobody_configures_the_exchanges_or_reads_dead_letters() -> None:
    for name in (events_exchange(NS), ingress_exchange(NS)):
        assert who("configure", name) == set(), name
    for owner in DEAD_LETTER_OWNERS:
        dlq = dead_letter_queue(NS, owner)
        assert who("read", dlq) == who("configure", dlq) == who("write", dlq) == set(), dlq


def test_each_service_writes_its_own_dead_letter_exchange_only() -> None:
    for service in SERVICES:
        assert who("write", dead_letter_exchange(NS, service)) == {service}, service
    # The centres' and the actors' dead letters come from the broker itself (their
    # queues overflow or hit the delivery limit), which needs no permission; the
    # services that declare a centre's queue write the centres' because RabbitMQ asks
    # it of whoever creates a queue dead-lettering there.
    assert who("write", dead_letter_exchange(NS, CENTRE_OWNER)) <= CENTRE_QUEUE_DECLARERS
    assert who("write", dead_letter_exchange(NS, ACTOR_OWNER)) == set()


def test_nobody_configures_or_reads_a_dead_letter_exchange() -> None:
    for owner in DEAD_LETTER_OWNERS:
        dlx = dead_letter_exchange(NS, owner)
        # Configure would let a service delete it and declare another in its place;
        # read, bind a queue of its own to it and read another's dead letters.
        assert who("configure", dlx) == who("read", dlx) == set(), dlx


def test_nobody_but_the_services_writes_on_the_bus() -> None:
    assert who("write", events_exchange(NS)) == SERVICES
    for events in PUBLISHERS.values():
        for cls in events:
            key = example(routing_key_pattern(cls))
            assert who("topic_write", key) <= SERVICES, key


def test_every_event_has_its_producers_allowed_on_its_exchange() -> None:
    for producer, events in PUBLISHERS.items():
        outside = producer in OUTSIDE_PRODUCERS
        for cls in events:
            key = example(routing_key_pattern(cls))
            if outside:
                # An outsider on the ingress; on the bus, the door's service re-emits it.
                assert who("ingress_write", key) & OUTSIDERS, key
            else:
                assert producer in who("topic_write", key), (producer, key)
    assert who("write", ingress_exchange(NS)) == OUTSIDERS | {"scheduler", "notifier"}


def test_the_http_doors_publish_on_the_ingress_for_their_actor_only() -> None:
    scheduler, notifier = PLAN.account("scheduler"), PLAN.account("notifier")
    assert allows(scheduler.ingress_write, "centre.activated")
    assert not allows(scheduler.ingress_write, "referral.submitted")
    assert not allows(scheduler.ingress_write, "consultation.no_show.poterie")
    assert allows(notifier.ingress_write, "consultation.no_show.poterie")
    assert allows(notifier.ingress_write, "consultation.cancelled.poterie")
    assert not allows(notifier.ingress_write, "centre.activated")
    for service in ("intake", "regulation"):
        assert PLAN.account(service).ingress_write == "^$", service
        assert not allows(PLAN.account(service).write, ingress_exchange(NS)), service


def test_the_issue_s_three_refusals() -> None:
    c15 = PLAN.account("samu-35")
    assert not allows(c15.ingress_write, "centre.activated")
    assert allows(c15.ingress_write, "referral.submitted")
    assert allows(c15.ingress_write, "regulation.decided")
    assert c15.topic_write == "^$"
    assert not allows(PLAN.account("centre-poterie").read, centre_queue(NS, "cleunay").name(NS))
    ars = PLAN.account("ars-53")
    assert not allows(ars.ingress_write, "referral.submitted")
    assert allows(ars.ingress_write, "centre.activated")


def test_a_centre_publishes_its_own_id_s_keys_only() -> None:
    poterie = PLAN.account("centre-poterie")
    for kind in ("consultation.completed", "consultation.no_show", "patient.escalated"):
        assert allows(poterie.ingress_write, f"{kind}.poterie"), kind
        for key in (f"{kind}.cleunay", f"{kind}.*", f"{kind}.#", kind, f"{kind}.poterie.x"):
            assert not allows(poterie.ingress_write, key), key
    assert allows(poterie.ingress_write, "reinforcement.requested.poterie")
    assert who("ingress_write", "consultation.no_show.cleunay") == {"centre-cleunay", "notifier"}
    assert not allows(poterie.ingress_write, "slot.assigned.poterie")


def test_outside_actors_are_answered_on_their_own_keys_only() -> None:
    # What an outsider reads is the bindings of the queue provisioned for it.
    for actor, mine, theirs in (
        ("samu-35", "reply.samu-35.referral.outcome", "reply.samu-75.referral.outcome"),
        ("samu-35", "reply.samu-35.request.refused", "reply.centre-15.referral.outcome"),
        ("referrer-sos-rennes", "reply.sos-rennes.submission.error", "reply.centre-15.x"),
        ("ars-53", "capacity.alert.35", "referral.received"),
        # A region hears of its own départements' alerts and answers only.
        ("ars-53", "capacity.alert.29", "capacity.alert.75"),
        ("ars-53", "reply.ars-53.request.refused", "reply.ars-11.request.refused"),
        ("ars-11", "capacity.alert.75", "reinforcement.requested.poterie"),
    ):
        bindings = PLAN.account(actor).reply_bindings
        assert any(_topic_match(b, mine) for b in bindings), actor
        assert not any(_topic_match(b, theirs) for b in bindings), actor


def _topic_match(binding: str, key: str) -> bool:
    """Whether a topic exchange routes ``key`` to ``binding`` (``*`` one word, ``#`` any)."""
    words = [{"*": r"[^.]+", "#": r".*"}.get(w, re.escape(w)) for w in binding.split(".")]
    return re.fullmatch(r"\.".join(words), key) is not None


def test_centre_15_is_answered_on_the_notifier_s_key() -> None:
    assert CENTRE_15_REPLY_TO == NOTIFIER_CENTRE_15_KEY


def test_regexes_are_anchored() -> None:
    intake = PLAN.account("intake")
    assert not allows(intake.read, f"x{NS}.intake.submissions")
    assert not allows(intake.read, f"{NS}.intake.submissions.x")
    assert not allows(intake.topic_write, "referral.received.x")
    assert not allows(PLAN.account("notifier").configure, f"{NS}.centre.poterie.x")
    assert not allows(PLAN.account("ars-53").write, f"{NS}.ingress.x")


@pytest.mark.parametrize(
    ("centres", "referrers"),
    [
        (["a.b"], []),
        (["dlq"], []),
        (["dlx"], []),
        (["x", "x"], []),
        ([], ["centre-15"]),
        ([], ["ars"]),
        ([], ["ars-53"]),
        ([], ["centre-poterie"]),
        ([], ["a#"]),
    ],
)
def test_identifiers_that_would_break_the_isolation_are_refused(
    centres: list[str], referrers: list[str]
) -> None:
    with pytest.raises(ProvisioningError):
        build_plan(NS, NS, centres=centres, referrers=referrers)


def test_password_hash_is_rabbitmq_s_salted_sha256() -> None:
    encoded = password_hash("s3cret", salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(encoded)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()
    assert password_hash("s3cret") != password_hash("s3cret")  # a new salt each time


def test_definitions_carry_users_permissions_and_the_whole_topology() -> None:
    plan = build_plan(
        NS,
        "vh",
        centres=["poterie"],
        user_suffix="-x",
        administrator="root-x",
        samus=["samu-35"],
        ars_regions=["53"],
    )
    document = definitions(plan, {"intake-x": "pw", "root-x": "admin-pw", "ars-53-x": "pw"})
    assert [u["name"] for u in document["users"]] == ["ars-53-x", "intake-x", "root-x"]
    users = {u["name"]: u for u in document["users"]}
    assert {n: u["tags"] for n, u in users.items()} == {
        "ars-53-x": [],
        "intake-x": [],
        "root-x": ["administrator"],
    }
    assert users["ars-53-x"]["limits"] == OUTSIDER_LIMITS
    assert users["intake-x"]["limits"] == {}
    assert {p["user"] for p in document["permissions"]} == set(plan.users)
    # The administrator is the one user without topic restrictions; every other has
    # them on both exchanges (none on one would mean every key).
    topics = {(t["user"], t["exchange"]) for t in document["topic_permissions"]}
    assert topics == {
        (user, exchange)
        for user in set(plan.users) - {"root-x"}
        for exchange in (events_exchange(NS), ingress_exchange(NS))
    }
    queues = {q["name"]: q["arguments"] for q in document["queues"]}
    for spec in plan.queues():
        assert queues[spec.name(NS)] == queue_arguments(NS, spec), spec.name(NS)
    assert centre_queue(NS, "poterie").name(NS) in queues
    assert {replies("samu-35"), replies("ars-53")} <= set(queues)
    for owner in DEAD_LETTER_OWNERS:
        assert queues[dead_letter_queue(NS, owner)] == DEAD_LETTER_QUEUE_ARGUMENTS
    exchanges = {e["name"]: e["type"] for e in document["exchanges"]}
    assert exchanges[events_exchange(NS)] == exchanges[ingress_exchange(NS)] == "topic"
    assert {exchanges[dead_letter_exchange(NS, o)] for o in DEAD_LETTER_OWNERS} == {"fanout"}
    bound = {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert (events_exchange(NS), f"{NS}.regulation.referrals", "referral.received") in bound
    assert (ingress_exchange(NS), f"{NS}.intake.submissions", "referral.submitted") in bound
    assert (events_exchange(NS), replies("samu-35"), "reply.samu-35.#") in bound
    assert (
        dead_letter_exchange(NS, "notifier"),
        dead_letter_queue(NS, "notifier"),
        "",
    ) in bound
    with pytest.raises(ProvisioningError):
        definitions(plan, {"stranger": "pw"})


def test_every_queue_is_bounded_and_dead_letters_into_its_owner_s_exchange() -> None:
    for spec in PLAN.queues():
        arguments = queue_arguments(NS, spec)
        assert arguments["x-dead-letter-exchange"] == dead_letter_exchange(NS, spec.service)
        assert arguments["x-queue-type"] == "quorum"
        if spec.is_door:
            # A full door refuses the sender (its confirm is a nack) and keeps what it has.
            assert arguments["x-max-length"] == INGRESS_MAX_LENGTH
            assert arguments["x-overflow"] == "reject-publish"
        elif spec.service in (CENTRE_OWNER, ACTOR_OWNER):
            assert arguments["x-overflow"] == "drop-head", spec.name(NS)
    assert DEAD_LETTER_QUEUE_ARGUMENTS["x-overflow"] == "drop-head"
    assert DEAD_LETTER_QUEUE_ARGUMENTS["x-max-length"] > 0


def test_user_names_carry_the_suffix() -> None:
    plan = build_plan(
        NS,
        NS,
        centres=["poterie"],
        referrers=["gp1"],
        user_suffix="-prod",
        samus=["samu-35"],
        ars_regions=["53"],
    )
    assert set(plan.users) == {
        "intake-prod",
        "regulation-prod",
        "scheduler-prod",
        "notifier-prod",
        "samu-35-prod",
        "referrer-gp1-prod",
        "ars-53-prod",
        "centre-poterie-prod",
    }
    assert AccountKind.ADMINISTRATOR not in {a.kind for a in plan.accounts}


def test_broker_url_quotes_the_virtual_host() -> None:
    url = broker_url("amqp://guest:guest@rabbit:5672/", "intake", "p/w", "aig/prod")
    assert url == "amqp://intake:p%2Fw@rabbit:5672/aig%2Fprod"


# -- applying the plan, against a fake rabbitmqctl ------------------------------------


class FakeRabbitmqctl(Rabbitmqctl):
    """The broker's users, permissions and topic permissions, in memory; the commands
    run are recorded. Only what ``apply`` and ``remove_stale_users`` use."""

    def __init__(self, administrators: Iterable[str] = ("guest",)) -> None:
        super().__init__("rabbitmqctl-fake")
        self.tags: dict[str, set[str]] = {u: {"administrator"} for u in administrators}
        self.permissions: set[tuple[str, str]] = set()  # (vhost, user)
        self.topics: set[tuple[str, str, str]] = set()  # (vhost, user, exchange)
        self.limits: dict[str, dict[str, int]] = {}
        self.commands: list[tuple[str, ...]] = []

    def run(self, *args: str, stdin: str | None = None) -> str:
        self.commands.append(args)
        match args:
            case ("set_user_limits", user, limits):
                self.limits[user] = json.loads(limits)
            case ("clear_permissions", "--vhost", vhost, user):
                self.permissions.discard((vhost, user))
            case ("clear_topic_permissions", "--vhost", vhost, user, exchange):
                self.topics.discard((vhost, user, exchange))
            case ("delete_user", user):
                del self.tags[user]
                self.permissions = {p for p in self.permissions if p[1] != user}
                self.topics = {t for t in self.topics if t[1] != user}
            case _:
                raise AssertionError(f"unexpected rabbitmqctl {args}")
        return ""

    def users(self) -> set[str]:
        return set(self.tags)

    def administrators(self) -> set[str]:
        return {u for u, tags in self.tags.items() if "administrator" in tags}

    def vhost_users(self, vhost: str) -> set[str]:
        return {u for v, u in self.permissions if v == vhost}

    def user_vhosts(self, user: str) -> set[str]:
        return {v for v, u in self.permissions if u == user}

    def topic_permissions(self, vhost: str) -> list[tuple[str, str]]:
        return sorted((u, e) for v, u, e in self.topics if v == vhost)

    def import_definitions(self, document: Mapping[str, Any]) -> None:
        for user in document["users"]:
            self.tags.setdefault(user["name"], set(user["tags"]))
        for p in document["permissions"]:
            self.permissions.add((p["vhost"], p["user"]))
        for t in document["topic_permissions"]:
            self.topics.add((t["vhost"], t["user"], t["exchange"]))


def test_apply_creates_the_users_with_their_limits_and_keeps_passwords() -> None:
    ctl = FakeRabbitmqctl()
    passwords = apply(PLAN, ctl, {"ars-53": "given"})
    assert passwords["ars-53"] == "given"
    assert all(passwords[u] for u in PLAN.users)  # new users: a password each
    assert ctl.users() == set(PLAN.users) | {"guest"}
    assert set(ctl.limits) == {PLAN.account(a).user for a in OUTSIDERS}
    again = apply(PLAN, ctl)
    assert set(again.values()) == {None}  # existing users keep theirs
    rotated = apply(PLAN, ctl, rotate=True)
    assert all(rotated[u] for u in PLAN.users)


def test_provisioning_again_removes_the_users_no_longer_in_the_plan() -> None:
    ctl = FakeRabbitmqctl()
    apply(PLAN, ctl)
    # Someone's user elsewhere on the broker, with a right on this host too.
    ctl.tags["monitor"] = set()
    ctl.permissions |= {("other", "monitor"), ("other", "centre-cleunay")}
    smaller = build_plan(NS, "aig-vhost", centres=["poterie"], referrers=[])
    apply(smaller, ctl)
    # The closed centre and the struck-off referrer: out of the host; deleted, unless
    # they still have rights on another host.
    assert ctl.vhost_users("aig-vhost") == set(smaller.users)
    assert "referrer-sos-rennes" not in ctl.users()
    assert "centre-cleunay" in ctl.users()
    assert ctl.user_vhosts("centre-cleunay") == {"other"}
    assert ("delete_user", "centre-cleunay") not in ctl.commands
    assert not [t for t in ctl.topics if t[1] in ("centre-cleunay", "referrer-sos-rennes")]
    assert ctl.users() >= {"guest", "monitor"}


def test_stale_user_removal_leaves_administrators_and_the_plan_alone() -> None:
    ctl = FakeRabbitmqctl(administrators={"guest", "root"})
    apply(PLAN, ctl)
    # A referrer struck off the plan goes; a user of another deployment (not named as
    # this plan names its users) stays, as do administrators.
    for user in ("referrer-struck-off", "root", "stranger"):
        ctl.permissions |= {("aig-vhost", user)}
        ctl.tags.setdefault(user, set())
    assert remove_stale_users(PLAN, ctl) == ["referrer-struck-off"]
    assert ctl.users() == set(PLAN.users) | {"guest", "root", "stranger"}
    assert ctl.vhost_users("aig-vhost") == set(PLAN.users) | {"root", "stranger"}
    assert remove_stale_users(PLAN, ctl) == []


def test_the_hub_sante_door_reads_its_own_copy_of_its_samu_s_answers() -> None:
    from shared.topology import hubsante_queue

    door = hubsante_queue(NS, "samu-35")
    assert door in PLAN.queues()
    assert who("read", door.name(NS)) == {"samu-35"}
    assert who("configure", door.name(NS)) == set()
    assert door.bindings == ("reply.samu-35.#",)
    # No national Centre 15, no national door queue.
    assert hubsante_queue(NS) not in PLAN.queues()


def test_one_centre_15_user_per_samu_and_the_national_one_only_where_enabled() -> None:
    """Issue 28: a SAMU reads its own answers only; the national centre_15 user, which
    hears every SAMU's, exists only where the deployment enables it."""
    assert AccountKind.CENTRE_15 in {a.kind for a in PLAN.accounts}
    assert "centre_15" not in {a.actor for a in PLAN.accounts}
    assert who("read", replies("samu-75")) - SERVICES == {"samu-75"}
    national = build_plan(NS, NS, samus=["samu-35"], national_centre_15=True)
    c15 = national.account("centre_15")
    assert c15.reply_bindings == ("reply.centre-15.#",)
    assert allows(c15.ingress_write, "regulation.decided")
    for bad in (["35"], ["samu-35", "samu-35"], ["samu 35"]):
        with pytest.raises(ProvisioningError):
            build_plan(NS, NS, samus=bad)
    # A referrer answered on a SAMU's key would read that SAMU's answers.
    with pytest.raises(ProvisioningError, match="SAMU"):
        build_plan(NS, NS, referrers=["samu-35"])


def test_one_ars_user_per_region_and_no_national_one() -> None:
    """Issue 28: an ARS is its region's (ars-<region>): it decides on the centres (its
    door judges them, shared.regions), hears of its départements' alerts and its own
    answers only; the former ``ars`` user, which heard every region's, is gone."""
    assert "ars" not in {a.actor for a in PLAN.accounts}
    assert who("read", replies("ars-11")) - SERVICES == {"ars-11"}
    for bad in (["99"], ["53", "53"], ["bzh"], ["ars-53"]):
        with pytest.raises(ProvisioningError):
            build_plan(NS, NS, ars_regions=bad)
    # A referrer answered on an ARS's key would read that ARS's answers.
    with pytest.raises(ProvisioningError, match="ARS"):
        build_plan(NS, NS, referrers=["ars-53"])
    # A former national user is stale: provisioning again removes it.
    assert plan_user_pattern(PLAN).match("ars") and plan_user_pattern(PLAN).match("ars-53")


def test_the_ars_answers_reinforcement_requests_and_a_centre_cannot() -> None:
    """Issue 30: the ARS's answers to a centre's request go through the ARS's door; the
    centre that asked may not grant itself anything, nor hear another centre's answers."""
    answers = ("reinforcement.acknowledged", "reinforcement.granted", "reinforcement.declined")
    ars = PLAN.account("ars-53")
    poterie = PLAN.account("centre-poterie")
    for kind in answers:
        assert allows(ars.ingress_write, f"{kind}.poterie"), kind
        assert not allows(poterie.ingress_write, f"{kind}.poterie"), kind
        assert not allows(poterie.ingress_write, f"{kind}.cleunay"), kind
        # The scheduler puts what it applied on the bus, to the centre's own queue.
        assert allows(PLAN.account("scheduler").topic_write, f"{kind}.poterie"), kind
        assert f"{kind}.poterie" in centre_queue(NS, "poterie").bindings
        assert f"{kind}.poterie" not in centre_queue(NS, "cleunay").bindings
    assert who("ingress_write", "reinforcement.granted.poterie") == {
        "ars-53",
        "ars-11",
        "scheduler",
    }
