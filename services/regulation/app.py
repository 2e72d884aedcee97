"""The regulation service process: wiring only (what each queue's events go to is
``ROUTES``; the rooms are described in README.md)."""

from __future__ import annotations

import structlog

from services.regulation.domain.protocol import default_protocol
from services.regulation.handlers import RegulationHandlers
from services.regulation.handlers.retention import purge_steps
from services.regulation.http import RegulationApi, router
from services.regulation.store.protocols import ProtocolBook
from shared.auth import authenticator
from shared.events import PatientRelocated, ProtocolPublished, ReferralReceived, RegulationDecided
from shared.retention import Retention
from shared.routing import Route
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.territory import Territories

log = structlog.get_logger(__name__)

ROUTES: tuple[Route[RegulationHandlers], ...] = (
    Route("referrals", ReferralReceived, RegulationHandlers.on_received),
    Route("referrals", PatientRelocated, RegulationHandlers.on_relocated),
    Route("decisions", ProtocolPublished, RegulationHandlers.on_protocol_published),
    Route("decisions", RegulationDecided, RegulationHandlers.on_regulation_decided),
)


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
    runtime.route(RegulationHandlers(book, territories), ROUTES)
    runtime.http_app.state.regulation = RegulationApi(
        runtime.database,
        runtime.relay,
        book,
        authenticator(settings, ServiceName.REGULATION),
        territories,
    )
    runtime.http_app.include_router(router)
    # What is past its retention goes, on a schedule (issue 34).
    runtime.retain(purge_steps(Retention.of(settings)))
    return runtime
