"""docker-compose.yml, the documentation and the AsyncAPI document cannot drift from the
code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from shared.provisioning import build_plan
from shared.settings import SECRET_SETTINGS, ServiceName, Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_name(field: str) -> str:
    return f"AIGUILLAGE_{field.upper()}"


def test_settings_page_lists_every_setting() -> None:
    # The operator's guide holds the settings table (the site's operations/settings.md).
    page = (ROOT / "docs" / "operations" / "settings.md").read_text()
    for field in Settings.model_fields:
        name = _env_name(field)
        # SMTP_PORT is documented with its host as `AIGUILLAGE_SMTP_HOST` / `_PORT`.
        short = "`_" + name.rsplit("_", 1)[-1] + "`"
        assert f"`{name}`" in page or short in page, field


def test_events_reference_renders_every_message() -> None:
    """The site's events page (rendered at build) names every channel of the AsyncAPI
    document and describes every payload."""
    from aiguillage.reference import events_page

    document = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    page = events_page(document)
    for channel in document["channels"].values():
        assert f"`{channel['address']}`" in page, channel["address"]
    for schema in document["components"]["schemas"]:
        if schema.endswith("V1"):
            assert f"{{#schema-{schema.removesuffix('V1').lower()}}}" in page, schema


def test_http_reference_lists_every_route(tmp_path: Path) -> None:
    """The site's HTTP page (rendered at build) lists every route of every service."""
    import importlib

    from aiguillage.reference import http_page

    page = http_page()
    for service in ServiceName:
        settings = Settings(environment="development", data_dir=str(tmp_path))
        app = importlib.import_module(f"services.{service.value}.app").build(settings).http_app
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                assert f"| {method.upper()} | `{path}` |" in page, (service, method, path)


def test_compose_matches_the_code() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "postgres", *(s.value for s in ServiceName)} <= set(services)
    assert "5672:5672" in services["rabbitmq"]["ports"]
    assert "healthcheck" in services["rabbitmq"] and "healthcheck" in services["postgres"]
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    known = {_env_name(f) for f in Settings.model_fields}
    for service in ServiceName:
        spec = services[service.value]
        assert spec["command"] == ["run", service.value]
        assert spec["build"] == "."
        assert spec["healthcheck"]["test"] == ["CMD", "aiguillage", "health", service.value]
        env = spec["environment"]
        assert set(env) <= known, set(env) - known
        url = env[f"AIGUILLAGE_{service.value.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"/{service.value}")
        assert f"CREATE DATABASE {service.value};" in init
        assert env["AIGUILLAGE_BROKER_URL"].startswith("amqp://")
        assert "@rabbitmq:5672/" in env["AIGUILLAGE_BROKER_URL"]
        assert {"rabbitmq", "postgres"} <= set(spec["depends_on"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \["aiguillage"\]', dockerfile)
    for folder in ["shared", "services", "aiguillage"]:
        assert f"COPY {folder} ./{folder}" in dockerfile


def test_asyncapi_document_is_up_to_date() -> None:
    from aiguillage.asyncapi import render

    current = (ROOT / "docs" / "asyncapi.yaml").read_text()
    assert current == render(), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_compose_publishes_each_services_http_port() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    defaults = Settings()
    for service in ServiceName:
        port = defaults.http_port(service)
        assert f"{port}:{port}" in compose["services"][service.value]["ports"]
        environment = compose["services"][service.value]["environment"]
        assert environment["AIGUILLAGE_HTTP_HOST"] == "0.0.0.0"


# `${NAME}`, `${NAME:-default}`, `${NAME:?error}`: compose's interpolation.
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _interpolate(text: str) -> str:
    """Compose's substitution with a value for every required variable ("x"), the
    default of the others."""
    return _VARIABLE.sub(lambda m: "x" if m.group(2) == "?" else (m.group(3) or ""), text)


# Required of the deployment, not a secret: the console's public address, which no
# command can make up and production refuses to leave on 127.0.0.1.
DEPLOYMENT_REQUIRED = {"AIGUILLAGE_PATIENT_LINK_BASE_URL"}


def test_compose_gives_no_secret_a_default() -> None:
    from aiguillage.commands.secrets import secret_variables

    text = (ROOT / "docker-compose.yml").read_text()
    variables = [(m.group(1), m.group(2)) for m in _VARIABLE.finditer(text)]
    secrets = set(secret_variables())
    for name, kind in variables:
        if "SECRET" in name or "PASSWORD" in name:
            # Required: `docker compose up` stops and names it, rather than start on a
            # default anyone may read here.
            assert kind == "?", name
            assert name in secrets, f"{name}: `aiguillage secrets generate` does not write it"
        if kind == "?" and name not in DEPLOYMENT_REQUIRED:
            assert name in secrets, f"{name} is required, and secrets generate does not write it"
    # Every secret the command writes is one the deployment uses, and the services' own.
    assert secrets | DEPLOYMENT_REQUIRED == {name for name, kind in variables if kind == "?"}
    services = _compose()["services"]
    for service in ServiceName:
        env = services[service.value]["environment"]
        assert env["AIGUILLAGE_ENVIRONMENT"] == "production"
        for field in SECRET_SETTINGS:
            assert env[_env_name(field)] == (
                f"${{{_env_name(field)}:?set it with `aiguillage secrets generate`}}"
            )


def test_each_service_connects_as_its_own_broker_user() -> None:
    compose = _compose()
    services = compose["services"]
    passwords = json.loads(_interpolate(compose["configs"]["broker-passwords"]["content"]))
    administrator = _interpolate(services["broker-init"]["command"][5])
    plan = build_plan("aiguillage", "aiguillage", administrator=administrator)
    # broker-init is given every user's password: none is generated, so none is printed
    # into its log; the administrator is the only operator the doors trust.
    assert set(passwords) == set(plan.users)
    operators = {
        _interpolate(services[s.value]["environment"]["AIGUILLAGE_BROKER_OPERATORS"])
        for s in ServiceName
    }
    assert operators == {administrator}
    for service in ServiceName:
        url = services[service.value]["environment"]["AIGUILLAGE_BROKER_URL"]
        password = f"{service.value.upper()}_BROKER_PASSWORD"
        assert url == (
            f"amqp://{service.value}:${{{password}:?set it with `aiguillage secrets generate`}}"
            "@rabbitmq:5672/${AIGUILLAGE_NAMESPACE:-aiguillage}"
        )
        assert plan.account(service.value).user == service.value


def test_broker_init_provisions_before_anything_starts() -> None:
    compose = _compose()
    services = compose["services"]
    init = services["broker-init"]
    assert init["build"] == "." and init["restart"] == "no"
    command = init["command"]
    assert command[:2] == ["broker", "provision"]
    definitions = Path(command[command.index("--definitions") + 1])
    assert command[command.index("--password-file") + 1] == init["configs"][0]["target"]
    assert init["configs"][0]["source"] == "broker-passwords"
    volume = f"broker-definitions:{definitions.parent}"
    assert volume in init["volumes"]
    assert "broker-definitions" in compose["volumes"]
    # The broker imports the file broker-init wrote, from the same volume.
    rabbit = services["rabbitmq"]
    mounted = next(v for v in rabbit["volumes"] if v.startswith("broker-definitions:"))
    assert mounted.endswith(":ro")
    conf = (ROOT / "deploy" / "rabbitmq.conf").read_text()
    loaded = re.search(r"^load_definitions = (\S+)$", conf, re.MULTILINE)
    assert loaded is not None
    assert Path(loaded.group(1)) == Path(mounted.split(":")[1]) / definitions.name
    # The image owns the mount point, so the new volume is broker-init's to write.
    assert f"RUN mkdir {definitions.parent}" in (ROOT / "Dockerfile").read_text()
    done = {"condition": "service_completed_successfully"}
    assert rabbit["depends_on"]["broker-init"] == done
    for service in ServiceName:
        depends = services[service.value]["depends_on"]
        assert depends["broker-init"] == done
        assert depends["rabbitmq"] == {"condition": "service_healthy"}


def test_management_ui_and_database_are_not_published_by_default() -> None:
    services = _compose()["services"]
    assert services["rabbitmq"]["ports"] == ["5672:5672"]
    assert "ports" not in services["postgres"]
    expose = yaml.safe_load((ROOT / "deploy" / "compose.expose.yml").read_text())
    # Asked for: on the host's loopback only.
    assert expose["services"]["rabbitmq"]["ports"] == ["127.0.0.1:15672:15672"]
    assert expose["services"]["postgres"]["ports"] == ["127.0.0.1:5432:5432"]


def test_cluster_profile_runs_three_nodes_and_two_replicas_of_each_service() -> None:
    services = _compose()["services"]
    nodes = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
    conf = (ROOT / "deploy" / "rabbitmq-cluster.conf").read_text()
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert "cluster_partition_handling = pause_minority" in conf
    for index, node in enumerate(nodes, start=1):
        spec = services[node]
        # Its node name (rabbit@<hostname>) is in the classic config, and stable.
        assert spec["hostname"] == node
        assert f"cluster_formation.classic_config.nodes.{index} = rabbit@{node}" in conf
        assert any(v.endswith(":/etc/rabbitmq/conf.d/30-cluster.conf:ro") for v in spec["volumes"])
        assert any(
            v.startswith(f"{node}-data:") or v.startswith("rabbitmq-data:") for v in spec["volumes"]
        )
        # The shared Erlang cookie comes from the environment, required, no default.
        env = spec["environment"]
        for name in ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "RABBITMQ_CTL_ERL_ARGS"):
            assert env[name] == (
                "-setcookie ${RABBITMQ_ERLANG_COOKIE:?set it with `aiguillage secrets generate`}"
            )
    assert "profiles" not in services["rabbitmq"]  # the single node is the first one
    assert services["rabbitmq-2"]["profiles"] == services["rabbitmq-3"]["profiles"] == ["cluster"]
    data = {v.split(":")[0] for n in nodes for v in services[n]["volumes"] if "-data:" in v}
    assert len(data) == 3  # each node its own disk
    for service in ServiceName:
        first, second = services[service.value], services[f"{service.value}-2"]
        assert second["profiles"] == ["cluster"]
        assert second["command"] == first["command"] and second["ports"] == []
        assert second["environment"] == first["environment"]  # the same database
        urls = first["environment"]["AIGUILLAGE_BROKER_URLS"].split(",")
        password = f"{service.value.upper()}_BROKER_PASSWORD"
        assert urls == [
            f"amqp://{service.value}:${{{password}:?set it with `aiguillage secrets generate`}}"
            f"@{node}:5672/${{AIGUILLAGE_NAMESPACE:-aiguillage}}?heartbeat=10"
            for node in nodes
        ]


def test_compose_passes_production_s_checks() -> None:
    """Each service of the compose file, its variables given, starts in production:
    its own broker user, the administrator as the only operator, the console's https
    address for the links, secure cookies (issue 28)."""
    services = _compose()["services"]
    for service in ServiceName:
        env = {
            name: _interpolate(str(value))
            for name, value in services[service.value]["environment"].items()
        }
        env["AIGUILLAGE_PATIENT_LINK_BASE_URL"] = "https://aiguillage.ars-bretagne.fr"
        fields: dict[str, Any] = {
            name.removeprefix("AIGUILLAGE_").lower(): value for name, value in env.items()
        }
        settings = Settings(**fields)
        assert settings.setting_problems() == {}, service
