"""Every command that needs the broker, a database or a service's HTTP API, and cannot
reach it, says so in one French line with how to start it, and exits 2: no traceback.

The real commands, as subprocesses, against a closed port (nothing listens there), and
once against a port that accepts and never answers (the TimeoutError of issue 27).
The local servers are never stopped: other tests use them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from aiguillage.cli import app
from shared.http import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REFERRAL = str(ROOT / "docs/examples/referral.json")
PROTOCOL = str(ROOT / "services/regulation/protocols/v1.json")

BROKER = {
    "refer": ["refer", REFERRAL],
    "ars activate": ["ars", "activate", "--id", "c1", "--name", "C", "--commune", "35238"],
    "ars capacity": ["ars", "capacity", "--id", "c1", "--boxes", "3"],
    "ars suspend": ["ars", "suspend", "--id", "c1"],
    "ars close": ["ars", "close", "--id", "c1"],
    "centre listen": ["centre", "listen", "c1", "--timeout", "5"],
    "centre seen": ["centre", "seen", "c1", "--appointment", "a", "--referral", "r"],
    "centre no-show": ["centre", "no-show", "c1", "--appointment", "a", "--referral", "r"],
    "centre cancel": ["centre", "cancel", "c1", "--appointment", "a", "--referral", "r"],
    "centre correct": [
        *("centre", "correct", "c1", "--appointment", "a", "--referral", "r"),
        *("--outcome", "seen"),
    ],
    "centre escalate": ["centre", "escalate", "c1", "--referral", "r", "aggravation"],
    "centre reinforce": ["centre", "reinforce", "c1", "2", "infirmier"],
    "regulate protocol load": ["regulate", "protocol", "load", PROTOCOL],
    "regulate decide": ["regulate", "decide", "r", "--decision", "refuse", "--regulator", "DR"],
    "health": ["health", "intake"],
    "demo": ["demo", "--referrals", "1"],
    "run": ["run", "notifier"],
}
HTTP = {
    "ars reinforcements": ("scheduler", ["ars", "reinforcements", "--region", "53"]),
    "regulate audit": ("regulation", ["regulate", "audit", "r"]),
    "regulate held": ("regulation", ["regulate", "held"]),
}
DATABASE = {
    "referrer add": ("intake", ["referrer", "add", "--kind", "gp", "--id", "10001234567"]),
    "referrer list": ("intake", ["referrer", "list"]),
    "referrer remove": ("intake", ["referrer", "remove", "--kind", "gp", "--id", "1"]),
    "console user add": (
        "console",
        [
            "console",
            "user",
            "add",
            "--login",
            "a@ars.fr",
            "--name",
            "A",
            "--role",
            "ars",
            "--region",
            "53",
        ],
    ),
    "console user reset": ("console", ["console", "user", "reset", "a@ars.fr"]),
    "console user disable": ("console", ["console", "user", "disable", "a@ars.fr"]),
    "console user list": ("console", ["console", "user", "list"]),
    "run": ("intake", ["run", "intake"]),
    "keys seal": ("intake", ["keys", "seal"]),
    "keys rotate": ("intake", ["keys", "rotate"]),
    "keys status": ("notifier", ["keys", "status", "--service", "notifier"]),
    "purge": ("regulation", ["purge", "--service", "regulation"]),
    "privacy export": ("intake", ["privacy", "export", "--referral", "r"]),
    "backup": ("scheduler", ["backup", "--to", "sauvegarde"]),
    "privacy restrict": ("intake", ["privacy", "restrict", "--referral", "r"]),
}
# What reaches none of them: a file, a token, rabbitmqctl, Chromium, or serves.
REACHES_NOTHING = {
    "asyncapi",
    "token",
    "secrets generate",
    "broker provision",
    "console",
    "console screenshots",
    "run-hubsante",
    # Reads its backup folder first, and a missing one is said as such (tests/unit/test_backup.py).
    "restore",
}


def _commands(group: Any, prefix: str = "") -> Iterator[str]:
    # Typer's groups are its vendored click's (typer._click, private): read by duck typing.
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            if command.invoke_without_command:
                yield path
            yield from _commands(command, f"{path} ")
        else:
            yield path


def test_every_command_is_tried_here() -> None:
    # A command added later is placed in one of the lists above, or this fails.
    every = set(_commands(typer.main.get_group(app)))
    assert every == set(BROKER) | set(HTTP) | set(DATABASE) | REACHES_NOTHING


def _aiguillage(
    args: list[str], tmp_path: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    closed = free_port()
    env = {
        **os.environ,
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_DATA_DIR": str(tmp_path / "data"),
        # Nothing reaches the real servers: a command that wrongly did would fail here.
        "AIGUILLAGE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed}/",
        "AIGUILLAGE_BROKER_URLS": "",
        "COLUMNS": "200",
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "aiguillage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )


def _one_french_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    # A service (`run`) logs on stderr before it stops: the command's own line is last.
    line = result.stderr.splitlines()[-1]
    assert " ne répond pas sur " in line or " refuse la connexion " in line, output
    return line


@pytest.mark.parametrize("command", sorted(BROKER))
def test_a_broker_that_does_not_answer_is_one_line(command: str, tmp_path: Path) -> None:
    result = _aiguillage(BROKER[command], tmp_path)
    line = _one_french_line(result)
    assert line.startswith("RabbitMQ ne répond pas sur 127.0.0.1:"), line
    assert "démarrez-le (rabbitmq-server -detached) ou réglez AIGUILLAGE_BROKER_URL" in line
    if command != "run":  # a service logs as it goes; a command says one line only
        assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", sorted(HTTP))
def test_a_service_api_that_does_not_answer_is_one_line(command: str, tmp_path: Path) -> None:
    service, args = HTTP[command]
    port = free_port()
    setting = f"AIGUILLAGE_{service.upper()}_HTTP_PORT"
    result = _aiguillage(args, tmp_path, **{setting: str(port)})
    assert result.stderr.splitlines() == [
        f"L'API HTTP de {service} ne répond pas sur 127.0.0.1:{port} : démarrez le service "
        f"(aiguillage run {service}) ou réglez {setting}."
    ], result.stdout + result.stderr
    _one_french_line(result)


@pytest.mark.parametrize("command", sorted(DATABASE))
def test_a_database_that_does_not_answer_is_one_line(command: str, tmp_path: Path) -> None:
    owner, args = DATABASE[command]
    port = free_port()
    setting = f"AIGUILLAGE_{owner.upper()}_DATABASE_URL"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test"
    line = _one_french_line(_aiguillage(args, tmp_path, **{setting: url}))
    assert line.startswith(f"PostgreSQL ne répond pas sur 127.0.0.1:{port} : démarrez-le (")
    assert "pg_ctlcluster " in line and line.endswith(f" start) ou réglez {setting}.")


def test_a_database_that_refuses_the_connection_is_one_line(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    # The server answers, the database named does not exist: what to check, in one line.
    missing = postgres_admin_url.rsplit("/", 1)[0] + "/aiguillage_no_such_database"
    url = missing.replace("postgresql://", "postgresql+asyncpg://", 1)
    result = _aiguillage(["referrer", "list"], tmp_path, AIGUILLAGE_INTAKE_DATABASE_URL=url)
    line = _one_french_line(result)
    assert 'refuse la connexion (database "aiguillage_no_such_database" does not exist)' in line
    assert line.endswith("vérifiez AIGUILLAGE_INTAKE_DATABASE_URL.")


def test_a_broker_port_that_never_answers_is_one_line(tmp_path: Path) -> None:
    # A port that accepts and stays silent (a broker starting, a container's port with
    # the container gone): the client times out, a bare TimeoutError, said as the rest.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        result = _aiguillage(BROKER["centre seen"], tmp_path, AIGUILLAGE_BROKER_URL=url)
    assert result.stderr.splitlines() == [
        f"RabbitMQ ne répond pas sur 127.0.0.1:{port} : démarrez-le "
        "(rabbitmq-server -detached) ou réglez AIGUILLAGE_BROKER_URL."
    ], result.stdout + result.stderr
    assert result.returncode == 2
