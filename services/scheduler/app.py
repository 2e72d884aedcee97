"""The scheduler service process."""

from __future__ import annotations

from services.scheduler.handlers import SchedulerHandlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.SCHEDULER, settings, "services.scheduler:migrations", in_memory
    )
    handlers = SchedulerHandlers()
    runtime.consume("centres", handlers.on_centre)
    runtime.consume("referrals", handlers.on_regulated)
    runtime.consume("consultations", handlers.on_consultation)
    return runtime
