"""Events across versions (shared/events/versions.py): tolerant readers on the bus and
strict ones at the doors, upcasters and downcasters (a test each), the version a service
emits, and what the new code emits read by the last release's models (extra="forbid")."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

from aiguillage.compat import ROOT, last_release
from shared.events import (
    CATALOGUE,
    Envelope,
    PatientContact,
    SubmissionError,
    payload_class,
)
from shared.events.versions import (
    EMITTED_BY_DEFAULT,
    UnreadableVersionError,
    emitted_data,
    read_as,
    set_emit_versions,
)
from shared.settings import Settings
from tests.contact_v2 import PatientContactV2, contact_v1_to_v2, contact_v2_to_v1, registered

V1 = {
    "referral_id": "r-1",
    "patient_ref": "pat-1",
    "first_name": "Ada",
    "last_name": "Martin",
    "phone": "+33612345678",
    "email": "ada@example.fr",
    "sms_consent": True,
}


def test_upcaster_contact_v1_to_v2() -> None:
    before = dict(V1)
    upcast = contact_v1_to_v2(V1)
    assert before == V1  # pure: the data it was given is left as it was
    assert upcast["channels"] == [
        {"kind": "sms", "address": "+33612345678"},
        {"kind": "email", "address": "ada@example.fr"},
    ]
    assert "phone" not in upcast and "email" not in upcast
    assert contact_v1_to_v2({**V1, "phone": None, "email": None})["channels"] == []
    PatientContactV2.model_validate(upcast)  # what it gives is a v2


def test_downcaster_contact_v2_to_v1() -> None:
    v2 = contact_v1_to_v2(V1)
    assert contact_v2_to_v1(v2) == V1
    assert PatientContact.model_validate(contact_v2_to_v1({**v2, "channels": []})).phone is None


def test_an_older_version_is_upcast_to_the_one_handled() -> None:
    with registered():
        contact = read_as("patient.contact", 1, V1, PatientContactV2, tolerant=True)
    assert [c.kind for c in contact.channels] == ["sms", "email"]
    with pytest.raises(UnreadableVersionError, match="no upcaster from v1"):
        read_as("patient.contact", 1, V1, PatientContactV2, tolerant=True)


def test_a_newer_version_is_read_as_the_known_one_only_if_it_validates_as_it() -> None:
    newer = {**V1, "channels": [], "language": "fr"}
    contact = read_as("patient.contact", 3, newer, PatientContact, tolerant=True)
    assert contact == PatientContact.model_validate(V1)
    lacking = {k: v for k, v in V1.items() if k != "first_name"}
    with pytest.raises(UnreadableVersionError) as raised:
        read_as("patient.contact", 3, lacking, PatientContact, tolerant=True)
    message = str(raised.value)
    assert "patient.contact v3 is newer than v1" in message and "first_name (missing)" in message
    assert "Ada" not in message and "Martin" not in message  # names, never values
    assert raised.value.code == "unreadable_version"


def test_tolerant_on_the_bus_strict_at_a_door() -> None:
    unknown = {**V1, "language": "fr", "referrer": None}
    envelope = Envelope(type="patient.contact", source="intake", correlation_id="r-1", data=unknown)
    assert envelope.payload_as(PatientContact, tolerant=True) == PatientContact.model_validate(V1)
    assert envelope.payload(tolerant=True) == PatientContact.model_validate(V1)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        envelope.payload_as(PatientContact)  # a door's: the model's own extra="forbid"
    with pytest.raises(ValidationError, match="extra_forbidden"):
        envelope.payload()
    # Required fields stay required on the bus.
    missing = Envelope(
        type="patient.contact", source="intake", correlation_id="r-1", data={"referral_id": "r"}
    )
    with pytest.raises(ValidationError, match="patient_ref"):
        missing.payload_as(PatientContact, tolerant=True)
    # The envelope as well: an unknown envelope field ignored on the bus, refused elsewhere.
    wire = envelope.model_dump_json()[:-1] + ', "trace": "t-1"}'
    assert Envelope.model_validate_json(wire, extra="ignore").data == unknown
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Envelope.model_validate_json(wire)


@pytest.fixture
def emit_versions() -> Iterator[None]:
    yield
    for service in ("intake", "notifier", "scheduler", "regulation"):
        set_emit_versions(service, {})


def test_a_service_emits_the_version_its_setting_names(emit_versions: None) -> None:
    v2 = PatientContactV2.model_validate(contact_v1_to_v2(V1))
    with registered():
        assert emitted_data(v2, "intake@0.3.0") == (
            2,
            v2.model_dump(mode="json", exclude_none=True),
        )
        set_emit_versions("intake", {"patient.contact": 1})
        version, data = emitted_data(v2, "intake@0.3.0")
        assert (version, data) == (1, V1 | {"corrected": False})
        assert Envelope.wrap(v2, source="intake@0.3.0", correlation_id="r-1").version == 1
        assert emitted_data(v2, "notifier")[0] == 2  # another service's setting is its own
        EMITTED_BY_DEFAULT["patient.contact"] = 1
        try:
            assert emitted_data(v2, "notifier")[0] == 1
        finally:
            del EMITTED_BY_DEFAULT["patient.contact"]
    with pytest.raises(ValueError, match=r"referral\.teleported: no such event type"):
        set_emit_versions("intake", {"referral.teleported": 1})
    with pytest.raises(ValueError, match="v2 is not between v1 and v1"):
        set_emit_versions("intake", {"slot.assigned": 2})


def test_the_setting_reads_type_equals_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGUILLAGE_EMIT_VERSIONS", "referral.regulated=1, slot.assigned=1")
    assert Settings().emit_versions == {"referral.regulated": 1, "slot.assigned": 1}
    monkeypatch.setenv("AIGUILLAGE_EMIT_VERSIONS", "referral.regulated")
    with pytest.raises(ValidationError, match="type=version"):
        Settings()


def test_optional_fields_left_out_while_none_required_ones_kept() -> None:
    contact = PatientContact.model_validate({**V1, "phone": None, "email": None})
    _, data = emitted_data(contact)
    assert "phone" not in data and "email" not in data and "referrer" not in data
    assert data["corrected"] is False  # a default other than None is written
    error = SubmissionError(
        reply_to="gp-1", source_message_id=None, error_code="invalid_payload", cause="x"
    )
    assert emitted_data(error)[1]["source_message_id"] is None  # required, though null
    assert Envelope.wrap(contact, source="intake", correlation_id="r-1").payload() == contact


# What the new code emits by default (only the required fields set), read by the last
# release's models, which refuse unknown fields.

PATTERNS = {
    r"^\d{5}$": "35238",
    r"^(\d{5}|2[AB]\d{3})$": "35238",
    r"^([01]\d|2[0-3]):[0-5]\d$": "08:00",
    r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$": "20:00",
    r"^[A-Za-z0-9_-]{1,64}$": "x1",
}
FORMATS = {"date": "2020-03-25", "date-time": "2020-03-25T10:00:00+00:00", "email": "a@b.fr"}


def minimal(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A value of ``schema`` with its required fields only (the first of each choice)."""
    if "$ref" in schema:
        return minimal(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return minimal(next(m for m in schema["anyOf"] if m.get("type") != "null"), defs)
    if "const" in schema or "enum" in schema:
        return schema["const"] if "const" in schema else schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        if "format" in schema:
            return FORMATS[schema["format"]]
        return (
            PATTERNS[schema["pattern"]] if "pattern" in schema else "x" * schema.get("minLength", 1)
        )
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "array":
        return [minimal(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: minimal(properties[name], defs) for name in schema.get("required", ())}
    return False if kind == "boolean" else "x"


@pytest.fixture(scope="module")
def release_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The last release's ``shared.events``, from git, as a package of its own."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the last release's models are read from git")
    version, commit = last_release()
    package = "release_" + version.replace(".", "_") + "_events"
    folder = tmp_path_factory.mktemp("release") / package
    folder.mkdir()
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", commit, "shared/events/"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0 and listed.stdout, (
        f"git cannot list shared/events at release {version}'s commit {commit}: a clone "
        f"without its history? (git fetch --unshallow) {listed.stderr.strip()}"
    )
    for path in listed.stdout.split():
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / Path(path).name).write_text(text.replace("shared.events", package))
    sys.path.insert(0, str(folder.parent))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(folder.parent))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("cls", CATALOGUE, ids=lambda c: f"{c.event_type}-v{c.version}")
def test_the_last_release_reads_what_the_new_code_emits(
    cls: Any, release_events: ModuleType
) -> None:
    try:
        old = release_events.payload_class(cls.event_type, cls.version)
    except release_events.UnknownEventError:
        pytest.skip(f"{cls.event_type} v{cls.version} is new since the last release")
    schema = cls.model_json_schema()
    payload = cls.model_validate(minimal(schema, schema.get("$defs", {})))
    envelope = Envelope.wrap(payload, source="intake@0.3.0", correlation_id="r-1")
    old.model_validate(envelope.data)  # extra="forbid": an unknown key would fail here
    wire = envelope.model_dump_json()
    release_events.Envelope.model_validate_json(wire).payload()
    assert payload_class(cls.event_type, cls.version) is cls
