"""A test-only version 2 of ``patient.contact``, with its upcaster and downcaster.

v2 says how to reach the patient as a list of channels (``channels``) where v1 has one
``phone`` and one ``email``: the kind of change that needs a new version (a field gone,
another required). It is registered for a test only (``registered``), never in the
catalogue, so that the upcaster path (``shared.events.versions``) runs as a real one
would: a unit test per converter, an integration test through a real delivery.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

from pydantic import Field

from shared.events import EventPayload
from shared.events.versions import DOWNCASTERS, UPCASTERS
from shared.events.vocabulary import Frozen, ReferrerRef


class ContactChannel(Frozen):
    kind: Literal["sms", "email"]
    address: str = Field(max_length=254)


class PatientContactV2(EventPayload):
    event_type: ClassVar[str] = "patient.contact"
    version: ClassVar[int] = 2

    referral_id: str
    patient_ref: str
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    channels: list[ContactChannel]
    sms_consent: bool = False
    referrer: ReferrerRef | None = None
    corrected: bool = False

    def routing_key(self) -> str:
        return "contact.notifier"


def contact_v1_to_v2(data: Mapping[str, Any]) -> dict[str, Any]:
    """v1's phone and e-mail become v2's channels (none when neither)."""
    upcast = {k: v for k, v in data.items() if k not in ("phone", "email")}
    upcast["channels"] = [
        {"kind": kind, "address": data[key]}
        for kind, key in (("sms", "phone"), ("email", "email"))
        if data.get(key)
    ]
    return upcast


def contact_v2_to_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """v2's first SMS and first e-mail channels become v1's phone and e-mail."""
    downcast = {k: v for k, v in data.items() if k != "channels"}
    for kind, key in (("sms", "phone"), ("email", "email")):
        address = next((c["address"] for c in data.get("channels", ()) if c["kind"] == kind), None)
        if address is not None:
            downcast[key] = address
    return downcast


@contextmanager
def registered() -> Iterator[None]:
    """The converters of v1 ↔ v2 registered for the duration (then removed)."""
    UPCASTERS[("patient.contact", 1)] = contact_v1_to_v2
    DOWNCASTERS[("patient.contact", 2)] = contact_v2_to_v1
    try:
        yield
    finally:
        del UPCASTERS[("patient.contact", 1)]
        del DOWNCASTERS[("patient.contact", 2)]
