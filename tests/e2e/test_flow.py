"""The four services as separate processes, driven through RabbitMQ only."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.events import Clinical, Envelope, Purpose
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e

SECRETS = [
    "Éloïse",
    "Dupont-Lajoie",
    "285057800608441",
    "0612345678",
    "+33612345678",  # the number as intake keeps it
    "eloise.dl@exemple.fr",
]


async def test_referral_goes_from_intake_to_the_centres_notification(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with httpx.AsyncClient() as http:
        for service, port in processes.ports.items():
            ready = await http.get(f"http://127.0.0.1:{port}/ready")
            assert ready.status_code == 200, (service, ready.text)
            assert ready.json()["checks"] == {"broker": True, "database": True, "consumers": True}
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre("rennes-e2e", "35238"), correlation_id="rennes-e2e")
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            mild = await gp.publish(referral("e2e-mild"), correlation_id="c-1")
            await gp.publish(referral("e2e-severe", severe=True), correlation_id="c-2")
            invalid = await gp.publish(
                # Nothing clinical at all: intake refuses it (with a picture, regulation
                # judges it, since a severity sign wins over a screening request).
                referral("e2e-screening").model_copy(
                    update={"purpose": Purpose.SCREENING, "clinical": Clinical(symptomatic=False)}
                ),
                correlation_id="c-3",
            )

        def finished(events: list[Envelope]) -> bool:
            types = [e.type for e in events]
            # The centre's notice, not any notice: the severe referral's referrer may be
            # told of its escalation first.
            centre_told = any(
                e.type == "notification.sent" and e.data["recipient_kind"] == "centre"
                for e in events
            )
            return (
                centre_told
                and types.count("referral.regulated") == 2
                and "referral.rejected" in types
            )

        await tap.wait_for(finished, timeout=60)
        await asyncio.sleep(0.5)

    acks = {e.data["reference"]: e for e in tap.of_type("submission.acknowledged")}
    assert set(acks) == {"e2e-mild", "e2e-severe"}
    assert acks["e2e-mild"].data["source_message_id"] == mild.id
    [error] = tap.of_type("submission.error")
    assert error.data["source_message_id"] == invalid.id
    assert error.data["error_code"] == "screening_not_offered"

    mild_id = acks["e2e-mild"].data["referral_id"]
    severe_id = acks["e2e-severe"].data["referral_id"]
    decisions = {e.data["referral_id"]: e.data for e in tap.of_type("referral.regulated")}
    assert decisions[mild_id]["decision"] == "orient"
    assert decisions[severe_id]["decision"] == "escalate"

    [slot] = tap.of_type("slot.assigned")
    assert slot.data["referral_id"] == mild_id and slot.data["centre_id"] == "rennes-e2e"
    assert slot.correlation_id == mild_id
    [notice] = [e for e in tap.of_type("notification.sent") if e.data["recipient_kind"] == "centre"]
    assert notice.data["recipient"] == "rennes-e2e" and notice.causation_id == slot.id
    # The per-centre routing key carries the centre id.
    assert any(m.routing_key == "slot.assigned.rennes-e2e" for m in tap.messages)

    # The whole trail is linked by correlation and causation ids.
    trail = [e for e in tap.envelopes if e.correlation_id == mild_id]
    ids = {e.id for e in trail} | {mild.id}
    assert all(e.causation_id in ids for e in trail)

    # Identity stays in intake: only the notifier's contact channel carries it (and,
    # from the notifier, the key of the SAMU covering the escalated patient it must call
    # back), and no log line of any service holds it.
    logs = {service: processes.log(service) for service in processes.ports}
    assert "referral received" in logs["intake"]
    for service, text in logs.items():
        for secret in SECRETS:
            assert secret not in text, (service, secret)
            assert json.dumps(secret)[1:-1] not in text, (service, secret)
    for message in tap.messages:
        if message.routing_key in ("referral.submitted", "contact.notifier"):
            continue
        if message.routing_key == "reply.samu-35.referral.outcome":
            outcome = Envelope.model_validate_json(message.body)
            assert outcome.data["referral_id"] == severe_id, "Centre 15 calls back the escalated"
            continue
        body = message.body.decode()
        for secret in SECRETS:
            assert secret not in body and json.dumps(secret)[1:-1] not in body, message.routing_key
