"""The intake service process."""

from __future__ import annotations

from services.intake.handlers import IntakeHandlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(ServiceName.INTAKE, settings, "services.intake:migrations", in_memory)
    handlers = IntakeHandlers(settings)
    runtime.consume("submissions", handlers.on_submitted)
    return runtime
