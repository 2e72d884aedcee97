"""The regulation service process."""

from __future__ import annotations

import structlog

from services.regulation.api import build_router
from services.regulation.domain.protocol import default_protocol
from services.regulation.handlers import RegulationHandlers
from services.regulation.store import ProtocolBook
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.territory import Territories

log = structlog.get_logger(__name__)


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.REGULATION, settings, "services.regulation:migrations", in_memory
    )
    book = ProtocolBook(default_protocol())

    async def protocol_at_start() -> None:
        # After the migrations (startup hooks run after them): v1 on a new database,
        # otherwise the version that applied before the restart.
        active = await book.ensure_default(runtime.database)
        log.info("protocol version applies", protocol_version=active.version)

    runtime.on_startup(protocol_at_start)
    territories = Territories.of(settings)
    handlers = RegulationHandlers(book, territories)
    runtime.consume("referrals", handlers.on_received)
    runtime.consume("decisions", handlers.on_decision)
    runtime.http_app.include_router(
        build_router(runtime.database, runtime.relay, book, settings, territories)
    )
    return runtime
