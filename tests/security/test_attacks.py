"""Nine attacks on a deployment run with least-privilege broker users, each replayed
against the real broker and the four services as processes. Each must be refused:

- no service's state changes (seen through their HTTP APIs or, read-only, their
  databases) and nothing of it goes on the bus;
- the attacker is told (``request.refused`` on its own queue) or the broker itself
  refuses (ACCESS_REFUSED, a closed connection);
- the refusal is logged with the sender's user (the service's ``message refused``
  line, or the broker's own log of the channel error).

Each test names, in its docstring, the check it proves: taken out, the test fails.
docs/security.md has the table.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import AMQPError, ChannelAccessRefused, ConnectionNotAllowed

from shared.auth import Role
from shared.events import (
    CancelledBy,
    CentreCapacityChanged,
    ConsultationNoShow,
    Envelope,
    PatientEscalated,
    ReferralCancelled,
)
from shared.settings import ServiceName
from shared.topology import (
    DEAD_LETTER_MAX_LENGTH,
    INGRESS_MAX_LENGTH,
    OUTWARD_MAX_LENGTH,
    SUBSCRIPTIONS,
    actor_queue,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    events_exchange,
    ingress_exchange,
)
from tests.helpers import centre
from tests.provisioned import ARS, Actor, declaring
from tests.security.conftest import (
    CENTRE_A,
    CENTRE_B,
    COMMUNES,
    MAX_MESSAGE_BYTES,
    NOWHERE,
    REFERRER_A,
    REFERRER_B,
    Stage,
    answer_to,
    by_referrer,
    eventually,
    rabbitmq_queues,
    refusal_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# The patient of tests.helpers.referral, in every form a header could quote her.
IDENTITY = (
    "Éloïse",
    "Dupont-Lajoie",
    "285057800608441",
    "0612345678",
    "eloise.dl@exemple.fr",
    "12 rue de la Paix",
    "1985-05-17",
)


def referrer(stage: Stage, referrer_id: str) -> Actor:
    return Actor(stage.d, f"referrer-{referrer_id}")


def centre_actor(stage: Stage, centre_id: str) -> Actor:
    return Actor(stage.d, f"centre-{centre_id}")


# -- 1 -------------------------------------------------------------------------------


async def test_1_a_cc_header_does_not_carry_a_centre_activation_to_the_ars_door(
    stage: Stage,
) -> None:
    """A referrer publishes on its own key, ``referral.submitted``, with ``CC:
    ["centre.activated"]``, the body a centre's activation. RabbitMQ before 4.0.3 routes
    a CC key without checking it against topic permissions: the message reaches the
    scheduler's door for the ARS. Proves the door's own checks
    (shared/consumer.py ``_check_door``): the sender may not send ``centre.activated``
    (``sender_not_allowed``), and it came on another key than its type's. Both out, the
    scheduler activates the centre."""
    s = stage
    async with referrer(s, REFERRER_A) as gp:
        forged = gp.envelope(centre("cc-rogue", COMMUNES[CENTRE_A]))
        try:
            await gp.publish(forged, "referral.submitted", headers={"CC": ["centre.activated"]})
        except ChannelAccessRefused:
            # RabbitMQ >= 4.0.3 checks the CC keys itself: refused at the broker.
            await s.broker_logged(gp.account.user, "centre.activated")
        else:
            # Both doors it reached refuse it: the scheduler's (via CC) and intake's.
            refused = await s.answer(gp, refusal_of(forged.id, "scheduler"))
            assert refused.data["error_code"] == "sender_not_allowed"
            assert refused.data["refused_type"] == "centre.activated"
            assert s.refusal_recorded("scheduler", forged.id) == (
                "sender_not_allowed",
                "type",
                gp.account.user,
            )
            await s.refusal_logged("scheduler", gp.account.user, "sender_not_allowed")
    assert "cc-rogue" not in await s.centres("35")
    # Nothing of it went on the bus (the notifier would have been told).
    staged = s.query(
        "scheduler",
        "SELECT count(*) FROM outbox WHERE event_type = ? AND body LIKE ?",
        "centre.activated",
        "%cc-rogue%",
    )
    assert staged == [(0,)]


async def test_1b_a_cc_header_does_not_carry_a_report_past_the_appointment_check(
    stage: Stage,
) -> None:
    """Centre A reports, on its own key, a no-show at centre B, with ``CC:
    ["centre.activated"]``: the copy at the ARS's door (whose sender may send a no-show,
    on its type's key) must not go on the bus as B's no-show. Proves that a door takes
    only the keys its queue is bound to (``_check_door``), where the broker routes CC
    keys unchecked (RabbitMQ < 4.0.3)."""
    s = stage
    referral_id = await s.submit(REFERRER_B, "b-brest-1b", COMMUNES[CENTRE_B])
    appointment_id, _ = await s.booked(referral_id)
    await s.status_becomes(REFERRER_B, referral_id, "appointment")
    async with centre_actor(s, CENTRE_A) as centre_a:
        report = ConsultationNoShow(
            appointment_id=appointment_id, referral_id=referral_id, centre_id=CENTRE_B
        )
        forged = centre_a.envelope(report)
        key = f"consultation.no_show.{CENTRE_A}"
        try:
            await centre_a.publish(forged, key, headers={"CC": ["centre.activated"]})
        except ChannelAccessRefused:
            return  # RabbitMQ >= 4.0.3 refuses the CC key itself
        # Routed unchecked (RabbitMQ < 4.0.3): the doors alone stand, and one does not.
        # The consultations' door refuses its copy (the key names another centre).
        await s.answer(centre_a, refusal_of(forged.id, "scheduler"))
        await asyncio.sleep(1.0)  # time for the other copy to do harm, if it can
    assert s.appointment_status(appointment_id) == "booked"
    assert await s.referral_status(REFERRER_B, referral_id) == "appointment"
    staged = s.query(
        "scheduler", "SELECT count(*) FROM outbox WHERE event_id = ?", forged.id
    ) + s.query(
        "scheduler",
        "SELECT count(*) FROM outbox WHERE event_type = ? AND body LIKE ?",
        "consultation.no_show",
        f"%{appointment_id}%",
    )
    assert staged == [(0,), (0,)]


# -- 2 -------------------------------------------------------------------------------


async def test_2_a_referrer_cannot_submit_in_another_referrer_s_name(stage: Stage) -> None:
    """Referrer A submits in B's name (B's identifier), with a reference B used and
    ``reply_to`` B's key; then in its own name, answered on B's key. Proves intake's
    ``in_own_name`` (services/intake/domain/senders.py): the referrer named must be the
    sender (taken out: a reference conflict answered on B's key, a rejection filed under
    B), and answered on its own key only (taken out: B reads the news of A's patient)."""
    s = stage
    await s.submit(REFERRER_B, "b-ref-2", COMMUNES[CENTRE_A])
    async with referrer(s, REFERRER_A) as gp_a, referrer(s, REFERRER_B) as gp_b:
        await gp_b.drain(gp_b.replies)
        in_b_s_name = by_referrer(REFERRER_B, "b-ref-2", severe=True)  # other content
        forged = await gp_a.publish(in_b_s_name)
        refused = await s.answer(gp_a, refusal_of(forged.id, "intake"))
        assert refused.data["error_code"] == "sender_inconsistent"
        assert refused.data["refused_type"] == "referral.submitted"
        # In its own name but answered on B's key (B would read A's patient's news):
        # refused too, by the reply_to check alone.
        own = by_referrer(REFERRER_A, "a-ref-2")
        answered_to_b = await gp_a.publish(
            own.model_copy(
                update={"referrer": own.referrer.model_copy(update={"reply_to": REFERRER_B})}
            )
        )
        refused = await s.answer(gp_a, refusal_of(answered_to_b.id, "intake"))
        assert refused.data["error_code"] == "sender_inconsistent"
        assert s.refusal_recorded("intake", answered_to_b.id) == (
            "sender_inconsistent",
            "referrer.reply_to",
            gp_a.account.user,
        )
        # What B is told in the meantime is its own referral's news, none of this.
        await asyncio.sleep(0.5)
        for message in await gp_b.drain(gp_b.replies):
            assert forged.id.encode() not in message.body
            assert answered_to_b.id.encode() not in message.body
    assert s.query("intake", "SELECT count(*) FROM referrals WHERE reference = ?", "b-ref-2") == [
        (1,)
    ]
    for sent in (forged, answered_to_b):
        assert s.query("intake", "SELECT count(*) FROM rejections WHERE id = ?", sent.id) == [(0,)]
    assert s.query("intake", "SELECT count(*) FROM referrals WHERE reference = ?", "a-ref-2") == [
        (0,)
    ]
    assert s.refusal_recorded("intake", forged.id) == (
        "sender_inconsistent",
        "referrer.identifier",
        gp_a.account.user,
    )
    await s.refusal_logged("intake", gp_a.account.user, "sender_inconsistent")


# -- 3 -------------------------------------------------------------------------------


async def test_3_a_referrer_cannot_cancel_another_s_referral_even_from_the_future(
    stage: Stage,
) -> None:
    """Referrer A cancels B's referral, its envelope dated the year 9999 (were it
    applied by its own time, no later event could ever change the status again).
    Proves intake's ``_check_owner``: a referral is cancelled by its referrer only.
    Then B's own cancellation, from a clock twenty years late, still applies: proves
    that a door orders by the time of receipt (``Delivery.occurred_at``), not by what
    the envelope claims. The referral waits on the list (no centre near Marseille), so
    no appointment's cancellation comes to set the status in its place."""
    s = stage
    referral_id = await s.submit(REFERRER_B, "b-wait-3", NOWHERE)
    await s.status_becomes(REFERRER_B, referral_id, "waitlisted")
    cancel = ReferralCancelled(
        referral_id=referral_id, cancelled_by=CancelledBy.REFERRER, reason="no longer needed"
    )
    async with referrer(s, REFERRER_A) as gp_a:
        forged = gp_a.envelope(cancel, time=datetime(9999, 12, 31, tzinfo=UTC))
        await gp_a.publish(forged)
        refused = await s.answer(gp_a, refusal_of(forged.id, "intake"))
        assert refused.data["error_code"] == "sender_inconsistent"
    assert await s.referral_status(REFERRER_B, referral_id) == "waitlisted"
    assert s.refusal_recorded("intake", forged.id) == (
        "sender_inconsistent",
        "referral_id",
        gp_a.account.user,
    )
    await s.refusal_logged("intake", gp_a.account.user, "sender_inconsistent")
    # The genuine cancellation, later, with a clock set in the past.
    async with referrer(s, REFERRER_B) as gp_b:
        await gp_b.publish(gp_b.envelope(cancel, time=datetime(2000, 1, 1, tzinfo=UTC)))
    await s.status_becomes(REFERRER_B, referral_id, "cancelled")


# -- 4 -------------------------------------------------------------------------------


async def test_4_a_centre_cannot_report_on_another_centre_s_appointment(stage: Stage) -> None:
    """Centre A reports a no-show for an appointment at centre B. On its own key
    (``consultation.no_show.A``), the scheduler's door refuses it: proves the check
    of ``services/scheduler/handlers/consultations.py`` that the appointment is the reporting
    centre's (taken out, B's slot is freed). On B's key, the broker refuses it: proves
    the provisioning's topic permission on the ingress (a centre's own id only)."""
    s = stage
    referral_id = await s.submit(REFERRER_B, "b-brest-4", COMMUNES[CENTRE_B])
    appointment_id, at = await s.booked(referral_id)
    assert at == CENTRE_B
    async with centre_actor(s, CENTRE_A) as centre_a:
        on_own_key = centre_a.envelope(
            ConsultationNoShow(
                appointment_id=appointment_id, referral_id=referral_id, centre_id=CENTRE_A
            )
        )
        await centre_a.publish(on_own_key)  # consultation.no_show.rennes
        refused = await s.answer(centre_a, refusal_of(on_own_key.id, "scheduler"))
        assert refused.data["error_code"] == "sender_inconsistent"
        await s.refusal_logged("scheduler", centre_a.account.user, "sender_inconsistent")

        on_b_s_key = ConsultationNoShow(
            appointment_id=appointment_id, referral_id=referral_id, centre_id=CENTRE_B
        )
        text = await centre_a.refused(centre_a.publishing(on_b_s_key))
        assert f"consultation.no_show.{CENTRE_B}" in text
        await s.broker_logged(centre_a.account.user, f"consultation.no_show.{CENTRE_B}")
    assert s.appointment_status(appointment_id) == "booked"
    assert await s.referral_status(REFERRER_B, referral_id) == "appointment"


async def test_4b_a_centre_cannot_escalate_another_centre_s_patient(stage: Stage) -> None:
    """Centre A escalates, on its own key and in its own name, B's patient, naming no
    appointment (the field is optional): the referral is not A's patient, and must
    not become "escalated" nor Centre 15 be told."""
    s = stage
    referral_id = await s.submit(REFERRER_B, "b-brest-4b", COMMUNES[CENTRE_B])
    appointment_id, _ = await s.booked(referral_id)
    await s.status_becomes(REFERRER_B, referral_id, "appointment")
    async with centre_actor(s, CENTRE_A) as centre_a:
        forged = centre_a.envelope(
            PatientEscalated(referral_id=referral_id, centre_id=CENTRE_A, reason="forged")
        )
        await centre_a.publish(forged)
        refused = await s.answer(centre_a, refusal_of(forged.id, "scheduler"), timeout=5)
        assert refused.data["error_code"] == "sender_inconsistent"
    assert s.appointment_status(appointment_id) == "booked"
    assert await s.referral_status(REFERRER_B, referral_id) == "appointment"


# -- 5 -------------------------------------------------------------------------------


async def test_5_a_referrer_cannot_declare_a_queue_dead_lettering_into_our_exchanges(
    stage: Stage,
) -> None:
    """A referrer declares a queue, under its own prefix, any other name or one the
    server names, that dead-letters into the events or the ingress exchange with the
    key ``centre.activated`` (a message expiring there would come out as an
    activation). Proves the provisioning: outsiders configure nothing (and, for the
    events exchange, may not write it, which RabbitMQ asks of whoever creates a queue
    dead-lettering there)."""
    s = stage
    before = {**await s.centres("35"), **await s.centres("29")}
    async with referrer(s, REFERRER_A) as gp:
        prefix = actor_queue(s.ns, gp.actor, ()).name(s.ns).removesuffix("replies")
        for exchange in (events_exchange(s.ns), ingress_exchange(s.ns)):
            arguments = {
                "x-dead-letter-exchange": exchange,
                "x-dead-letter-routing-key": "centre.activated",
                "x-message-ttl": 1,
            }
            for name in (f"{prefix}dead", f"{s.ns}.scheduler.x", "anything", ""):
                text = await gp.refused(declaring(name, arguments))
                assert "access to queue" in text, text
        # Nor any queue at all, plain or server-named: the configure permission alone
        # (RabbitMQ also asks read on the queue of one that dead-letters, which an
        # outsider has on its provisioned queue only).
        for name in (f"{prefix}plain", "amq.gen-mine", ""):
            await gp.refused(declaring(name))
        await s.broker_logged(gp.account.user, "queue.declare", "access to queue")
    assert {**await s.centres("35"), **await s.centres("29")} == before


# -- 6 -------------------------------------------------------------------------------


async def test_6_a_service_cannot_forge_another_service_s_dead_letters(stage: Stage) -> None:
    """Intake publishes into the scheduler's dead-letter exchange. Proves the
    provisioning's one dead-letter exchange per owner, each written by its own service
    only: taken out (one shared exchange, or intake allowed it), the scheduler's
    dead-letter queue holds a letter it never wrote."""
    s = stage
    before = await s.dead_letter_count("scheduler")
    dlx = dead_letter_exchange(s.ns, "scheduler")
    async with Actor(s.d, "intake") as intake:
        forged = intake.envelope(centre("forged-dead", COMMUNES[CENTRE_A]))
        text = await intake.refused(intake.publishing(forged, "scheduler", dlx))
        assert dlx in text
        # Its own, it may.
        await intake.publish(forged, "intake", dead_letter_exchange(s.ns, "intake"))
        await s.broker_logged(intake.account.user, dlx)
    assert await s.dead_letter_count("scheduler") == before
    await s.dead_letter("intake", forged.id)  # the one it may write, to its own


# -- 7 -------------------------------------------------------------------------------


async def test_7_an_outbox_row_the_service_may_not_publish_is_set_aside(stage: Stage) -> None:
    """A row in the scheduler's outbox on a key the scheduler may not publish (another
    service's event, as a bug or a tampered database would leave it), then the ARS's
    legitimate action over the scheduler's HTTP API. The action goes through the ARS's
    door (the centre becomes active), and its event, behind the bad row, goes on the
    bus (the notifier declares the new centre's queue). Proves the relay's set-aside
    (shared/outbox.py, ``may_publish``): taken out, the row is tried and refused again
    and again and ``/ready`` does not count it."""
    s = stage
    before = await s.set_aside()
    bad = str(uuid.uuid4())
    s.execute(
        "scheduler",
        "INSERT INTO outbox (event_id, event_type, routing_key, correlation_id, body, "
        "created_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)",
        bad,
        "referral.received",
        "referral.received",
        "tampered",
        json.dumps({"id": bad, "type": "referral.received"}),
        datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    activation = centre("bruz-http", "35047")
    response = await s.http.post(
        s.api("scheduler", "/centres"),
        json=activation.model_dump(mode="json"),
        headers=s.bearer(Role.ARS, "53", ServiceName.SCHEDULER),
    )
    assert response.status_code == 202, response.text
    assert response.json()["event_type"] == "centre.activated"

    async def active() -> bool:
        return (await s.centres("35")).get("bruz-http") == "active"

    for _ in range(200):
        if await active():
            break
        await asyncio.sleep(0.1)
    assert await active()
    new_queue = centre_queue(s.ns, "bruz-http").name(s.ns)

    async def declared(channel: AbstractChannel) -> bool:
        await channel.declare_queue(new_queue, passive=True)
        return True

    for _ in range(200):
        try:
            if await s.as_admin(declared):
                break
        except aio_pika.exceptions.ChannelNotFoundEntity:
            await asyncio.sleep(0.1)
    assert await s.as_admin(declared)
    assert await s.set_aside() == before + 1
    [(set_aside_at, error)] = s.query(
        "scheduler", "SELECT set_aside_at, last_error FROM outbox WHERE event_id = ?", bad
    )
    assert set_aside_at is not None
    assert "referral.received" in error
    # The ARS's decision itself went through its door, in the ARS's name.
    [(published,)] = s.query(
        "scheduler",
        "SELECT count(*) FROM outbox WHERE event_type = ? AND body LIKE ? AND published_at "
        "IS NOT NULL",
        "centre.activated",
        "%bruz-http%",
    )
    assert published == 1


# -- 8 -------------------------------------------------------------------------------


def _submission(actor: Actor, reference: str, nir: str) -> Envelope:
    """A referral whose NIR the sender's own model would refuse: built as raw data."""
    data = by_referrer(REFERRER_A, reference).model_dump(mode="json")
    data["patient"]["nir"] = nir
    return Envelope(
        type="referral.submitted", source=actor.actor, correlation_id=reference, data=data
    )


async def test_8_a_wrong_nir_is_refused_and_dead_letters_carry_no_personal_data(
    stage: Stage,
) -> None:
    """A NIR over 21 characters and one with a wrong control key: refused with a
    reason naming the field (``submission.error`` on the broker, 422 over HTTP), not
    dead-lettered. Proves shared/events/nir.py (``max_length`` before any regex runs,
    and the key). Then two messages that are dead-lettered, a body that is no envelope
    but holds a patient's identity, and a capacity change for an unknown centre (its
    tries exhausted): their headers hold codes, ids and field names, no value of the
    message and no traceback. Proves ``shared.consumer.safe_error`` and ``frames``."""
    s = stage
    dead_before = await s.dead_letter_count("intake")
    too_long = "2 85 05 78 006 084 41 00"  # 24 characters
    wrong_key = "285057800608442"
    async with referrer(s, REFERRER_A) as gp:
        for reference, nir, code in (
            ("nir-long", too_long, "invalid_string_too_long"),
            ("nir-key", wrong_key, "invalid_nir_key"),
        ):
            sent = _submission(gp, reference, nir)
            await gp.publish(sent, "referral.submitted")
            error = await s.answer(gp, answer_to(sent.id, "submission.error"))
            assert [(r["code"], r["field"]) for r in error.data["reasons"]] == [
                (code, "patient.nir")
            ]
            assert nir not in json.dumps(error.data)  # the reason names, never quotes
            response = await s.http.post(
                s.api("intake", "/referrals"),
                json={**sent.data, "reference": f"{reference}-http"},
                headers=s.bearer(Role.REFERRER, f"gp:{REFERRER_A}"),
            )
            assert response.status_code == 422, response.text
            assert response.json()["reasons"][0]["code"] == code
    assert await s.dead_letter_count("intake") == dead_before

    # Dead-lettered at once: not an envelope (a field it does not have), a patient in it.
    identity = by_referrer(REFERRER_A, "dead-8").model_dump(mode="json")
    identity["patient"]["address"] = "12 rue de la Paix"
    not_an_envelope = json.dumps(
        {"id": str(uuid.uuid4()), "type": "referral.submitted", **identity}
    ).encode()
    message_id = str(uuid.uuid4())
    async with referrer(s, REFERRER_A) as gp:
        await gp.on_channel(
            gp.publishing_raw(not_an_envelope, "referral.submitted", message_id=message_id)
        )
    letter = await s.dead_letter("intake", message_id)
    assert letter.headers["x-error-code"] == "invalid_envelope"
    # Dead-lettered after its tries: the capacity of a centre nobody activated.
    async with Actor(s.d, ARS) as ars:
        unknown = await ars.publish(
            CentreCapacityChanged(centre_id="never-activated", from_date=date.today(), boxes=3)
        )
    exhausted = await s.dead_letter("scheduler", unknown.id)
    assert exhausted.headers["x-error-code"] == "retries_exhausted"
    assert exhausted.headers["x-error-detail"]  # where it failed: file, line, function
    for dead in (letter, exhausted):
        headers = json.dumps(dead.headers, default=str)
        for value in IDENTITY:
            assert value not in headers and json.dumps(value)[1:-1] not in headers, value
        assert "Traceback" not in headers and 'File "' not in headers, headers


# -- 9 -------------------------------------------------------------------------------


async def test_9_bounds_hold(stage: Stage) -> None:
    """The doors refuse new messages when full (``x-max-length``, ``reject-publish``),
    the queues outsiders read and the dead-letter queues drop their oldest; a message
    over AIGUILLAGE_MAX_MESSAGE_BYTES is refused (``message_too_large``); an outsider
    declares no queue and holds at most 5 connections and 20 channels. Proves
    shared/topology.py's ``queue_arguments``, the consumer's size check and the
    provisioning's user limits."""
    s = stage
    queues = await asyncio.to_thread(rabbitmq_queues, s.d.vhost)
    for spec in (spec for specs in SUBSCRIPTIONS.values() for spec in specs):
        arguments = queues[spec.name(s.ns)]
        if spec.is_door:
            assert arguments["x-max-length"] == INGRESS_MAX_LENGTH, spec.name(s.ns)
            assert arguments["x-overflow"] == "reject-publish", spec.name(s.ns)
    for name in (
        centre_queue(s.ns, CENTRE_A).name(s.ns),
        actor_queue(s.ns, f"referrer-{REFERRER_A}", ()).name(s.ns),
    ):
        assert queues[name]["x-max-length"] == OUTWARD_MAX_LENGTH, name
        assert queues[name]["x-overflow"] == "drop-head", name
    for owner in ("intake", "scheduler", "centre", "actor"):
        arguments = queues[dead_letter_queue(s.ns, owner)]
        assert arguments["x-max-length"] == DEAD_LETTER_MAX_LENGTH, owner
        assert arguments["x-overflow"] == "drop-head", owner

    async with referrer(s, REFERRER_A) as gp:
        big = _too_large(gp)
        await gp.publish(big, "referral.submitted")
        await s.refusal_logged("intake", gp.account.user, "message_too_large")
        # Logged before its record commits: waited for.
        recorded = await eventually(
            lambda: s.refusal_recorded("intake", big.id), "the refusal's record"
        )
        assert recorded == ("message_too_large", None, gp.account.user)
        await gp.refused(declaring(f"{s.ns}.mine"))
    assert s.query("intake", "SELECT count(*) FROM referrals WHERE reference = ?", "big-9") == [
        (0,)
    ]

    # Five connections at once, not six; twenty channels, not twenty-one.
    url = s.d.url(f"referrer-{REFERRER_B}")
    held = [await aio_pika.connect(url, timeout=10) for _ in range(5)]
    try:
        with pytest.raises(AMQPError):  # the broker closes it as it opens
            await aio_pika.connect(url, timeout=10)
        await s.broker_logged(s.d.user(f"referrer-{REFERRER_B}"), "connection limit")
        channels = [await held[0].channel() for _ in range(20)]
        assert len(channels) == 20
        with pytest.raises(ConnectionNotAllowed, match="channels"):
            await held[1].channel()
    finally:
        for connection in held:
            if not connection.is_closed:
                await connection.close()


def _too_large(actor: Actor) -> Envelope:
    padded = by_referrer(REFERRER_A, "big-9").model_dump(mode="json")
    padded["padding"] = "x" * MAX_MESSAGE_BYTES  # refused for its size before parsing
    return Envelope(type="referral.submitted", source="gp", correlation_id="big", data=padded)


async def test_9b_a_message_over_the_size_limit_is_answered(stage: Stage) -> None:
    """The sender of a message too large is told (``request.refused``,
    ``message_too_large``) on its own queue, like every other refusal."""
    s = stage
    async with referrer(s, REFERRER_A) as gp:
        big = _too_large(gp)
        await gp.publish(big, "referral.submitted")
        refused = await s.answer(gp, refusal_of(big.id, "intake"), timeout=5)
        assert refused.data["error_code"] == "message_too_large"


async def test_the_stage_is_untouched_by_the_attacks(stage: Stage) -> None:
    """After the attacks: every service still up and ready, the two centres active."""
    s = stage
    for service, proc in s.procs.items():
        assert not proc.dead(), service
        response = await s.http.get(s.api(service, "/ready"))
        assert response.status_code == 200, (service, response.text)
    assert (await s.centres("35"))[CENTRE_A] == "active"
    assert (await s.centres("29"))[CENTRE_B] == "active"
