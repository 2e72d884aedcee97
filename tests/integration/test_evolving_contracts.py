"""Contracts that evolve, on the real broker (docs/architecture/contracts.md): a reader on
the bus takes unknown fields (of the envelope and of the payload) and the versions it can
read, upcast or read as its own; a version it cannot read is dead-lettered with the
reason; a door refuses an unknown field with its error."""

from __future__ import annotations

import asyncio
from typing import Any

from services.intake.app import build as build_intake
from shared.consumer import Delivery
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.contact_v2 import PatientContactV2, contact_v1_to_v2, registered
from tests.helpers import Tap, dead_letters, referral, running

V1 = {
    "referral_id": "r-1",
    "patient_ref": "pat-1",
    "first_name": "Ada",
    "last_name": "Martin",
    "phone": "+33612345678",
    "sms_consent": True,
}


def _with_unknown_envelope_field(envelope: Envelope) -> bytes:
    return (envelope.model_dump_json()[:-1] + ', "trace": "t-1"}').encode()


async def test_a_bus_reader_takes_unknown_fields_older_and_readable_newer_versions(
    settings: Settings,
) -> None:
    # By referral: a batch with a failing delivery (the unreadable v3) is handled again
    # without it, and this handler's effect, unlike a service's, is not in the rolled-back
    # transaction (the inbox is what makes a service's handling count once).
    read: dict[str, PatientContactV2] = {}

    async def handles_v2(delivery: Delivery) -> None:
        contact = delivery.payload_as(PatientContactV2)
        read[contact.referral_id] = contact

    runtime = ServiceRuntime(ServiceName.NOTIFIER, settings, "services.notifier:migrations")
    runtime.consume("contacts", handles_v2)
    s = settings
    with registered():
        async with running(runtime), EventPublisher(s.broker_url, s.namespace, "t") as pub:
            # v1, as an older intake writes it, with a field of neither version: upcast.
            older = Envelope(
                type="patient.contact",
                version=1,
                source="intake@0.2.0",
                correlation_id="r-1",
                data={**V1, "language": "fr"},
            )
            await pub.publish_raw(
                _with_unknown_envelope_field(older), "contact.notifier", message_id=older.id
            )
            # v3, which this reader does not know, readable as v2: read as it.
            newer = Envelope(
                type="patient.contact",
                version=3,
                source="intake@0.4.0",
                correlation_id="r-2",
                data={**contact_v1_to_v2(V1), "referral_id": "r-2", "language": "fr"},
            )
            await pub.publish_envelope(newer, "contact.notifier")
            # v3 without v2's channels: not readable as v2, dead-lettered with the reason.
            unreadable = Envelope(
                type="patient.contact",
                version=3,
                source="intake@0.4.0",
                correlation_id="r-3",
                data={**V1, "referral_id": "r-3"},
            )
            await pub.publish_envelope(unreadable, "contact.notifier")
            [letter] = await dead_letters(s.broker_url, s.namespace, "notifier", expected=1)
            for _ in range(100):
                if len(read) == 2:
                    break
                await asyncio.sleep(0.1)
    assert letter.headers["x-error-code"] == "unreadable_version"
    error = str(letter.headers["x-error"])
    assert "patient.contact v3 is newer than v2" in error and "channels (missing)" in error
    assert sorted(read) == ["r-1", "r-2"]
    assert all(
        [(c.kind, c.address) for c in contact.channels] == [("sms", "+33612345678")]
        for contact in read.values()
    )


async def test_a_door_refuses_an_unknown_field_with_its_error(settings: Settings) -> None:
    s = settings
    intake = build_intake(s)
    async with (
        running(intake),
        Tap(s.broker_url, s.namespace, "reply.#", "referral.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "gp") as gp,
    ):
        sent = Envelope.wrap(referral("extra-1"), source="gp", correlation_id="a")
        strange = sent.model_copy(update={"data": {**sent.data, "urgence_absolue": True}})
        await gp.publish_envelope(strange, "referral.submitted")
        await tap.wait_for(lambda es: any(e.type == "submission.error" for e in es))
    [error] = tap.of_type("submission.error")
    data: dict[str, Any] = error.data
    assert data["source_message_id"] == strange.id
    fields = {(r["code"], r.get("field")) for r in data.get("reasons", [])}
    assert any("urgence_absolue" in str(field) for _, field in fields), data
    assert tap.of_type("referral.received") == []
