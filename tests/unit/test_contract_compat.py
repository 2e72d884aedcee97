"""The compatibility check of the contracts (aiguillage/compat.py): this code's AsyncAPI
document against the last release's, read from git at the commit CHANGELOG.md names.

It passes on the current tree, and fails, naming the event, the field and the rule, on a
copy of the document where a released event lost a field (and on each other rule).
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiguillage.compat import (
    RELEASE_0_2_0,
    ReleaseUnavailable,
    breaking_changes,
    current_document,
    last_release,
    release_document,
)

Document = dict[str, Any]


@pytest.fixture(scope="module")
def release() -> Document:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the last release's AsyncAPI document is read from git")
    version, commit = last_release()
    try:
        return release_document(commit)
    except ReleaseUnavailable as exc:  # a clone without history: said, not skipped
        pytest.fail(f"release {version}: {exc}")


@pytest.fixture(scope="module")
def current() -> Document:
    return current_document()


def test_the_current_tree_breaks_no_released_contract(release: Document, current: Document) -> None:
    breaches = breaking_changes(release, current)
    assert breaches == [], "\n".join(map(str, breaches))


def test_a_field_removed_from_a_released_event_fails(release: Document, current: Document) -> None:
    changed = copy.deepcopy(current)
    del changed["components"]["schemas"]["SlotAssigned"]["properties"]["centre_name"]
    changed["components"]["schemas"]["SlotAssigned"]["required"].remove("centre_name")
    [breach] = breaking_changes(release, changed)
    assert (breach.event_type, breach.version, breach.field, breach.rule) == (
        "slot.assigned",
        1,
        "data.centre_name",
        "field removed",
    )
    assert str(breach).startswith("slot.assigned v1: data.centre_name: field removed")


def _schemas(document: Document) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def _made_required(d: Document) -> None:
    _schemas(d)["SlotAssigned"]["required"].append("centre_address")


def _type_changed(d: Document) -> None:
    _schemas(d)["SlotAssigned"]["properties"]["box"] = {"type": "string"}


def _enum_value_removed(d: Document) -> None:
    _schemas(d)["Decision"]["enum"].remove("hold")


def _event_removed(d: Document) -> None:
    del _schemas(d)["SlotAssignedV1"]


def _new_field_with_a_default(d: Document) -> None:
    _schemas(d)["SlotAssigned"]["properties"]["floor"] = {"type": "integer", "default": 0}


def _envelope_field_removed(d: Document) -> None:
    del _schemas(d)["SlotAssignedV1"]["properties"]["causation_id"]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (_made_required, "data.centre_address", "field made required"),
        (_type_changed, "data.box", "type changed (no longer integer)"),
        (_new_field_with_a_default, "data.floor", "new field without a null default"),
        (_envelope_field_removed, "causation_id", "field removed"),
        (_event_removed, "-", "event removed"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_each_rule_names_the_event_and_the_field(
    release: Document,
    current: Document,
    change: Callable[[Document], None],
    field: str,
    rule: str,
) -> None:
    changed = copy.deepcopy(current)
    change(changed)
    found = {(b.event_type, b.field, b.rule) for b in breaking_changes(release, changed)}
    assert ("slot.assigned", field, rule) in found


def test_an_enum_value_removed_fails_for_every_event_that_carries_it(
    release: Document, current: Document
) -> None:
    changed = copy.deepcopy(current)
    _enum_value_removed(changed)
    breaches = breaking_changes(release, changed)
    assert {b.rule for b in breaches} == {"enum value removed (hold)"}
    assert ("referral.regulated", "data.decision") in {(b.event_type, b.field) for b in breaches}


def test_what_stays_compatible(release: Document, current: Document) -> None:
    changed = copy.deepcopy(current)
    schemas = _schemas(changed)
    # A new optional field with a null default, a new enum value, a new version.
    schemas["SlotAssigned"]["properties"]["floor"] = {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "default": None,
    }
    schemas["Decision"]["enum"].append("teleconsult")
    schemas["SlotAssignedV2"] = copy.deepcopy(schemas["SlotAssignedV1"])
    schemas["SlotAssignedV2"]["properties"]["version"]["const"] = 2
    assert breaking_changes(release, changed) == []


def test_the_last_release_is_read_from_the_changelog(tmp_path: Path) -> None:
    assert last_release(tmp_path) == RELEASE_0_2_0  # no changelog yet: 0.2.0 read directly
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [0.4.0] - Unreleased — commit: <to be written at release>\n\n"
        "## [0.3.0] - 2026-12-09 — commit: 1a2b3c4d\n\n## [0.2.0] - 2026-12-07 — commit: 9ce97fb\n"
    )
    assert last_release(tmp_path) == ("0.3.0", "1a2b3c4d")
    changelog = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
    if changelog.exists():  # this repository's: a release it names, with its commit
        version, commit = last_release()
        assert f"[{version}]" in changelog.read_text() and commit in changelog.read_text()


def test_a_commit_git_does_not_have_is_said_clearly() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    with pytest.raises(ReleaseUnavailable, match="git fetch --unshallow"):
        release_document("0123456789abcdef0123456789abcdef01234567")
