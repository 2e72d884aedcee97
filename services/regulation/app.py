"""The regulation service process."""

from __future__ import annotations

from services.regulation.domain.protocol import default_protocol
from services.regulation.handlers import RegulationHandlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.REGULATION, settings, "services.regulation:migrations", in_memory
    )
    handlers = RegulationHandlers(default_protocol())
    runtime.consume("referrals", handlers.on_received)
    return runtime
