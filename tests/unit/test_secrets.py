"""Production refuses the public secrets: a service or the console does not start on a
missing, known or short secret, and says in one message which and how to make them;
`aiguillage secrets generate` makes a .env that passes. Development still takes the
development defaults, with one warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

import shared.settings
from aiguillage.cli import app as cli
from aiguillage.commands.secrets import secret_variables
from aiguillage.errors import explain
from shared.settings import (
    MIN_SECRET_LENGTH,
    SECRET_SETTINGS,
    Environment,
    Settings,
    UnsafeSecrets,
)

SECRETS = [f"AIGUILLAGE_{field.upper()}" for field in SECRET_SETTINGS]
GOOD = "k" * MIN_SECRET_LENGTH
# What a production deployment says of itself besides its secrets, safely: its services'
# own broker users, its administrators as operators, the console's public address.
SAFE_DEPLOYMENT: dict[str, Any] = {
    "broker_url": "amqp://intake:pw@rabbitmq:5672/aiguillage",
    "broker_operators": ["aiguillage"],
    "patient_link_base_url": "https://aiguillage.ars-bretagne.fr",
}


def _production_env(**extra: str) -> dict[str, str]:
    """The process environment with no Aiguillage setting but production and ``extra``:
    the tests' own development mode, and any secret of the shell, left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGUILLAGE_")}
    return {
        **env,
        "AIGUILLAGE_ENVIRONMENT": "production",
        # Nothing answers here: a start that got past the check would fail otherwise.
        "AIGUILLAGE_BROKER_URL": "amqp://intake:pw@127.0.0.1:1/",
        "AIGUILLAGE_BROKER_OPERATORS": "aiguillage",
        "AIGUILLAGE_PATIENT_LINK_BASE_URL": "https://aiguillage.ars-bretagne.fr",
        "AIGUILLAGE_INTAKE_HTTP_PORT": "",
        **extra,
    }


def _aiguillage(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    # In an empty folder: no .env of the working tree is read.
    return subprocess.run(
        [sys.executable, "-m", "aiguillage", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AIGUILLAGE_"):
            monkeypatch.delenv(name)


def test_production_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clear_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert Settings().environment is Environment.PRODUCTION


def test_a_service_refuses_to_start_on_the_defaults_in_production(tmp_path: Path) -> None:
    result = _aiguillage(["run", "intake"], _production_env(), tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # One message: every bad variable, and the command that makes them.
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: intake refuses to start in production")
    for name in SECRETS:
        assert f"{name} is not set" in line
    assert "`aiguillage secrets generate`" in line
    # It stopped before connecting: the broker that does not answer is not what it says.
    assert "RabbitMQ" not in line


def test_a_known_or_short_secret_is_refused_too(tmp_path: Path) -> None:
    env = _production_env(
        AIGUILLAGE_AUTH_SECRET="change-me-too",
        AIGUILLAGE_WEBHOOK_SECRET="short",
        AIGUILLAGE_PSEUDONYM_SECRET=GOOD,
        AIGUILLAGE_PATIENT_LINK_KEY="l" * MIN_SECRET_LENGTH,
    )
    result = _aiguillage(["run", "intake"], env, tmp_path)
    assert result.returncode == 1
    assert "AIGUILLAGE_AUTH_SECRET is a known default" in result.stderr
    assert f"AIGUILLAGE_WEBHOOK_SECRET is shorter than {MIN_SECRET_LENGTH} bytes" in result.stderr
    assert "AIGUILLAGE_PSEUDONYM_SECRET" not in result.stderr


def test_the_console_refuses_to_start_on_the_defaults_in_production(tmp_path: Path) -> None:
    result = _aiguillage(["console", "--port", "0"], _production_env(), tmp_path)
    assert result.returncode == 1
    assert "error: the console refuses to start in production" in result.stderr
    assert all(name in result.stderr for name in SECRETS)
    assert "`aiguillage secrets generate`" in result.stderr


def test_each_kind_of_unsafe_secret_is_named() -> None:
    settings = Settings(
        environment=Environment.PRODUCTION,
        auth_secret="",
        webhook_secret="change-me",
        pseudonym_secret="x" * (MIN_SECRET_LENGTH - 1),
        patient_link_key="change-me-patient-links",
    )
    assert settings.secret_problems() == {
        "AIGUILLAGE_AUTH_SECRET": "is empty",
        "AIGUILLAGE_WEBHOOK_SECRET": "is a known default",
        "AIGUILLAGE_PSEUDONYM_SECRET": f"is shorter than {MIN_SECRET_LENGTH} bytes",
        "AIGUILLAGE_PATIENT_LINK_KEY": "is a known default",
        "AIGUILLAGE_IDENTITY_KEK": "is not set (its public development default)",
        "AIGUILLAGE_IDENTITY_LOOKUP_KEY": "is not set (its public development default)",
    }
    with pytest.raises(UnsafeSecrets) as raised:
        settings.check_secrets("scheduler")
    # The command's line: every variable, in one line.
    line = explain(raised.value)
    assert line is not None and "\n" not in line
    assert all(name in line for name in SECRETS)
    safe = Settings(environment=Environment.PRODUCTION, **SAFE_DEPLOYMENT).model_copy(
        update={field: f"{field}-{GOOD}" for field in SECRET_SETTINGS}
    )
    assert safe.secret_problems() == {}
    safe.check_secrets("scheduler")


def test_development_takes_the_defaults_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared.settings, "_warned_development", False)
    settings = Settings(environment=Environment.DEVELOPMENT)
    with capture_logs() as logs:
        settings.check_secrets("intake")
        settings.check_secrets("notifier")
    [warning] = logs
    assert warning["log_level"] == "warning"
    # The secrets, and the development defaults of the broker and the patients' links.
    assert set(SECRETS) <= set(warning["variables"])
    assert "AIGUILLAGE_BROKER_OPERATORS" in warning["variables"]


def test_secrets_generate_writes_an_env_that_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clear_env(monkeypatch)
    env_file = tmp_path / ".env"
    result = CliRunner().invoke(cli, ["secrets", "generate", "--output", str(env_file)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert values["AIGUILLAGE_ENVIRONMENT"] == "production"
    assert set(values) == {"AIGUILLAGE_ENVIRONMENT", *secret_variables()}
    assert len(set(values.values())) == len(values)  # each a fresh value
    # The values are never printed.
    assert not any(value in result.output for value in values.values() if value != "production")
    settings = Settings(_env_file=env_file)
    assert settings.environment is Environment.PRODUCTION
    assert settings.secret_problems() == {}
    # What no command can make up is the deployment's to say (docker-compose.yml does).
    assert set(settings.production_problems()) == {
        "AIGUILLAGE_BROKER_URL",
        "AIGUILLAGE_BROKER_OPERATORS",
        "AIGUILLAGE_PATIENT_LINK_BASE_URL",
    }
    Settings(_env_file=env_file, **SAFE_DEPLOYMENT).check_secrets("intake")


def test_a_service_starts_past_the_check_with_generated_secrets(tmp_path: Path) -> None:
    made = CliRunner().invoke(cli, ["secrets", "generate", "--output", str(tmp_path / ".env")])
    assert made.exit_code == 0, made.output
    env = _production_env()
    del env["AIGUILLAGE_ENVIRONMENT"]  # from the .env
    result = _aiguillage(["run", "intake"], env, tmp_path)
    # It went on to the broker, which does not answer here.
    assert result.returncode == 2
    assert "refuses to start" not in result.stderr
    assert "RabbitMQ ne répond pas" in result.stderr, result.stderr


def test_secrets_generate_keeps_an_existing_env_unless_forced(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AIGUILLAGE_PSEUDONYM_SECRET=in-use\n")
    env_file.chmod(0o644)
    result = CliRunner().invoke(cli, ["secrets", "generate", "--output", str(env_file)])
    assert result.exit_code == 1
    assert "--force" in result.output
    assert env_file.read_text() == "AIGUILLAGE_PSEUDONYM_SECRET=in-use\n"
    forced = ["secrets", "generate", "--output", str(env_file), "--force"]
    result = CliRunner().invoke(cli, forced)
    assert result.exit_code == 0, result.output
    assert "in-use" not in env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


# -- what production refuses besides the secrets (issue 28) ------------------------------


def _safe(**changes: Any) -> Settings:
    """A production deployment that passes, with ``changes``."""
    values: dict[str, Any] = {
        "environment": Environment.PRODUCTION,
        **{field: f"{field}-{GOOD}" for field in SECRET_SETTINGS},
        **SAFE_DEPLOYMENT,
        **changes,
    }
    return Settings(**values)


def test_a_safe_production_deployment_passes() -> None:
    assert _safe().production_problems() == {}
    _safe().check_secrets("the console")


@pytest.mark.parametrize(
    ("changes", "variable", "why"),
    [
        ({"console_secure_cookies": False}, "AIGUILLAGE_CONSOLE_SECURE_COOKIES", "is false"),
        (
            {"broker_url": "amqp://guest:guest@rabbitmq:5672/"},
            "AIGUILLAGE_BROKER_URL",
            "logs in as 'guest'",
        ),
        # No user in the URL: the client logs in as guest.
        ({"broker_url": "amqp://rabbitmq:5672/"}, "AIGUILLAGE_BROKER_URL", "logs in as 'guest'"),
        (
            {"broker_urls": ["amqp://intake:pw@r1/", "amqp://guest:guest@r2/"]},
            "AIGUILLAGE_BROKER_URLS",
            "logs in as 'guest'",
        ),
        (
            {"broker_operators": ["aiguillage", "guest"]},
            "AIGUILLAGE_BROKER_OPERATORS",
            "trusts 'guest'",
        ),
        (
            {"patient_link_base_url": "http://127.0.0.1:8080"},
            "AIGUILLAGE_PATIENT_LINK_BASE_URL",
            "is a loopback address",
        ),
        (
            {"patient_link_base_url": "https://localhost"},
            "AIGUILLAGE_PATIENT_LINK_BASE_URL",
            "is a loopback address",
        ),
        (
            {"patient_link_base_url": "https://[::1]:8443"},
            "AIGUILLAGE_PATIENT_LINK_BASE_URL",
            "is a loopback address",
        ),
        (
            {"patient_link_base_url": "http://aiguillage.ars-bretagne.fr"},
            "AIGUILLAGE_PATIENT_LINK_BASE_URL",
            "is not https",
        ),
        # 31 bytes in 16 characters: the length is the key's, in bytes.
        (
            {"webhook_secret": "é" * 15 + "x"},
            "AIGUILLAGE_WEBHOOK_SECRET",
            "is shorter than 32 bytes",
        ),
        (
            {"patient_link_key": f"auth_secret-{GOOD}"},
            "AIGUILLAGE_PATIENT_LINK_KEY",
            "equals AIGUILLAGE_AUTH_SECRET",
        ),
        (
            {"auth_keys": [f"pseudonym_secret-{GOOD}"]},
            "AIGUILLAGE_AUTH_KEYS",
            "holds a key equal to another secret",
        ),
    ],
)
def test_each_unsafe_setting_is_refused_in_production(
    changes: dict[str, object], variable: str, why: str
) -> None:
    settings = _safe(**changes)
    assert list(settings.production_problems()) == [variable]
    assert settings.production_problems()[variable].startswith(why)
    with pytest.raises(UnsafeSecrets) as raised:
        settings.check_secrets("notifier")
    line = explain(raised.value)
    assert line is not None and "\n" not in line and variable in line


def test_an_older_token_key_may_be_the_current_one() -> None:
    assert _safe(auth_keys=[f"auth_secret-{GOOD}"]).production_problems() == {}


def test_the_same_value_for_all_four_secrets_is_refused() -> None:
    same = "s" * 40
    settings = _safe(**{field: same for field in SECRET_SETTINGS})
    assert settings.production_problems() == {
        env: "equals AIGUILLAGE_AUTH_SECRET (each secret must be its own)"
        for env in SECRETS
        if env != "AIGUILLAGE_AUTH_SECRET"
    }


def test_development_still_starts_on_them_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.settings, "_warned_development", False)
    unsafe = _safe(
        environment=Environment.DEVELOPMENT,
        console_secure_cookies=False,
        patient_link_base_url="http://127.0.0.1:8080",
    )
    with capture_logs() as logs:
        unsafe.check_secrets("the console")
    [warning] = logs
    assert warning["variables"] == [
        "AIGUILLAGE_CONSOLE_SECURE_COOKIES",
        "AIGUILLAGE_PATIENT_LINK_BASE_URL",
    ]


def test_production_by_default_refuses_the_attacker_s_console(tmp_path: Path) -> None:
    """The console started with no AIGUILLAGE_ENVIRONMENT, insecure cookies, the guest
    operator and broker URL, links on 127.0.0.1 and one 40-character value for all four
    secrets: refused, in one line naming each problem."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGUILLAGE_")}
    env |= {name: "v" * 40 for name in SECRETS}
    env |= {
        "AIGUILLAGE_CONSOLE_SECURE_COOKIES": "false",
        "AIGUILLAGE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/",
    }
    result = _aiguillage(["console", "--port", "0"], env, tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the console refuses to start in production")
    for name in (
        "AIGUILLAGE_CONSOLE_SECURE_COOKIES is false",
        "AIGUILLAGE_BROKER_URL logs in as 'guest'",
        "AIGUILLAGE_BROKER_OPERATORS trusts 'guest'",
        "AIGUILLAGE_PATIENT_LINK_BASE_URL is a loopback address",
        "AIGUILLAGE_WEBHOOK_SECRET equals AIGUILLAGE_AUTH_SECRET",
        "AIGUILLAGE_PSEUDONYM_SECRET equals AIGUILLAGE_AUTH_SECRET",
        "AIGUILLAGE_PATIENT_LINK_KEY equals AIGUILLAGE_AUTH_SECRET",
    ):
        assert name in line, name
