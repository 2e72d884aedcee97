"""Is this code's AsyncAPI document compatible with the last release's?

Services are upgraded one at a time (docs/architecture/contracts.md): for a while a
release's readers take what the next one writes, and the reverse. An event version, once
released, may only change so that both still read each other; anything else is a new
version of the event (with its upcaster). This check compares the JSON Schemas of every
(type, version) of the document generated from the code with those of the last release's
document, read from git at the release's commit (``CHANGELOG.md``), and names each
breaking change: the event, the field and the rule.

The rules (a released version's schema, old → new):

- ``event removed``: a released (type, version) is no longer in the catalogue;
- ``field removed``: a property is gone (its readers, or its older writers, need it);
- ``field made required``: a property the release did not require is required now (an
  older writer leaves it out), a new required property included;
- ``new field without a null default``: a new optional property whose default is not
  null (the producers leave a None out, ``shared.events.versions.omitted_none``: only
  then does the release's ``extra="forbid"`` reader take what the new code emits);
- ``type changed``: a JSON type the release allowed is no longer allowed;
- ``enum value removed``: a value the release allowed is no longer allowed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = "docs/asyncapi.yaml"
RELEASE_0_2_0 = ("0.2.0", "9ce97fb")
"""The release before CHANGELOG.md existed: read directly while no changelog names one."""

Schema = Mapping[str, Any]


class ReleaseUnavailable(RuntimeError):
    """The last release's document cannot be read (no git, or a clone without history)."""


@dataclass(frozen=True, slots=True)
class Breach:
    event_type: str
    version: int
    field: str
    rule: str

    def __str__(self) -> str:
        return (
            f"{self.event_type} v{self.version}: {self.field}: {self.rule} "
            "(a breaking change needs a new version of the event)"
        )


def last_release(root: Path = ROOT) -> tuple[str, str]:
    """(version, commit) of the newest release ``CHANGELOG.md`` names a commit for;
    0.2.0 (9ce97fb) while there is no changelog or it names none."""
    changelog = root / "CHANGELOG.md"
    if not changelog.exists():
        return RELEASE_0_2_0
    from shared.release import releases

    for release in releases(changelog.read_text(encoding="utf-8")):
        if release.commit is not None:
            return release.version, release.commit
    return RELEASE_0_2_0


def release_document(commit: str, root: Path = ROOT) -> dict[str, Any]:
    """The AsyncAPI document at ``commit``, from git."""
    git = shutil.which("git")
    if git is None:
        raise ReleaseUnavailable("git is not installed: the last release's document is in git")
    shown = subprocess.run(
        [git, "-C", str(root), "show", f"{commit}:{DOCUMENT}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        raise ReleaseUnavailable(
            f"git cannot show {DOCUMENT} at the release's commit {commit} (a clone without "
            f"that history? fetch it: git fetch --unshallow): {shown.stderr.strip()[:300]}"
        )
    document: dict[str, Any] = yaml.safe_load(shown.stdout)
    return document


def current_document() -> dict[str, Any]:
    """The AsyncAPI document generated from this code."""
    from aiguillage.asyncapi import render

    document: dict[str, Any] = yaml.safe_load(render())
    return document


def event_schemas(document: Schema) -> dict[tuple[str, int], Schema]:
    """Each (type, version)'s envelope schema: the components whose ``type`` and
    ``version`` are constants."""
    found: dict[tuple[str, int], Schema] = {}
    for schema in document.get("components", {}).get("schemas", {}).values():
        properties = schema.get("properties", {})
        event_type = properties.get("type", {}).get("const")
        version = properties.get("version", {}).get("const")
        if isinstance(event_type, str) and isinstance(version, int):
            found[(event_type, version)] = schema
    return found


class _Compare:
    """One event's old and new schemas, each resolved against its own document."""

    def __init__(self, old_doc: Schema, new_doc: Schema) -> None:
        self.old_doc, self.new_doc = old_doc, new_doc
        self.seen: set[tuple[str, int, int]] = set()

    @staticmethod
    def _resolve(document: Schema, schema: Schema) -> Schema:
        for _ in range(20):  # a chain of references, never a loop
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part]
            schema = target
        return schema

    def _members(self, document: Schema, schema: Schema) -> list[Schema]:
        schema = self._resolve(document, schema)
        union = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(union, list):
            return [m for s in union for m in self._members(document, s)]
        return [schema]

    def _types(self, document: Schema, schema: Schema) -> set[str]:
        types: set[str] = set()
        for member in self._members(document, schema):
            kind = member.get("type")
            if isinstance(kind, list):
                types.update(kind)
            elif isinstance(kind, str):
                types.add(kind)
            elif "properties" in member:
                types.add("object")
            else:
                types.add("any")  # no type: anything
        return types

    def _values(self, document: Schema, schema: Schema) -> set[Any] | None:
        """The values an enum (or const) allows; None when any value of its type is."""
        values: set[Any] = set()
        for member in self._members(document, schema):
            if "enum" in member:
                values.update(member["enum"])
            elif "const" in member:
                values.add(member["const"])
            elif member.get("type") != "null":
                return None
        return values

    def _object(self, document: Schema, schema: Schema) -> Schema | None:
        objects = [m for m in self._members(document, schema) if "properties" in m]
        return objects[0] if len(objects) == 1 else None

    def _array_items(self, document: Schema, schema: Schema) -> Schema | None:
        arrays = [m for m in self._members(document, schema) if m.get("type") == "array"]
        if len(arrays) == 1 and isinstance(arrays[0].get("items"), Mapping):
            items: Schema = arrays[0]["items"]
            return items
        return None

    def value(self, old: Schema, new: Schema, path: str) -> Iterator[tuple[str, str]]:
        """(field, rule) for each breaking change from ``old`` to ``new``."""
        key = (path, id(old), id(new))
        if key in self.seen:
            return
        self.seen.add(key)
        new_types = self._types(self.new_doc, new)
        lost = self._types(self.old_doc, old) - new_types
        if "number" in new_types:
            lost.discard("integer")  # every integer is a number
        if lost and "any" not in new_types:
            yield path, f"type changed (no longer {', '.join(sorted(lost))})"
            return
        old_values = self._values(self.old_doc, old)
        new_values = self._values(self.new_doc, new)
        if old_values is not None and new_values is not None and old_values - new_values:
            removed = ", ".join(sorted(map(str, old_values - new_values)))
            yield path, f"enum value removed ({removed})"
        old_object, new_object = self._object(self.old_doc, old), self._object(self.new_doc, new)
        if old_object is not None and new_object is not None:
            yield from self.properties(old_object, new_object, path)
        old_items = self._array_items(self.old_doc, old)
        new_items = self._array_items(self.new_doc, new)
        if old_items is not None and new_items is not None:
            yield from self.value(old_items, new_items, f"{path}[]")

    def properties(self, old: Schema, new: Schema, path: str) -> Iterator[tuple[str, str]]:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        prefix = f"{path}." if path else ""
        for name, schema in old_props.items():
            if name not in new_props:
                yield f"{prefix}{name}", "field removed"
            else:
                yield from self.value(schema, new_props[name], f"{prefix}{name}")
        for name in sorted(new_required - old_required):
            yield f"{prefix}{name}", "field made required"
        for name in sorted(set(new_props) - set(old_props) - new_required):
            if new_props[name].get("default", "no default") is not None:
                yield f"{prefix}{name}", "new field without a null default"


def breaking_changes(old_doc: Schema, new_doc: Schema) -> list[Breach]:
    """Every breaking change from the release's document to the new one, by event."""
    breaches: list[Breach] = []
    new_events = event_schemas(new_doc)
    for (event_type, version), old in sorted(event_schemas(old_doc).items()):
        new = new_events.get((event_type, version))
        if new is None:
            breaches.append(Breach(event_type, version, "-", "event removed"))
            continue
        compare = _Compare(old_doc, new_doc)
        for field, rule in compare.properties(old, new, ""):
            breaches.append(Breach(event_type, version, field, rule))
    return breaches


def check(root: Path = ROOT) -> tuple[str, list[Breach]]:
    """The last release's version, and what this code breaks of its contracts."""
    version, commit = last_release(root)
    return version, breaking_changes(release_document(commit, root), current_document())
