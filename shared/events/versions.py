"""How an event crosses versions: read tolerantly, upcast, downcast, and what is emitted.

Services are upgraded one at a time (docs/architecture/contracts.md), so for a while a
service reads what an older or a newer one writes, and writes for older readers:

- **Tolerant on the bus**: a consumer reading another service's event ignores the fields
  it does not know (``extra="ignore"`` at validation); required fields stay required.
  The doors, where outsiders publish, stay strict (the models' own ``extra="forbid"``):
  an outsider's unknown field is a mistake, answered with its error.
- **Upcasters**: a consumer handles one version of each event (the class its table of
  routes names); an older version is converted to it by small pure functions, one per
  step, ``(type, from_version) -> data of from_version + 1``, kept beside the model.
- **A newer version** than the one handled is read as the known one when it validates
  as it (tolerantly on the bus); otherwise it is dead-lettered, ``unreadable_version``.
- **Downcasters and the emitted version**: a producer builds the newest model, and emits
  the version ``AIGUILLAGE_EMIT_VERSIONS`` names for its type (default: the newest, or
  ``EMITTED_BY_DEFAULT``), converted by downcasters ``(type, from_version) -> data of
  from_version - 1``: producers upgrade first and switch once their consumers have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from shared.events.base import EventPayload
from shared.events.registry import UnknownEventError

P = TypeVar("P", bound=EventPayload)

Converter = Callable[[Mapping[str, Any]], dict[str, Any]]
"""A pure function from one version's ``data`` to the next (or previous) one's."""

UPCASTERS: dict[tuple[str, int], Converter] = {}
"""``(type, from_version)`` → the function giving the ``from_version + 1`` data."""

DOWNCASTERS: dict[tuple[str, int], Converter] = {}
"""``(type, from_version)`` → the function giving the ``from_version - 1`` data."""

EMITTED_BY_DEFAULT: dict[str, int] = {}
"""The version emitted of a type when ``AIGUILLAGE_EMIT_VERSIONS`` does not say: the
release that introduces a v2 keeps emitting v1 here (its consumers may be older), and the
next release removes the line. Empty: every type is emitted at its model's version."""

# By publisher (the service's name, as in an envelope's ``source`` before its ``@``):
# each service is its own process in a deployment, and the tests run several in one.
_emit_versions: dict[str, dict[str, int]] = {}


class UnreadableVersionError(UnknownEventError):
    """A version of an event this service cannot read as the one it handles: dead-lettered
    with the reason (``code``), never retried."""

    code = "unreadable_version"


def upcaster(event_type: str, from_version: int) -> Callable[[Converter], Converter]:
    """Register the decorated function as the upcaster of ``event_type`` from
    ``from_version`` to ``from_version + 1``."""

    def register(fn: Converter) -> Converter:
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def downcaster(event_type: str, from_version: int) -> Callable[[Converter], Converter]:
    """Register the decorated function as the downcaster of ``event_type`` from
    ``from_version`` to ``from_version - 1``."""

    def register(fn: Converter) -> Converter:
        DOWNCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def convert(event_type: str, data: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """``data`` of version ``start`` as version ``end``, one step at a time."""
    converted = dict(data)
    step, table = (1, UPCASTERS) if end > start else (-1, DOWNCASTERS)
    for version in range(start, end, step):
        fn = table.get((event_type, version))
        if fn is None:
            way = "upcaster" if step == 1 else "downcaster"
            raise UnreadableVersionError(
                f"{event_type} v{start} cannot become v{end}: no {way} from v{version}"
            )
        converted = fn(converted)
    return converted


def _fields(exc: ValidationError) -> str:
    # Field names and error kinds only: never a value of the message (dead-letter headers).
    return ", ".join(
        sorted({f"{'.'.join(str(p) for p in e['loc']) or '-'} ({e['type']})" for e in exc.errors()})
    )


def read_as(
    event_type: str, version: int, data: Mapping[str, Any], cls: type[P], *, tolerant: bool
) -> P:
    """``data`` of ``event_type`` at ``version`` as ``cls`` (the version this consumer
    handles): upcast when older, read as it when newer if it validates as it.

    ``tolerant``: unknown fields are ignored (the bus); strict otherwise (a door)."""
    if event_type != cls.event_type:
        raise ValueError(f"expected {cls.event_type} v{cls.version}, got {event_type} v{version}")
    extra: Literal["ignore"] | None = "ignore" if tolerant else None  # None: forbid, its own
    if version < cls.version:
        return cls.model_validate(convert(event_type, data, version, cls.version), extra=extra)
    if version == cls.version:
        return cls.model_validate(data, extra=extra)
    try:
        return cls.model_validate(data, extra=extra)
    except ValidationError as exc:
        raise UnreadableVersionError(
            f"{event_type} v{version} is newer than v{cls.version}, the version this "
            f"service reads, and does not read as it: {_fields(exc)}"
        ) from None


def set_emit_versions(publisher: str, versions: Mapping[str, int]) -> None:
    """The version ``publisher`` (a service) emits of each type named
    (``AIGUILLAGE_EMIT_VERSIONS``, read by the service's runtime as it is built).

    Raises ValueError when a type is unknown or a version cannot be reached from its
    newest model (no downcaster), so that the service refuses to start."""
    from shared.events.registry import CATALOGUE

    newest: dict[str, int] = {}
    for cls in CATALOGUE:
        newest[cls.event_type] = max(cls.version, newest.get(cls.event_type, 0))
    problems = []
    for event_type, version in versions.items():
        if event_type not in newest:
            problems.append(f"{event_type}: no such event type")
        elif version < 1 or version > newest[event_type]:
            problems.append(f"{event_type}: v{version} is not between v1 and v{newest[event_type]}")
        elif any(
            (event_type, v) not in DOWNCASTERS for v in range(newest[event_type], version, -1)
        ):
            problems.append(f"{event_type}: no downcaster from v{newest[event_type]} to v{version}")
    if problems:
        raise ValueError("AIGUILLAGE_EMIT_VERSIONS: " + "; ".join(problems))
    _emit_versions[publisher] = dict(versions)


def emitted_version(event_type: str, version: int, source: str = "") -> int:
    """The version ``source`` emits of a payload built at ``version``: the one set for
    its type (never above the model's), else ``EMITTED_BY_DEFAULT``'s, else its own."""
    chosen = _emit_versions.get(source.split("@", 1)[0], {})
    wanted = chosen.get(event_type, EMITTED_BY_DEFAULT.get(event_type, version))
    return min(wanted, version)


def omitted_none(model: BaseModel) -> dict[Any, Any]:
    """The ``exclude`` of ``model_dump`` that leaves out every optional field (default
    None) whose value is None, at every level.

    Why: the readers of the previous release have ``extra="forbid"`` (0.2.0's), and so
    may the readers of an outsider. A field added to a version after its release is
    optional with default None (the compatibility check holds it: aiguillage/compat.py);
    left out while None, an older reader reads what the new code emits by default, and
    for every reader an absent optional field and a null one are the same value. A
    required field, even one that may be null, is always written."""
    spec: dict[Any, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            if not field.is_required() and field.default is None:
                spec[name] = True
        elif isinstance(value, BaseModel):
            if inner := omitted_none(value):
                spec[name] = inner
        elif isinstance(value, list | tuple):
            items = {
                i: inner
                for i, item in enumerate(value)
                if isinstance(item, BaseModel) and (inner := omitted_none(item))
            }
            if items:
                spec[name] = items
    return spec


def emitted_data(payload: EventPayload, source: str = "") -> tuple[int, dict[str, Any]]:
    """The version and the ``data`` of ``payload`` in an envelope ``source`` publishes."""
    data = payload.model_dump(mode="json", exclude=omitted_none(payload) or None)
    version = emitted_version(payload.event_type, payload.version, source)
    if version < payload.version:
        data = convert(payload.event_type, data, payload.version, version)
    return version, data
