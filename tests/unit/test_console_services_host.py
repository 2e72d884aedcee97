"""Where the console reaches the services: one host (a machine, compose), or each
service on its own (Kubernetes: AIGUILLAGE_SERVICES_HOST='{service}')."""

from __future__ import annotations

from typing import Any, cast

from aiguillage.console.common import Console
from shared.settings import Settings


def test_one_host_for_all_services() -> None:
    console = Console(Settings(http_host="0.0.0.0"), hub=cast(Any, None))
    assert console.base_url("scheduler") == "http://127.0.0.1:8003"


def test_each_service_on_its_own_host() -> None:
    settings = Settings(http_host="0.0.0.0", services_host="{service}.aiguillage.svc")
    console = Console(settings, hub=cast(Any, None))
    assert console.base_url("intake") == "http://intake.aiguillage.svc:8001"
    assert console.base_url("notifier") == "http://notifier.aiguillage.svc:8004"
