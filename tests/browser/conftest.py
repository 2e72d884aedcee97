"""The four services and the console as processes, and a headless Chromium to drive it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiguillage.console.screenshots import chromium, chromium_paths
from aiguillage.processes import ServiceProcesses
from shared.http import free_port
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
    # Chosen first: the notifier writes the patient's link to the console's address.
    port = free_port()
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
            "AIGUILLAGE_PATIENT_LINK_BASE_URL": f"http://127.0.0.1:{port}",
        },
        tmp_path / "logs",
    )
    services.start()
    log = tmp_path / "logs" / "console.log"
    with log.open("ab") as out:
        console = subprocess.Popen(
            [sys.executable, "-m", "aiguillage", "console", "--port", str(port)],
            env=services.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/sante", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if console.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield Stack(services, url, console, log)
    finally:
        console.terminate()
        try:
            console.wait(20)
        except subprocess.TimeoutExpired:
            console.kill()
        services.stop()
        print(f"--- console log ---\n{log.read_text(errors='replace')[-3000:]}")
        for service in ServiceName:
            print(f"--- {service.value} log ---\n{services.log(service)[-2000:]}")


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver
