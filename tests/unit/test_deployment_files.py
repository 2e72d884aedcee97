"""docker-compose.yml, the README and the AsyncAPI document cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.settings import ServiceName, Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_name(field: str) -> str:
    return f"AIGUILLAGE_{field.upper()}"


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields:
        name = _env_name(field)
        # SMTP_PORT is documented with its host as `AIGUILLAGE_SMTP_HOST` / `_PORT`.
        short = "`_" + name.rsplit("_", 1)[-1] + "`"
        assert f"`{name}`" in readme or short in readme, field


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
