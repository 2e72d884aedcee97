"""The scheduler service process."""

from __future__ import annotations

from services.scheduler.api import build_router
from services.scheduler.domain.assignment import Weights
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import ensure_centre_queue


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.SCHEDULER, settings, "services.scheduler:migrations", in_memory
    )

    async def provision_centre(centre_id: str) -> None:
        if not in_memory:
            await ensure_centre_queue(settings.broker_url, settings.namespace, centre_id)

    handlers = SchedulerHandlers(
        SchedulerConfig(
            weights=Weights(
                travel_per_km=settings.travel_weight, wait_per_minute=settings.wait_weight
            ),
            max_travel_km=settings.max_travel_km,
            candidate_centres=settings.candidate_centres,
            saturation_threshold=settings.saturation_threshold,
        ),
        provision_centre,
    )
    runtime.consume("centres", handlers.on_centre)
    runtime.consume("referrals", handlers.on_referral)
    runtime.consume("consultations", handlers.on_consultation)
    runtime.http_app.include_router(
        build_router(runtime.database, runtime.publish_at_door, settings)
    )
    return runtime
