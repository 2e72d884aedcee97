"""The documentation's reference pages, rendered from what the code says at each build.

The site's hook (``docs/hooks/reference.py``, run by ``mkdocs build``) writes two pages
from these functions: the events from ``docs/asyncapi.yaml`` (itself generated from
``shared/events`` by ``make asyncapi``, and checked by a test), and the HTTP routes from
each service's OpenAPI and the console's routes. Neither page is kept in the
repository, so neither can go stale.
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

Schema = dict[str, Any]

GENERATED = (
    '!!! note "Generated"\n'
    "    This page is rendered at each build of the site (`docs/hooks/reference.py`,\n"
    "    `aiguillage/reference.py`) from {source}: it says what the code says.\n"
)


def _cell(text: object) -> str:
    """One table cell: one line, no column separator."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: Schema) -> str:
    """A schema's type in a few words, with links to the named schemas it uses."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "const" in schema:
        return (
            f'`"{schema["const"]}"`'
            if isinstance(schema["const"], str)
            else (f"`{schema['const']}`")
        )
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(_type(part) for part in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return "list of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map of " + _type(schema["additionalProperties"])
    if kind is None:
        return "any"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind)


def _constraints(schema: Schema) -> list[str]:
    found: list[str] = []
    parts = [schema, *schema.get("anyOf", [])]
    for part in parts:
        for key, word in (
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
        ):
            if key in part:
                found.append(f"{word} {part[key]}")
        if "pattern" in part:
            found.append(f"pattern `{part['pattern']}`")
    if "default" in schema and schema["default"] not in (None, [], {}):
        default = schema["default"]
        if not isinstance(default, dict):
            found.append(f"default `{default}`")
    return found


def _fields(schema: Schema) -> list[str]:
    """The table of an object's fields."""
    properties: dict[str, Schema] = schema.get("properties", {})
    if not properties:
        return ["No field."]
    required = set(schema.get("required", []))
    rows = [
        "| field | type | required | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in properties.items():
        constraints = ", ".join(_constraints(field))
        said = (field.get("description", ""), constraints and f"*{constraints}*")
        meaning = " ".join(part for part in said if part)
        rows.append(
            f"| `{name}` | {_cell(_type(field))} | {'yes' if name in required else ''} | "
            f"{_cell(meaning)} |"
        )
    return rows


def _uses(schema: object) -> Iterator[str]:
    """The named schemas a schema refers to (not those they refer to in turn)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield _ref_name(schema["$ref"])
        for value in schema.values():
            yield from _uses(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _uses(item)


def _producer(channel_key: str) -> str:
    who = channel_key.split(":", 1)[0]
    return {
        "ars": "the ARS",
        "centre_15": "Centre 15",
        "centres": "a centre",
        "referrers": "a referrer",
    }.get(who, who)


def events_page(document: Schema) -> str:
    """The events reference, from the AsyncAPI document."""
    schemas: dict[str, Schema] = document["components"]["schemas"]
    channels: dict[str, Schema] = document["channels"]
    lines = [
        "# Events",
        "",
        GENERATED.format(source="`docs/asyncapi.yaml`"),
        document["info"].get("description", ""),
        "",
        "Where they flow: [the topology](../architecture/topology.md); who may publish",
        "what: [broker provisioning](../operations/broker.md); what becomes of a referral",
        "with each: [a referral's status](../architecture/states.md).",
        "",
    ]
    envelopes = {key: _envelope_of(document, c) for key, c in channels.items()}
    published = {key: c for key, c in channels.items() if envelopes[key] is not None}
    queues = {key: c for key, c in channels.items() if key not in published}
    first = next((envelopes[key] for key in published), None)
    if first is not None:
        lines += _envelope_section(first)
    payloads, by_exchange = _messages(published, envelopes)
    lines += _messages_section(by_exchange)
    lines += _queues_section(queues)
    seen = sorted(payloads)
    lines += _payloads_section(schemas, payloads)
    lines += _types_section(schemas, seen)
    return "\n".join(lines)


def _envelope_of(document: Schema, channel: Schema) -> Schema | None:
    """A channel's envelope, if its messages are published ones (with a ``data``)."""
    schemas: dict[str, Schema] = document["components"]["schemas"]
    messages: dict[str, Schema] = document["components"]["messages"]
    message = next(iter(channel["messages"].values()))
    payload = messages[_ref_name(message["$ref"])]["payload"]
    envelope = schemas[_ref_name(payload["$ref"])]
    return envelope if "data" in envelope.get("properties", {}) else None


def _envelope_section(first: Schema) -> list[str]:
    envelope = {
        **first,
        "properties": {
            name: {"description": "The payload: see each message below."}
            if name == "data"
            else field
            for name, field in first["properties"].items()
            if name not in {"type", "version"}
        },
    }
    return [
        "## The envelope",
        "",
        "Every message is one envelope, its payload under `data`; `type` is the event's",
        "type and `version` its version (a constant per model).",
        "",
        *_fields(envelope),
        "",
    ]


def _messages(
    published: dict[str, Schema], envelopes: dict[str, Schema | None]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Where each payload is published, and each exchange's table rows."""
    payloads: dict[str, list[str]] = {}
    by_exchange: dict[str, list[str]] = {}
    for key, channel in published.items():
        envelope_schema = envelopes[key]
        assert envelope_schema is not None
        data = _ref_name(envelope_schema["properties"]["data"]["$ref"])
        version = envelope_schema["properties"].get("version", {}).get("const", "")
        exchange = channel["bindings"]["amqp"].get("exchange", {}).get("name", "")
        description = channel.get("description", "").split("\n\n")[0]
        row = (
            f"| `{channel['address']}` | {_cell(_producer(key))} | "
            f"[{data}](#{_anchor(data)}) v{version} | {_cell(description)} |"
        )
        by_exchange.setdefault(exchange, []).append(row)
        payloads.setdefault(data, []).append(f"`{channel['address']}` ({_producer(key)})")
    return payloads, by_exchange


def _messages_section(by_exchange: dict[str, list[str]]) -> list[str]:
    lines = ["## Messages", ""]
    lines += [
        "Names are shown in the default namespace, `aiguillage` (`AIGUILLAGE_NAMESPACE`,",
        "the `<ns>` of the other pages).",
        "",
    ]
    for exchange, rows in sorted(by_exchange.items(), key=lambda i: not i[0].endswith(".ingress")):
        outside = exchange.endswith(".ingress")
        lines += [
            f"### On `{exchange}`",
            "",
            "Published by outside actors (a referrer: Centre 15, a GP, SOS Médecins, an"
            " emergency department); each message is checked against its sender by the"
            " service whose door it is."
            if outside
            else "Published by the services only; `{…}` parts of a routing key are the"
            " centre, the département, the decision or the reply key.",
            "",
            "| routing key | published by | payload | what it says |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
        ]
    return lines


def _queues_section(queues: dict[str, Schema]) -> list[str]:
    lines = [
        "## The services' queues",
        "",
        "| queue | what it takes |",
        "| --- | --- |",
    ]
    for channel in queues.values():
        lines.append(f"| `{channel['address']}` | {_cell(channel.get('description', ''))} |")
    lines.append("")
    return lines


def _payloads_section(schemas: dict[str, Schema], payloads: dict[str, list[str]]) -> list[str]:
    """Every payload, once each."""
    lines = ["## Payloads", ""]
    for name in sorted(payloads):
        schema = schemas[name]
        lines += [
            f"### {name} {{#{_anchor(name)}}}",
            "",
            inspect.cleandoc(schema.get("description", "")),
            "",
            "Routing keys: " + ", ".join(sorted(set(payloads[name]))) + ".",
            "",
            *_fields(schema),
            "",
        ]
    return lines


def _types_section(schemas: dict[str, Schema], seen: list[str]) -> list[str]:
    """Every type the payloads ``seen`` use (transitively), once each."""
    types: list[str] = []
    queue = [used for name in seen for used in _uses(schemas[name])]
    while queue:
        name = queue.pop(0)
        if name in seen or name in types:
            continue
        types.append(name)
        queue += list(_uses(schemas[name]))
    lines = ["## Types", ""]
    for name in sorted(types):
        schema = schemas[name]
        lines += [f"### {name} {{#{_anchor(name)}}}", ""]
        if schema.get("description"):
            lines += [inspect.cleandoc(schema["description"]), ""]
        if "enum" in schema:
            lines += ["One of: " + ", ".join(f"`{value}`" for value in schema["enum"]) + ".", ""]
        elif schema.get("type") == "object":
            lines += [*_fields(schema), ""]
        else:
            lines += [_type(schema), ""]
    return lines


SERVICES = ("intake", "regulation", "scheduler", "notifier")


def _openapi(service: str, settings: Any) -> Schema:
    build = importlib.import_module(f"services.{service}.app").build
    document: Schema = build(settings).http_app.openapi()
    return document


def _body(operation: Schema) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            return f"`{_ref_name(schema['$ref'])}`"
        return _cell(_type(schema)) if schema else ""
    return ""


def _api_routes(routes: Sequence[Any]) -> Iterator[Any]:
    """An app's routes, each router it includes opened (FastAPI keeps an included router
    whole, as one route holding it: the console's actors' routers), in their order."""
    from fastapi.routing import APIRoute

    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def http_page() -> str:
    """The HTTP reference: each service's routes from its OpenAPI, the console's routes."""
    from aiguillage.console.app import create_app
    from shared.settings import ServiceName, Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(environment="development", data_dir=folder)
        lines = [
            "# HTTP APIs",
            "",
            GENERATED.format(source="each service's OpenAPI and the console's routes"),
            "Each service serves its HTTP API on its own port (`AIGUILLAGE_HTTP_HOST`, "
            "`127.0.0.1` by default), with its OpenAPI document at `/openapi.json`, "
            "browsable at `/docs` (and `/redoc`). Every route but `/health` and `/ready` "
            "takes a bearer token issued for that service "
            "([tokens](../operations/tokens.md)); the refusals' bodies are documented "
            "with each status (`shared/openapi.py`). The console's pages are below.",
            "",
        ]
        for service in SERVICES:
            document = _openapi(service, settings)
            port = settings.http_port(ServiceName(service))
            lines += [
                f"## {service}",
                "",
                f"Port {port} (`AIGUILLAGE_{service.upper()}_HTTP_PORT`): "
                f"`http://127.0.0.1:{port}/openapi.json`, `http://127.0.0.1:{port}/docs`.",
                "",
                "| method | path | what | body | answers |",
                "| --- | --- | --- | --- | --- |",
            ]
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    what = operation.get("summary") or operation.get("operationId", "")
                    statuses = ", ".join(sorted(operation.get("responses", {})))
                    lines.append(
                        f"| {method.upper()} | `{path}` | {_cell(what)} | {_body(operation)} "
                        f"| {statuses} |"
                    )
            lines.append("")
        console = create_app(settings, listen=False)
        lines += [
            "## The web console",
            "",
            "`aiguillage console` (port 8080 by default): server-rendered pages, forms and "
            "the live stream; each page calls the services' APIs above with the token of "
            "the actor the logged-in person acts for ([the console](../architecture/console.md)).",
            "",
            "| method | path | handler |",
            "| --- | --- | --- |",
        ]
        for route in _api_routes(console.routes):
            doc = (route.endpoint.__doc__ or "").strip().split("\n\n")[0]
            handler = f"`{route.name}`" + (f": {_cell(doc)}" if doc else "")
            for method in sorted(route.methods or ()):
                lines.append(f"| {method} | `{route.path}` | {handler} |")
        lines.append("")
    return "\n".join(lines)
