"""Which server an error says is down, and the one French line for it (aiguillage/reach.py):
placed by the client library that raised it, never a bug taken for a server down."""

from __future__ import annotations

import types
from typing import Any

import httpx
import pytest
from aiormq.exceptions import ProbableAuthenticationError
from asyncpg.exceptions import InvalidCatalogNameError

from aiguillage.console.screenshots import ChromiumMissing
from aiguillage.errors import diagnose
from aiguillage.reach import (
    Kind,
    Unreachable,
    broker,
    database,
    line_for,
    origin,
    reaching,
    untagged_servers,
)
from shared.settings import ServiceName, Settings

SETTINGS = Settings(
    broker_url="amqp://guest:guest@rabbit.local:5673/",
    intake_database_url="postgresql+asyncpg://postgres@pg.local:5433/intake",
    scheduler_http_port=8103,
)


def _throw(error: BaseException) -> None:
    raise error


def raised_in(module: str, error: BaseException) -> BaseException:
    """``error`` as raised by code of ``module`` (its frame names it, as a library's)."""
    fail: Any = types.FunctionType(_throw.__code__, {"__name__": module})
    try:
        fail(error)
    except BaseException as exc:
        return exc
    raise AssertionError("not raised")


def test_a_timeout_in_the_broker_client_is_the_broker_down() -> None:
    # What issue 27 saw: aiormq's connect timing out on a port that never answers.
    error = raised_in("aiormq.connection", TimeoutError())
    assert origin(error) is Kind.BROKER
    assert line_for(error, [broker(SETTINGS)]) == (
        "RabbitMQ ne répond pas sur rabbit.local:5673 : démarrez-le "
        "(rabbitmq-server -detached) ou réglez AIGUILLAGE_BROKER_URL."
    )


def test_a_cluster_names_every_node_and_its_setting() -> None:
    nodes = Settings(broker_urls=["amqp://a:5672/", "amqps://b/"])
    line = broker(nodes).down()
    assert line.startswith("RabbitMQ ne répond pas sur a:5672, b:5671 : ")
    assert line.endswith(" ou réglez AIGUILLAGE_BROKER_URLS.")


def test_the_commands_own_errors_are_bugs() -> None:
    # A timeout or a missing file in the command's own code: the traceback stays.
    for error in (raised_in("aiguillage.commands.centre", TimeoutError()), KeyError("x")):
        assert origin(error) is None
        assert diagnose(error) is None
    # A bug inside a client library is no server down either.
    assert line_for(raised_in("aiormq.channel", TypeError("x")), [broker(SETTINGS)]) is None


def test_a_database_down_names_its_setting_and_how_to_start_it() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('pg.local', 5433)")
    error = raised_in("asyncpg.connect_utils", refused)
    line = line_for(error, [broker(SETTINGS), database(SETTINGS, ServiceName.INTAKE)])
    assert line is not None
    assert line.startswith(
        "PostgreSQL ne répond pas sur pg.local:5433 : démarrez-le (pg_ctlcluster "
    )
    assert line.endswith(" start) ou réglez AIGUILLAGE_INTAKE_DATABASE_URL.")


def test_a_database_that_answers_no_says_what_to_check() -> None:
    missing = InvalidCatalogNameError('database "intake" does not exist')
    wrapper = RuntimeError("(sqlalchemy) database does not exist")
    wrapper.__cause__ = missing
    error = raised_in("sqlalchemy.engine.base", wrapper)
    assert line_for(error, [database(SETTINGS, ServiceName.INTAKE)]) == (
        'PostgreSQL sur pg.local:5433 refuse la connexion (database "intake" does not '
        "exist) : vérifiez AIGUILLAGE_INTAKE_DATABASE_URL."
    )


def test_reaching_a_database_leaves_a_broker_error_to_the_broker() -> None:
    error = raised_in("aio_pika.connection", ConnectionRefusedError(111, "refused"))
    with pytest.raises(ConnectionRefusedError), reaching(database(SETTINGS, "console")):
        raise error
    intake = database(SETTINGS, ServiceName.INTAKE)
    with pytest.raises(Unreachable, match=r"^PostgreSQL ne répond pas sur pg\.local:5433"):  # noqa: SIM117
        with reaching(intake):
            raise raised_in("asyncpg.connection", TimeoutError())


def test_an_http_api_not_answering_is_found_by_its_port() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:8103/reinforcements")
    error = raised_in("httpcore._async", httpx.ConnectError("refused", request=request))
    line = line_for(error, untagged_servers(error, SETTINGS))
    assert line == (
        "L'API HTTP de scheduler ne répond pas sur 127.0.0.1:8103 : démarrez le service "
        "(aiguillage run scheduler) ou réglez AIGUILLAGE_SCHEDULER_HTTP_PORT."
    )


def test_exit_codes_a_server_down_2_the_rest_1() -> None:
    down = diagnose(Unreachable("RabbitMQ ne répond pas sur x : ..."))
    assert down is not None and down.exit_code == 2
    refused = diagnose(ProbableAuthenticationError("ACCESS_REFUSED - Login was refused."))
    assert refused is not None and refused.exit_code == 1
    assert refused.line.startswith("error: the broker refused the log-in")
    chromium = diagnose(ChromiumMissing("no Chromium on the PATH"))
    assert chromium is not None and chromium.exit_code == 1
