"""Every string that comes through a door has a bound, no larger than the column that
keeps it: too long is refused with a reason, where PostgreSQL would fail the insert
(SQLite does not check a VARCHAR's length, so only this test sees it before production)
and the message be retried, then dead-lettered.

The bounds are read from the models' JSON schemas (what the AsyncAPI document
publishes), the lengths from the tables. A field is kept in the columns of its name,
unless ``STORED_AS`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import Column, String, Table

from services.intake.domain import submission as domain
from services.intake.store.tables import referrals, rejections, status_history
from services.notifier.store.tables import centres as notifier_centres
from services.notifier.store.tables import deferred_outcomes, notifications, referrers
from services.regulation.store.tables import cases, decisions, protocol_activations, protocols
from services.scheduler.store.tables import capacity_changes
from services.scheduler.store.tables import centres as scheduler_centres
from shared.contracts import PUBLISHERS
from shared.events import CATALOGUE, CentreActivated, Envelope, ReferralSubmitted
from shared.messaging_tables import inbox, outbox
from tests.helpers import referral

SERVICES = ("intake", "regulation", "scheduler", "notifier")

# What comes through a door: what the outside actors publish, in its envelope.
OUTSIDE = ("referrers", "ars", "centre_15", "centres")
INCOMING: tuple[type[BaseModel], ...] = (
    Envelope,
    *dict.fromkeys(cls for producer in OUTSIDE for cls in PUBLISHERS[producer]),
)

# Fields kept under another name, or whose name another column also has: their columns.
STORED_AS: dict[str, tuple[Column[Any], ...]] = {
    "Envelope.id": (
        inbox.c.event_id,
        rejections.c.id,
        referrals.c.source_message_id,
        status_history.c.event_id,
        capacity_changes.c.event_id,
        protocol_activations.c.event_id,
        notifications.c.cause_event_id,
        deferred_outcomes.c.cause_event_id,
    ),
    "Envelope.type": (inbox.c.event_type, outbox.c.event_type),
    "Referrer.kind": (
        referrals.c.referrer_kind,
        rejections.c.referrer_kind,
        cases.c.referrer_kind,
        referrers.c.kind,
    ),
    "Referrer.identifier": (
        referrals.c.referrer_id,
        rejections.c.referrer_id,
        referrers.c.identifier,
    ),
    "Referrer.name": (),  # in the fingerprint only (not a centre's name)
    "CentreActivated.centre_id": (scheduler_centres.c.id, notifier_centres.c.id),
    "CentreActivated.kind": (scheduler_centres.c.kind,),
    "RegulationDecided.regulator_id": (decisions.c.decided_by,),
    "ProtocolPublished.protocol_version": (
        protocols.c.version,
        protocol_activations.c.version,
        decisions.c.protocol_version,
    ),
}

# Ids the services keep, from whichever event carries them (their own events too).
IDS = ("referral_id", "appointment_id", "centre_id", "patient_ref")

# Strings of a fixed shape, checked by their parser.
_PARSED = {"date", "date-time", "time", "duration"}


@dataclass(frozen=True)
class Leaf:
    """A string or a list in a model's schema: ``where`` is ``Model.field``."""

    where: str
    schema: dict[str, Any]

    @property
    def field(self) -> str:
        return self.where.rpartition(".")[2]

    @property
    def is_list(self) -> bool:
        return self.schema.get("type") == "array"

    @property
    def bound(self) -> int | None:
        """Its longest value (items, for a list); None if unbounded."""
        if self.is_list:
            return self.schema.get("maxItems")
        if "enum" in self.schema:
            return max(len(str(value)) for value in self.schema["enum"])
        if "const" in self.schema:
            return len(str(self.schema["const"]))
        return self.schema.get("maxLength")


def leaves(model: type[BaseModel]) -> Iterator[Leaf]:
    schema = model.model_json_schema()
    yield from _walk(model.__name__, "", schema, schema.get("$defs", {}))


def _walk(owner: str, where: str, node: dict[str, Any], defs: dict[str, Any]) -> Iterator[Leaf]:
    if "$ref" in node:
        name = node["$ref"].rpartition("/")[2]
        node = defs[name]
        owner = name if "properties" in node else owner  # a model, not an enum
    # A free JSON object (a protocol's document) has no properties: its own model checks it.
    for field, sub in node.get("properties", {}).items():
        yield from _walk(owner, f"{owner}.{field}", sub, defs)
    for option in node.get("anyOf", ()):
        yield from _walk(owner, where, option, defs)
    if node.get("type") == "array":
        yield Leaf(where, node)
        yield from _walk(owner, where, node.get("items", {}), defs)
    if node.get("type") == "string" and node.get("format") not in _PARSED:
        yield Leaf(where, node)


def _columns_by_name() -> dict[str, list[Column[Any]]]:
    found: dict[str, list[Column[Any]]] = {}
    for table in _tables():
        for column in table.columns:
            if isinstance(column.type, String):
                found.setdefault(column.name, []).append(column)
    return found


def _tables() -> list[Table]:
    modules = [f"services.{service}.store.tables" for service in SERVICES]
    metadatas = [import_module(m).metadata for m in [*modules, "shared.messaging_tables"]]
    return [table for metadata in metadatas for table in metadata.tables.values()]


def _length(column: Column[Any]) -> int | None:
    """None for a Text column (no length to exceed)."""
    return column.type.length if isinstance(column.type, String) else None


def _too_long(leaf: Leaf, columns: list[Column[Any]] | tuple[Column[Any], ...]) -> list[str]:
    return [
        f"{leaf.where} (bound {leaf.bound}) > {column.table.name}.{column.name} ({length})"
        for column in columns
        if (length := _length(column)) is not None and (leaf.bound is None or leaf.bound > length)
    ]


def test_every_incoming_string_and_list_is_bounded() -> None:
    unbounded = {
        f"{leaf.where}{'[]' if leaf.is_list else ''}"
        for model in INCOMING
        for leaf in leaves(model)
        if leaf.bound is None
    }
    assert not unbounded


def test_every_incoming_string_fits_its_columns() -> None:
    by_name = _columns_by_name()
    wrong = [
        problem
        for model in INCOMING
        for leaf in leaves(model)
        if not leaf.is_list
        for problem in _too_long(leaf, STORED_AS.get(leaf.where, by_name.get(leaf.field, [])))
    ]
    assert not wrong


def test_every_id_fits_its_columns_in_every_event() -> None:
    by_name = _columns_by_name()
    wrong = [
        problem
        for model in CATALOGUE
        for leaf in leaves(model)
        if leaf.field in IDS and not leaf.is_list
        for problem in _too_long(leaf, by_name[leaf.field])
    ]
    assert not wrong


def test_the_mapping_names_fields_that_exist() -> None:
    known = {leaf.where for model in INCOMING for leaf in leaves(model)}
    assert set(STORED_AS) <= known


def test_the_walk_sees_a_missing_bound() -> None:
    class Loose(BaseModel):
        name: str
        notes: tuple[str, ...] = ()

    assert {(leaf.where, leaf.bound) for leaf in leaves(Loose)} == {
        ("Loose.name", None),
        ("Loose.notes", None),
    }


def _refusal(data: dict[str, Any]) -> set[tuple[str, str | None]]:
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)
    return {(r.code, r.field) for r in domain.reasons_from_validation_error(caught.value)}


def _valid() -> dict[str, Any]:
    return referral("ref-1").model_dump(mode="json")


@pytest.mark.parametrize(
    ("section", "field", "length"),
    [
        ("patient", "nir", 22),
        ("patient", "first_name", 101),
        ("patient", "last_name", 101),
        ("patient", "phone", 33),
        ("patient", "address", 301),
        ("referrer", "identifier", 65),
        ("referrer", "webhook_url", 501),
    ],
)
def test_an_over_long_value_is_refused_by_validation(section: str, field: str, length: int) -> None:
    data = _valid()
    data[section][field] = "2" * length
    assert _refusal(data) == {("invalid_string_too_long", f"{section}.{field}")}


def test_an_over_long_reference_is_refused_by_validation() -> None:
    data = _valid()
    data["reference"] = "r" * 101
    assert _refusal(data) == {("invalid_string_too_long", "reference")}


def test_an_over_long_email_is_refused_by_validation() -> None:
    data = _valid()
    data["patient"]["email"] = f"{'e' * 64}@{'d' * 63}.{'d' * 63}.{'d' * 63}.fr"  # 259
    assert {field for _, field in _refusal(data)} == {"patient.email"}


def test_too_many_symptoms_are_refused_by_validation() -> None:
    data = _valid()
    data["clinical"]["symptoms"] = ["cough"] * 31
    assert _refusal(data) == {("invalid_too_long", "clinical.symptoms")}


def test_a_centre_id_is_a_routing_word() -> None:
    centre = {
        "name": "Centre",
        "kind": "msp",
        "commune_insee": "35238",
        "opening_hours": [],
        "boxes": 1,
        "consultation_minutes": 15,
        "first_day": "2020-03-25",
    }
    CentreActivated.model_validate({**centre, "centre_id": "rennes-chu"})
    for wrong in ("rennes.chu", "rennes#", "c" * 65):
        with pytest.raises(ValidationError):
            CentreActivated.model_validate({**centre, "centre_id": wrong})


def test_an_over_long_envelope_id_is_refused() -> None:
    envelope = {"type": "referral.submitted", "source": "gp", "correlation_id": "c"}
    Envelope.model_validate({**envelope, "id": "e" * 36})
    with pytest.raises(ValidationError):
        Envelope.model_validate({**envelope, "id": "e" * 37})
