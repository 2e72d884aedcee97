"""Validation against the hub's own JSON schemas (copied in ``schemas/``, Apache 2.0,
see ``schemas/LICENSE_HEADER.txt``).

Every schema file carries the same ``$id``, so each is registered under its file name
(how the ``$ref``s name them) rather than trusted to its ``$id``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

FULL = "EDXL-DE-full.schema.json"


@cache
def _registry() -> Registry[Any]:
    folder = resources.files(__package__).joinpath("schemas")
    resources_by_name: list[tuple[str, Resource[Any]]] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".schema.json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            document.pop("$id", None)  # one shared $id: the file name is the identity
            resources_by_name.append((entry.name, DRAFT7.create_resource(document)))
    return Registry().with_resources(resources_by_name)


@cache
def validator(name: str = FULL) -> Draft7Validator:
    schema = _registry().contents(name)
    return Draft7Validator(schema, registry=_registry(), format_checker=None)


def errors(message: Any, name: str = FULL) -> list[str]:
    """Every error of a message, as ``$.path: message`` lines (the hub's manner); a
    oneOf's error names the branch's own errors for the use case the message carries."""
    found: list[str] = []
    for error in sorted(validator(name).iter_errors(message), key=lambda e: list(e.path)):
        found.extend(_lines(error))
    return found


def _lines(error: Any) -> list[str]:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
    if error.validator == "oneOf" and error.context:
        # Only the branches about the use case the message carries say something useful.
        deepest = max(len(list(e.absolute_path)) for e in error.context)
        inner = [e for e in error.context if len(list(e.absolute_path)) == deepest]
        lines = []
        for sub in inner:
            sub_path = "$" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in sub.absolute_path
            )
            lines.append(f"{sub_path}: {sub.message}")
        return sorted(set(lines)) or [f"{path}: {error.message}"]
    return [f"{path}: {error.message}"]
