"""Each service's OpenAPI is true to what it answers: schemathesis generates requests
from the document the service serves (valid and invalid ones, with and without a
token), sends them to the running service and checks every answer against it (all its
checks: no 500, only documented statuses, bodies that fit their schemas, invalid data
refused, valid data accepted...).

Each service runs in this process, in a thread of its own with its own event loop and
HTTP port, so that schemathesis (synchronous, over real HTTP) never blocks the loop
that serves it. The examples are few: this is a contract check, not a load test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from shared.auth import Role, issue_token
from shared.http import read_port_file
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import delete_topology
from tests.helpers import fresh_namespace, running

pytestmark = pytest.mark.integration

BUILDERS: dict[ServiceName, Callable[[Settings], ServiceRuntime]] = {
    ServiceName.INTAKE: build_intake,
    ServiceName.REGULATION: build_regulation,
    ServiceName.SCHEDULER: build_scheduler,
    ServiceName.NOTIFIER: build_notifier,
}
# Who calls each service: the actor its routes are for.
CALLERS = {
    ServiceName.INTAKE: (Role.REFERRER, "gp:10001234567"),
    ServiceName.REGULATION: (Role.CENTRE_15, "samu-35"),
    ServiceName.SCHEDULER: (Role.ARS, "53"),
    ServiceName.NOTIFIER: (Role.CENTRE, "rennes-1"),
}
# The base URL of a running service, the caller's token, the OpenAPI it serves.
Served = tuple[str, dict[str, str], dict[str, Any]]
EXAMPLES = hsettings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


class ServiceThread:
    """A service started (``tests.helpers.running``) in a thread with its own loop."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=runtime.service.value)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the test, which says what failed
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running(self.runtime):
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        assert self._ready.wait(90), f"{self.runtime.service.value} did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(90)


def _settings(broker_url: str, data_dir: Path, service: ServiceName) -> Settings:
    return Settings.model_validate(
        {
            "broker_url": broker_url,
            "namespace": fresh_namespace("t-oa"),
            "data_dir": data_dir,
            "outbox_poll_seconds": 0.2,
            "intake_http_port": None,
            "regulation_http_port": None,
            "scheduler_http_port": None,
            "notifier_http_port": None,
            # Port 0 and a port file: the service binds a free port and says which.
            f"{service.value}_http_port": 0,
            "port_file_dir": data_dir / "ports",
        }
    )


def _served(service: ServiceName, broker_url: str, tmp: pytest.TempPathFactory) -> Iterator[Served]:
    settings = _settings(broker_url, tmp.mktemp(service.value), service)
    try:
        with ServiceThread(BUILDERS[service](settings)):
            assert settings.port_file_dir is not None
            base = f"http://127.0.0.1:{read_port_file(settings.port_file_dir, service.value)}"
            document = httpx.get(f"{base}/openapi.json").json()
            role, subject = CALLERS[service]
            token = issue_token(settings, role, subject, service)
            yield base, {"Authorization": f"Bearer {token}"}, document
    finally:
        asyncio.run(asyncio.wait_for(delete_topology(broker_url, settings.namespace), 30))


# One fixture per service, so that each service runs only while its cases do.
@pytest.fixture(scope="module")
def intake_api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(ServiceName.INTAKE, broker_url, tmp_path_factory)


@pytest.fixture(scope="module")
def regulation_api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(ServiceName.REGULATION, broker_url, tmp_path_factory)


@pytest.fixture(scope="module")
def scheduler_api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(ServiceName.SCHEDULER, broker_url, tmp_path_factory)


@pytest.fixture(scope="module")
def notifier_api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(ServiceName.NOTIFIER, broker_url, tmp_path_factory)


def _document(service: ServiceName) -> dict[str, Any]:
    """The OpenAPI the service's app serves, read without starting it: schemathesis
    makes the cases when the module is collected (its lazy fixtures do not work with
    this pytest); each test checks the running service serves this same document."""
    runtime = BUILDERS[service](Settings(data_dir=Path("unused"), namespace="openapi"))
    return runtime.http_app.openapi()


def _check(case: Case[Any], served: Served, service: ServiceName) -> None:
    base, headers, document = served
    assert document == _DOCUMENTS[service], "the running service serves another OpenAPI"
    case.call_and_validate(base_url=base, headers=headers)


# The project's schemathesis.toml, the one `st run` reads, wherever pytest runs from.
CONFIG = SchemathesisConfig.from_path(Path(__file__).parents[2] / "schemathesis.toml")
_DOCUMENTS = {service: _document(service) for service in BUILDERS}
intake = schemathesis.openapi.from_dict(_DOCUMENTS[ServiceName.INTAKE], config=CONFIG)
regulation = schemathesis.openapi.from_dict(_DOCUMENTS[ServiceName.REGULATION], config=CONFIG)
scheduler = schemathesis.openapi.from_dict(_DOCUMENTS[ServiceName.SCHEDULER], config=CONFIG)
notifier = schemathesis.openapi.from_dict(_DOCUMENTS[ServiceName.NOTIFIER], config=CONFIG)


@intake.parametrize()
@EXAMPLES
def test_intake_answers_as_its_openapi_says(case: Case[Any], intake_api: Served) -> None:
    _check(case, intake_api, ServiceName.INTAKE)


@regulation.parametrize()
@EXAMPLES
def test_regulation_answers_as_its_openapi_says(case: Case[Any], regulation_api: Served) -> None:
    _check(case, regulation_api, ServiceName.REGULATION)


@scheduler.parametrize()
@EXAMPLES
def test_scheduler_answers_as_its_openapi_says(case: Case[Any], scheduler_api: Served) -> None:
    _check(case, scheduler_api, ServiceName.SCHEDULER)


@notifier.parametrize()
@EXAMPLES
def test_notifier_answers_as_its_openapi_says(case: Case[Any], notifier_api: Served) -> None:
    _check(case, notifier_api, ServiceName.NOTIFIER)
