"""The plan of broker users and permissions, computed from the topology and the
producers (the real broker's verdicts are in tests/integration/test_broker_permissions.py).
The regexes are plain PCRE that Python's ``re`` reads the same way."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from services.notifier.handlers import CENTRE_15 as NOTIFIER_CENTRE_15_KEY
from shared.contracts import PUBLISHERS, routing_key_pattern
from shared.provisioning import (
    CENTRE_15_REPLY_TO,
    AccountKind,
    ProvisioningError,
    broker_url,
    build_plan,
    definitions,
    password_hash,
)
from shared.settings import ServiceName
from shared.topology import (
    DEAD_LETTER_OWNERS,
    SUBSCRIPTIONS,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    events_exchange,
    queue_arguments,
)

NS = "aig"
PLAN = build_plan(NS, "aig-vhost", centres=["poterie", "cleunay"], referrers=["sos-rennes"])


def allows(regex: str, name: str) -> bool:
    return re.search(regex, name) is not None


def who(permission: str, name: str) -> set[str]:
    return {a.actor for a in PLAN.accounts if allows(getattr(a, permission), name)}


def example(pattern: str) -> str:
    return pattern.format(centre_id="poterie", departement="35", reply_to="sos-rennes")


def test_each_service_queue_is_read_and_configured_by_its_service_alone() -> None:
    for service, specs in SUBSCRIPTIONS.items():
        for spec in specs:
            name = spec.name(NS)
            assert who("read", name) == {service.value}, name
            assert who("configure", name) == {service.value}, name
            for key in spec.bindings:
                assert allows(PLAN.account(service.value).topic_read, key), key


def test_a_centre_queue_is_read_by_that_centre_and_the_notifier_that_declares_it() -> None:
    poterie = centre_queue(NS, "poterie")
    assert who("read", poterie.name(NS)) == {"centre-poterie", "notifier"}
    assert who("configure", poterie.name(NS)) == {"centre-poterie", "notifier"}
    for key in poterie.bindings:
        assert who("topic_read", key) == {"centre-poterie", "notifier"}, key
    centre = PLAN.account("centre-poterie")
    for key in ("slot.assigned.cleunay", "slot.assigned.*", "slot.assigned.#", "#"):
        assert not allows(centre.topic_read, key), key


def test_nobody_configures_the_exchanges_or_reads_dead_letters() -> None:
    for name in (events_exchange(NS), dead_letter_exchange(NS)):
        assert who("configure", name) == set()
    assert who("read", dead_letter_exchange(NS)) == set()
    for owner in DEAD_LETTER_OWNERS:
        dlq = dead_letter_queue(NS, owner)
        assert who("read", dlq) == who("configure", dlq) == who("write", dlq) == set(), dlq
    # The services publish their dead letters; outside actors do not.
    assert who("write", dead_letter_exchange(NS)) == {s.value for s in ServiceName}


def test_every_event_has_someone_allowed_to_publish_it() -> None:
    for events in PUBLISHERS.values():
        for cls in events:
            key = example(routing_key_pattern(cls))
            assert who("topic_write", key), key


def test_the_issue_s_three_refusals() -> None:
    assert not allows(PLAN.account("centre_15").topic_write, "centre.activated")
    assert allows(PLAN.account("centre_15").topic_write, "referral.submitted")
    assert allows(PLAN.account("centre_15").topic_write, "regulation.decided")
    assert not allows(PLAN.account("centre-poterie").read, centre_queue(NS, "cleunay").name(NS))
    assert not allows(PLAN.account("ars").topic_write, "referral.submitted")
    assert allows(PLAN.account("ars").topic_write, "centre.activated")


def test_outside_actors_bind_their_own_answers_only() -> None:
    c15 = PLAN.account("centre_15")
    gp = PLAN.account("referrer-sos-rennes")
    assert allows(c15.topic_read, "reply.centre-15.#")
    assert allows(c15.topic_read, "reply.centre-15.referral.outcome")
    assert not allows(c15.topic_read, "reply.sos-rennes.#")
    assert not allows(c15.topic_read, "reply.*.referral.outcome")
    assert not allows(c15.topic_read, "reply.#")
    assert allows(gp.topic_read, "reply.sos-rennes.#")
    assert not allows(gp.topic_read, "reply.centre-15.#")
    ars = PLAN.account("ars")
    assert allows(ars.topic_read, "capacity.alert.*")
    assert allows(ars.topic_read, "capacity.alert.75")
    assert not allows(ars.topic_read, "referral.received")
    assert allows(c15.configure, f"{NS}.actor.centre_15.replies")
    assert not allows(c15.configure, f"{NS}.actor.ars.alerts")
    assert not allows(c15.configure, f"{NS}.intake.submissions")


def test_centre_15_is_answered_on_the_notifier_s_key() -> None:
    assert CENTRE_15_REPLY_TO == NOTIFIER_CENTRE_15_KEY


def test_regexes_are_anchored() -> None:
    intake = PLAN.account("intake")
    assert not allows(intake.read, f"x{NS}.intake.submissions")
    assert not allows(intake.read, f"{NS}.intake.submissions.x")
    assert not allows(intake.topic_write, "referral.received.x")
    assert not allows(PLAN.account("notifier").configure, f"{NS}.centre.poterie.x")


@pytest.mark.parametrize(
    ("centres", "referrers"),
    [(["a.b"], []), (["dlq"], []), (["x", "x"], []), ([], ["centre-15"]), ([], ["a#"])],
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
    plan = build_plan(NS, "vh", centres=["poterie"], user_suffix="-x", administrator="root-x")
    document = definitions(plan, {"intake-x": "pw", "root-x": "admin-pw"})
    assert [u["name"] for u in document["users"]] == ["intake-x", "root-x"]
    tags = {u["name"]: u["tags"] for u in document["users"]}
    assert tags == {"intake-x": [], "root-x": ["administrator"]}
    assert {p["user"] for p in document["permissions"]} == set(plan.users)
    # The administrator is the one user without topic restrictions.
    assert {t["user"] for t in document["topic_permissions"]} == set(plan.users) - {"root-x"}
    queues = {q["name"]: q["arguments"] for q in document["queues"]}
    for specs in SUBSCRIPTIONS.values():
        for spec in specs:
            assert queues[spec.name(NS)] == queue_arguments(NS, spec.service)
    assert centre_queue(NS, "poterie").name(NS) in queues
    assert {dead_letter_queue(NS, o) for o in DEAD_LETTER_OWNERS} <= set(queues)
    bound = {(b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert (f"{NS}.regulation.referrals", "referral.received") in bound
    assert (dead_letter_queue(NS, "notifier"), "notifier") in bound
    with pytest.raises(ProvisioningError):
        definitions(plan, {"stranger": "pw"})


def test_user_names_carry_the_suffix() -> None:
    plan = build_plan(NS, NS, centres=["poterie"], referrers=["gp1"], user_suffix="-prod")
    assert set(plan.users) == {
        "intake-prod",
        "regulation-prod",
        "scheduler-prod",
        "notifier-prod",
        "centre_15-prod",
        "referrer-gp1-prod",
        "ars-prod",
        "centre-poterie-prod",
    }
    assert AccountKind.ADMINISTRATOR not in {a.kind for a in plan.accounts}


def test_broker_url_quotes_the_virtual_host() -> None:
    url = broker_url("amqp://guest:guest@rabbit:5672/", "intake", "p/w", "aig/prod")
    assert url == "amqp://intake:p%2Fw@rabbit:5672/aig%2Fprod"
