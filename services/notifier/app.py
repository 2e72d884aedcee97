"""The notifier service process."""

from __future__ import annotations

from services.notifier.handlers import NotifierHandlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.NOTIFIER, settings, "services.notifier:migrations", in_memory
    )
    handlers = NotifierHandlers()
    runtime.consume("assignments", handlers.on_assignment)
    runtime.consume("contacts", handlers.on_contact)
    return runtime
