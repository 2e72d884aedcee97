"""A command refused by the real broker, or with no broker to talk to, says so in one
line with what to do and exits non-zero: no ACCESS_REFUSED traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from shared.provisioning import Rabbitmqctl
from shared.provisioning import broker_url as url_for
from shared.settings import get_settings
from shared.topology import centre_queue, declare_topology

pytestmark = pytest.mark.integration

# The broker's node, when the tests use another one than rabbitmqctl's default.
NODE = os.environ.get("AIGUILLAGE_TEST_RABBITMQ_NODE")


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    # The commands read the environment through the cached settings: fresh each time.
    get_settings.cache_clear()
    # And logging as in a fresh `aiguillage` process: none configured (a service test
    # before this one may have left a handler on a stream pytest has closed since).
    root = logging.getLogger()
    handlers, root.handlers[:] = root.handlers[:], []
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        root.handlers[:] = handlers
        get_settings.cache_clear()


@dataclass(frozen=True)
class Stranger:
    """A broker user with no permission at all on a virtual host that has the topology."""

    url: str
    vhost: str
    namespace: str


@pytest.fixture
def stranger(broker_url: str) -> Iterator[Stranger]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl to create a throwaway user")
    ctl = Rabbitmqctl(node=NODE)
    tag = uuid.uuid4().hex[:10]
    vhost, user, password, namespace = f"aig-cli-{tag}", f"aig-cli-{tag}", f"pw-{tag}", "cli"
    parts = urlsplit(broker_url)
    admin, admin_password = unquote(parts.username or ""), unquote(parts.password or "")
    try:
        ctl.run("add_vhost", vhost)
        # The operator (the tests' user) declares the namespace there, as provisioning would.
        ctl.run("set_permissions", "-p", vhost, admin, ".*", ".*", ".*")
        operator = url_for(broker_url, admin, admin_password, vhost)
        asyncio.run(
            declare_topology(operator, namespace, [centre_queue(namespace, "other-centre")])
        )
        ctl.run("add_user", user, password)
        ctl.run("set_permissions", "-p", vhost, user, "", "", "")
        yield Stranger(url_for(broker_url, user, password, vhost), vhost, namespace)
    finally:
        for args in (("delete_user", user), ("delete_vhost", vhost)):
            try:
                ctl.run(*args)
            except Exception as exc:  # the other clean-up still runs
                print(f"clean-up: {exc}")


def test_centre_listen_to_a_queue_it_may_not_read_is_one_line(stranger: Stranger) -> None:
    result = _invoke(
        ["centre", "listen", "other-centre", "--timeout", "5"],
        {"AIGUILLAGE_BROKER_URL": stranger.url, "AIGUILLAGE_NAMESPACE": stranger.namespace},
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("error: the broker refused: ACCESS_REFUSED - access to queue ")
    assert f"'{stranger.namespace}.centre.other-centre'" in line
    assert "aiguillage broker provision" in line  # what to do
    assert "Traceback" not in result.output


def test_centre_listen_to_a_namespace_not_provisioned_is_one_line(stranger: Stranger) -> None:
    result = _invoke(
        ["centre", "listen", "other-centre", "--timeout", "5"],
        {"AIGUILLAGE_BROKER_URL": stranger.url, "AIGUILLAGE_NAMESPACE": "never-provisioned"},
    )
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: exchange 'never-provisioned.")
    assert "aiguillage broker provision" in line


def test_centre_listen_without_a_broker_is_one_line() -> None:
    from shared.http import free_port

    result = _invoke(
        ["centre", "listen", "other-centre", "--timeout", "5"],
        {"AIGUILLAGE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"},
    )
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("RabbitMQ ne répond pas sur 127.0.0.1:")
    assert "démarrez-le (rabbitmq-server -detached) ou réglez AIGUILLAGE_BROKER_URL." in line
