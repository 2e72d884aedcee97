"""Fixtures: the real RabbitMQ and PostgreSQL from the environment (the local servers
by default); testcontainers only where none answers and Docker runs; otherwise a
clear failure, never a silent skip."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest

from shared.settings import Environment, Settings
from shared.topology import delete_topology
from tests.helpers import NAMESPACES, fresh_namespace

# The tests run in explicit development mode: the development secrets are accepted
# (production, the default, refuses them), and every process a test starts inherits it.
# Set here, not left to the shell: an exported AIGUILLAGE_ENVIRONMENT=production, or a
# production .env in the working folder, must not change what the tests do.
os.environ["AIGUILLAGE_ENVIRONMENT"] = Environment.DEVELOPMENT.value

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 2):
            return True
    except OSError:
        return False


def _docker_runs() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    url = os.environ.get("AIGUILLAGE_TEST_BROKER_URL", DEFAULT_BROKER)
    if _answers(url):
        yield url
        return
    if _docker_runs():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:4.1-management") as rabbit:
            params = rabbit.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
        return
    pytest.fail(
        f"No RabbitMQ answers at {url} and no Docker engine runs to start one. "
        "Start it (rabbitmq-server -detached) or set AIGUILLAGE_TEST_BROKER_URL.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("AIGUILLAGE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if _answers(url):
        yield url
        return
    if _docker_runs():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
        return
    pytest.fail(
        f"No PostgreSQL answers at {url} and no Docker engine runs to start one. Start it "
        "(pg_ctlcluster ... main start) or set AIGUILLAGE_TEST_POSTGRES_URL.",
        pytrace=False,
    )


class PostgresDatabases:
    """Creates throw-away databases on the test server, and drops them afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    async def create(self, label: str) -> str:
        name = f"aig_{label}_{uuid.uuid4().hex[:8]}"
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self.created.append(name)
        parsed = urlparse(self.admin_url)
        return parsed._replace(scheme="postgresql+asyncpg", path=f"/{name}").geturl()

    async def drop_all(self) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            for name in self.created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture
async def postgres(postgres_admin_url: str) -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    yield databases
    await databases.drop_all()


def _broker_queues() -> list[str] | None:
    """The queues of the local broker's default virtual host (None: cannot tell)."""
    if shutil.which("rabbitmqctl") is None:
        return None
    node = os.environ.get("AIGUILLAGE_TEST_RABBITMQ_NODE")
    command = ["rabbitmqctl", *(["-n", node] if node else []), "list_queues", "-q", "name"]
    try:
        done = subprocess.run(
            [*command, "--formatter", "json"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [row["name"] for row in json.loads(done.stdout or "[]")]


async def _delete_queues(url: str, names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
    finally:
        await connection.close()


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind(broker_url: str) -> Iterator[None]:
    """After the run, no queue of its namespaces is left on the broker.

    What the services declared that no fixture knows of (the centres' queues, declared
    on activation) is deleted here; then the broker is asked again, and a queue still
    there fails the run (an error at this fixture's teardown, naming the queues)."""
    yield
    if not NAMESPACES:
        return
    queues = _broker_queues()
    if queues is None:
        return
    # "<ns>.<queue>", and "<ns>-<run id>.<queue>" for a demo started in that namespace.
    prefixes = tuple(p for ns in NAMESPACES for p in (f"{ns}.", f"{ns}-"))
    left = [q for q in queues if q.startswith(prefixes)]
    if left:
        asyncio.run(_delete_queues(broker_url, left))
    remaining = [q for q in (_broker_queues() or []) if q.startswith(prefixes)]
    assert not remaining, f"queues of this test run left on the broker: {remaining[:20]}"


@pytest.fixture
async def settings(broker_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings of an isolated deployment: its own namespace on the broker, its own files."""
    namespace = fresh_namespace()
    yield Settings(
        environment=Environment.DEVELOPMENT,
        broker_url=broker_url,
        namespace=namespace,
        data_dir=tmp_path / "data",
        retry_backoff_seconds=0.05,
        outbox_poll_seconds=0.2,
        max_deliveries=3,
        log_json=True,
        # Services started in the test process serve no HTTP unless a test asks.
        intake_http_port=None,
        regulation_http_port=None,
        scheduler_http_port=None,
        notifier_http_port=None,
    )
    await asyncio.wait_for(delete_topology(broker_url, namespace), 30)
