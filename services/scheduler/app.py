"""The scheduler service process."""

from __future__ import annotations

from services.scheduler.api import build_router
from services.scheduler.domain.assignment import Weights
from services.scheduler.domain.policy import PolicySettings
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from services.scheduler.patient_requests import build_patient_router
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import CentreQueues


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.SCHEDULER, settings, "services.scheduler:migrations", in_memory
    )

    centre_queues = CentreQueues(settings.broker_nodes, settings.namespace)
    runtime.on_shutdown(centre_queues.close)

    async def provision_centre(centre_id: str) -> None:
        if not in_memory:
            await centre_queues.ensure(centre_id)

    handlers = SchedulerHandlers(
        SchedulerConfig(
            weights=Weights(
                travel_per_km=settings.travel_weight, wait_per_minute=settings.wait_weight
            ),
            max_travel_km=settings.max_travel_km,
            candidate_centres=settings.candidate_centres,
            lead_minutes=settings.booking_lead_minutes,
            joint_batch=settings.joint_batch,
            saturation_threshold=settings.saturation_threshold,
            policy=PolicySettings(
                forecast_minutes=settings.policy_forecast_minutes,
                rate_window_minutes=settings.policy_rate_window_minutes,
                area_km=settings.policy_area_km,
                reserve_minutes=settings.policy_reserve_minutes,
                reserve_factor=settings.policy_reserve_factor,
                few_options=settings.policy_few_options,
                few_hold_minutes=settings.policy_few_hold_minutes,
                few_hold_factor=settings.policy_few_hold_factor,
                few_urgent_factor=settings.policy_few_urgent_factor,
                rate_floor_minutes=settings.policy_rate_floor_minutes,
            ),
        ),
        provision_centre,
    )
    runtime.consume("centres", handlers.on_centre)
    runtime.consume("referrals", handlers.on_referral, prepare=handlers.plan_batch)
    runtime.consume("consultations", handlers.on_consultation)
    runtime.http_app.include_router(
        build_router(runtime.database, runtime.publish_at_door, settings)
    )
    # Issue 17: the patient's link reads their appointment and asks for another slot.
    runtime.http_app.include_router(
        build_patient_router(handlers, runtime.database, runtime.relay, settings.patient_link_key)
    )
    return runtime
