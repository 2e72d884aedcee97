"""The four services and the console as processes, and a headless Chromium to drive it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aiguillage.console.screenshots import chromium, chromium_paths
from aiguillage.processes import ServiceProcesses
from shared.settings import ServiceName, Settings


@dataclass
class Stack:
    services: ServiceProcesses
    url: str
    console: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    if chromium_paths() is None:
        pytest.skip("no Chromium: apt-get install -y chromium chromium-driver")
    services = ServiceProcesses(
        {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
            "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
            # Plain http on 127.0.0.1: Secure cookies would not come back.
            "AIGUILLAGE_CONSOLE_SECURE_COOKIES": "false",
        },
        tmp_path / "logs",
    )
    log = tmp_path / "logs" / "console.log"
    try:
        # The console first: the notifier writes the patient's link to its address.
        url = f"http://127.0.0.1:{services.start_console()}"
        services.env["AIGUILLAGE_PATIENT_LINK_BASE_URL"] = url
        services.start()
        assert services.console is not None
        yield Stack(services, url, services.console, log)
    finally:
        services.stop_console()
        services.stop()
        print(f"--- console log ---\n{log.read_text(errors='replace')[-3000:]}")
        for service in ServiceName:
            print(f"--- {service.value} log ---\n{services.log(service)[-2000:]}")


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver
