"""Validation against the hub's own JSON schemas (copied in ``schemas/``, Apache 2.0,
see ``schemas/LICENSE_HEADER.txt``).

Every schema file carries the same ``$id``, so each is registered under its file name
(how the ``$ref``s name them) rather than trusted to its ``$id``.

Patterns run on RE2, in time linear in the text: on Python's backtracking ``re`` the
hub's own caseId pattern ``^([a-zA-Z0-9_-]+\\.?){4,10}$`` took 1.8 s on 30 letters and
a ``!``, doubling every 2, and one such message stalled the door. A pattern RE2 cannot
express (a backreference, a lookaround) would run on ``regex`` with a timeout instead
(``fallback_patterns`` names them: none of the hub's schemas has one today).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from typing import Any

import re2
import regex
from jsonschema import Draft7Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

FULL = "EDXL-DE-full.schema.json"
# A fallback pattern's bound on one string: past it the string does not match.
FALLBACK_SECONDS = 0.05
QUOTED = 100


@cache
def matcher(pattern: str) -> Callable[[str], bool]:
    """``pattern`` as JSON Schema reads it (a search, not anchored unless it says so)."""
    try:
        program = re2.compile(pattern)
    except re2.error:
        fallback = regex.compile(pattern)

        def bounded(text: str) -> bool:
            try:
                return fallback.search(text, timeout=FALLBACK_SECONDS) is not None
            except TimeoutError:
                return False  # too costly to tell: refused, as a mismatch

        return bounded
    return lambda text: program.search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's own ``pattern`` keyword, on ``matcher``; the message quotes at most
    ``QUOTED`` characters of the text (the cause goes back with the message anyway)."""
    if validator.is_type(instance, "string") and not matcher(pattern)(instance):
        shown = instance if len(instance) <= QUOTED else instance[:QUOTED] + "…"
        yield ValidationError(f"{shown!r} does not match {pattern!r}")


HubValidator = validators.extend(Draft7Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]


def patterns() -> set[str]:
    """Every ``pattern`` in the hub's schemas (all files: the whole message names them)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for uri in _registry():
        walk(_registry().contents(uri))
    return found


def fallback_patterns() -> list[str]:
    """The hub's patterns RE2 cannot express, which run on the bounded fallback."""
    found = []
    for pattern in sorted(patterns()):
        try:
            re2.compile(pattern)
        except re2.error:
            found.append(pattern)
    return found


@cache
def _registry() -> Registry[Any]:
    folder = resources.files(__package__).joinpath("schemas")
    resources_by_name: list[tuple[str, Resource[Any]]] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".schema.json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            document.pop("$id", None)  # one shared $id: the file name is the identity
            # Without it, a $ref'd file is validated by our validator (RE2's patterns):
            # jsonschema picks the validator a subschema's own $schema names.
            document.pop("$schema", None)
            resources_by_name.append((entry.name, DRAFT7.create_resource(document)))
    return Registry().with_resources(resources_by_name)


@cache
def validator(name: str = FULL) -> Any:
    schema = _registry().contents(name)
    return HubValidator(schema, registry=_registry(), format_checker=None)


def errors(message: Any, name: str = FULL) -> list[str]:
    """Every error of a message, as ``$.path: message`` lines (the hub's manner); a
    oneOf's error names every error of the branch for the use case the message carries."""
    found: list[str] = []
    for error in sorted(validator(name).iter_errors(message), key=lambda e: list(e.path)):
        found.extend(_lines(error))
    return found


def _where(error: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _lines(error: Any) -> list[str]:
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Each branch is a use case: the one the message carries got furthest (its
        # errors lie deepest); the others only say their own use case is missing. Every
        # error of that branch is named, at whatever depth (not its deepest only).
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        carried = _carried_branches(error)
        if carried:  # the branches of the use case(s) the message carries
            branches = {key: subs for key, subs in branches.items() if key in carried}
        depth = {
            key: max(len(list(e.absolute_path)) for e in subs) for key, subs in branches.items()
        }
        deepest = max(depth.values())
        lines: list[str] = []
        for key, subs in branches.items():
            if depth[key] == deepest:
                for sub in sorted(subs, key=lambda e: [str(p) for p in e.absolute_path]):
                    lines.extend(line for line in _lines(sub) if line not in lines)
        return lines or [f"{_where(error)}: {error.message}"]
    return [f"{_where(error)}: {error.message}"]


def _use_case_keys(branch: Any) -> set[str]:
    """The use case a branch of the hub's content oneOf stands for: the keys it requires
    of ``message`` (``createCaseHealth``...), beside the RC-DE header it refers to."""
    parts = branch.get("allOf", [branch]) if isinstance(branch, dict) else []
    keys: set[str] = set()
    for part in parts:
        message = (part.get("properties") or {}).get("message") if isinstance(part, dict) else None
        if isinstance(message, dict):
            keys.update(k for k in message.get("required", []) if isinstance(k, str))
    return keys


def _carried_branches(error: Any) -> set[int]:
    """The oneOf's branches whose use case the message carries, so that a header error
    is named once rather than beside every other use case's "is a required property";
    empty when no branch's use case is there (then every branch speaks)."""
    message = error.instance.get("message") if isinstance(error.instance, dict) else None
    if not isinstance(error.validator_value, list) or not isinstance(message, dict):
        return set()
    return {
        index
        for index, branch in enumerate(error.validator_value)
        if (keys := _use_case_keys(branch)) and keys <= message.keys()
    }


# The hub's bounds on what goes back (RS-ERROR's errorCause, within a message the hub
# takes): so many lines at most, each cut, the rest counted on a last line.
MAX_CAUSE_LINES = 50
MAX_LINE_CHARS = 300


def cause(problems: list[str]) -> str:
    """RS-ERROR 300's errorCause: every schema error, one per line (path and message),
    within ``MAX_CAUSE_LINES`` lines of ``MAX_LINE_CHARS`` characters."""
    shown = [
        p if len(p) <= MAX_LINE_CHARS else p[: MAX_LINE_CHARS - 1] + "…"
        for p in problems[:MAX_CAUSE_LINES]
    ]
    if len(problems) > MAX_CAUSE_LINES:
        shown.append(f"… et {len(problems) - MAX_CAUSE_LINES} autres erreurs")
    count = f"{len(problems)} erreur" + ("s" if len(problems) > 1 else "")
    return "\n".join([f"Could not validate message against schema: {count}", *shown])
