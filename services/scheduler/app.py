"""The scheduler service process: its wiring, and ``ROUTES``, which handler takes each
event its queues receive (the queues' bindings are in shared/topology.py)."""

from __future__ import annotations

from functools import partial

from services.scheduler.domain.assignment import Weights
from services.scheduler.domain.policy import PolicySettings
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from services.scheduler.handlers.figures import collect_figures
from services.scheduler.handlers.forecasts import ForecastWatch
from services.scheduler.handlers.reinforcements import ReinforcementWatch
from services.scheduler.handlers.retention import purge_steps
from services.scheduler.http.centres import router as centres_router
from services.scheduler.http.forecasts import router as forecasts_router
from services.scheduler.http.patient import build_patient_router
from services.scheduler.http.reinforcements import router as reinforcements_router
from services.scheduler.http.state import SchedulerApi
from services.scheduler.http.territory import router as territory_router
from shared.auth import authenticator
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    PatientEscalated,
    PatientRelocated,
    ReferralCancelled,
    ReferralRegulated,
    ReinforcementAcknowledged,
    ReinforcementDeclined,
    ReinforcementGranted,
    ReinforcementRequested,
)
from shared.retention import Retention
from shared.routing import Route
from shared.runtime import ConsumeOptions, ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import CentreQueues

H = SchedulerHandlers
ROUTES: tuple[Route[SchedulerHandlers], ...] = (
    # The ARS's door: its decisions about centres, in order on one queue.
    Route("centres", CentreActivated, H.on_centre_activated),
    Route("centres", CentreCapacityChanged, H.on_capacity_changed),
    Route("centres", CentreSuspended, H.on_centre_suspended),
    Route("centres", CentreClosed, H.on_centre_closed),
    # ... and its answers to its region's centres' requests for reinforcement.
    Route("centres", ReinforcementAcknowledged, H.on_reinforcement_acknowledged),
    Route("centres", ReinforcementGranted, H.on_reinforcement_granted),
    Route("centres", ReinforcementDeclined, H.on_reinforcement_declined),
    # Regulated referrals (booked in batches: plan_batch below) and withdrawn ones.
    Route("referrals", ReferralRegulated, H.on_regulated),
    Route("referrals", ReferralCancelled, H.on_cancelled),
    # A booked patient now elsewhere (intake, from the referrer's correction).
    Route("referrals", PatientRelocated, H.on_relocated),
    # The centres' door: what each reports of its own appointments.
    Route("consultations", ConsultationCompleted, H.on_completed),
    Route("consultations", ConsultationNoShow, H.on_no_show),
    Route("consultations", ConsultationCancelled, H.on_consultation_cancelled),
    Route("consultations", ConsultationCorrected, H.on_corrected),
    Route("consultations", PatientEscalated, H.on_escalated),
    Route("consultations", ReinforcementRequested, H.on_reinforcement),
)


def _config(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        weights=Weights(travel_per_km=settings.travel_weight, wait_per_minute=settings.wait_weight),
        max_travel_km=settings.max_travel_km,
        candidate_centres=settings.candidate_centres,
        lead_minutes=settings.booking_lead_minutes,
        joint_batch=settings.joint_batch,
        saturation_threshold=settings.saturation_threshold,
        forecast_alert_hours=settings.forecast_alert_hours,
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
    )


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.SCHEDULER, settings, "services.scheduler:migrations", in_memory
    )

    centre_queues = CentreQueues(settings.broker_nodes, settings.namespace)
    runtime.on_shutdown(centre_queues.close)

    async def provision_centre(centre_id: str) -> None:
        if not in_memory:
            await centre_queues.ensure(centre_id)

    handlers = SchedulerHandlers(_config(settings), provision_centre)
    # A batch of the referrals queue is planned together before its handlers run (the
    # joint assignment); the batch holds its cancellations too, which plan_batch skips.
    runtime.route(handlers, ROUTES, {"referrals": ConsumeOptions(prepare=handlers.plan_batch)})
    # /metrics: the waiting list and today's free places, read before a scrape.
    runtime.metrics.on_collect(partial(collect_figures, runtime.database))
    # Requests left unanswered for two hours, raised again to the ARS (once each).
    watch = ReinforcementWatch(runtime.database, handlers.clock, runtime.relay.notify)
    # Each département's saturation forecast, every 15 minutes (issue 31).
    forecasts = ForecastWatch(
        runtime.database,
        handlers.clock,
        runtime.relay.notify,
        settings.forecast_every_seconds,
        settings.forecast_alert_hours,
        due=handlers.forecasts_due,  # the ARS's decisions' départements, coalesced
    )
    if not in_memory:
        runtime.on_startup(watch.start)
        runtime.on_shutdown(watch.stop)
        runtime.on_startup(forecasts.start)
        runtime.on_shutdown(forecasts.stop)
    runtime.http_app.state.scheduler = SchedulerApi(
        runtime.database,
        runtime.publish_at_door,
        authenticator(settings, ServiceName.SCHEDULER),
    )
    runtime.http_app.include_router(territory_router)
    # A département's saturation forecast, as the ARS's page draws it (issue 31).
    runtime.http_app.include_router(forecasts_router)
    # The requests for reinforcement: the ARS answers, the centre reads (issue 30).
    runtime.http_app.include_router(reinforcements_router)
    # What a centre reads of the decisions behind its patients (its page, issue 30).
    runtime.http_app.include_router(centres_router)
    # Issue 17: the patient's link reads their appointment and asks for another slot.
    runtime.http_app.include_router(
        build_patient_router(handlers, runtime.database, runtime.relay, settings.patient_link_key)
    )
    # What is past its retention goes, on a schedule (issue 34).
    runtime.retain(purge_steps(Retention.of(settings)))
    return runtime
