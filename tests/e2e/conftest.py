"""The four services as separate processes, for the test's own namespace and files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiguillage.processes import ServiceProcesses
from shared.settings import ServiceName, Settings


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[ServiceProcesses]:
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
            "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
        },
        tmp_path / "logs",
    )
    procs.start()
    try:
        yield procs
    finally:
        procs.stop()
        for service in ServiceName:  # shown by pytest when the test failed
            print(f"--- {service.value} log ---\n{procs.log(service)[-3000:]}")
