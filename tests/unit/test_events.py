"""The contracts: every event of the catalogue round-trips through the envelope."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.contracts import PUBLISHERS, typed_envelope
from shared.events import (
    CATALOGUE,
    CentreActivated,
    Envelope,
    SlotAssigned,
    UnknownEventError,
    payload_class,
)

SPEC_EVENTS = {
    "referral.submitted",
    "referral.received",
    "referral.rejected",
    "referral.regulated",
    "referral.waitlisted",
    "referral.cancelled",
    "regulation.decided",
    "slot.assigned",
    "appointment.rescheduled",
    "appointment.cancelled",
    "centre.activated",
    "centre.capacity_changed",
    "centre.suspended",
    "centre.closed",
    "consultation.completed",
    "consultation.no_show",
    "patient.escalated",
    "capacity.alert",
    "reinforcement.requested",
    "notification.sent",
    "notification.failed",
}


def test_catalogue_covers_the_spec() -> None:
    assert {cls.event_type for cls in CATALOGUE} >= SPEC_EVENTS


def test_every_event_has_a_producer() -> None:
    produced = {cls for events in PUBLISHERS.values() for cls in events}
    assert set(CATALOGUE) == produced


def test_types_are_unique() -> None:
    keys = [(cls.event_type, cls.version) for cls in CATALOGUE]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("cls", CATALOGUE, ids=lambda c: c.event_type)
def test_documented_envelope_schema(cls: type) -> None:
    schema = typed_envelope(cls).model_json_schema()
    assert {
        "id",
        "type",
        "version",
        "time",
        "source",
        "correlation_id",
        "causation_id",
        "data",
    } <= set(schema["properties"])


def test_envelope_round_trip() -> None:
    payload = CentreActivated(
        centre_id="c1",
        name="Centre",
        kind="msp",
        commune_insee="35238",
        opening_hours=[{"weekday": 0, "opens": "08:00", "closes": "20:00"}],
        boxes=2,
        consultation_minutes=20,
        first_day="2020-03-25",
    )
    envelope = Envelope.wrap(payload, source="ars", correlation_id="c1", causation_id="x")
    again = Envelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert again.payload() == payload
    assert again.payload_as(CentreActivated) == payload
    with pytest.raises(ValueError, match=r"expected slot\.assigned"):
        again.payload_as(SlotAssigned)


def test_per_centre_routing_key() -> None:
    assert SlotAssigned.model_fields["centre_id"]
    slot = SlotAssigned.model_construct(centre_id="c42")
    assert slot.routing_key() == "slot.assigned.c42"


def test_unknown_event_and_invalid_payload() -> None:
    with pytest.raises(UnknownEventError):
        payload_class("referral.teleported", 1)
    envelope = Envelope(type="centre.activated", source="ars", correlation_id="c", data={})
    with pytest.raises(ValidationError):
        envelope.payload()
    with pytest.raises(ValidationError):
        Envelope.model_validate({"type": "x", "source": "y", "correlation_id": "z", "nope": 1})
