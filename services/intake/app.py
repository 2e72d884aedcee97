"""The intake service process: its routes (``ROUTES``) and its wiring (``build``)."""

from __future__ import annotations

from services.intake.handlers import IntakeHandlers, by_referrer
from services.intake.handlers.retention import purge_steps
from services.intake.http import install
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    PatientEscalated,
    ReferralCancelled,
    ReferralRegulated,
    ReferralSubmitted,
    ReferralUpdated,
    ReferralWaitlisted,
    SlotAssigned,
)
from shared.retention import Retention
from shared.routing import Route
from shared.runtime import ConsumeOptions, ServiceRuntime
from shared.settings import ServiceName, Settings

H = IntakeHandlers
ROUTES: tuple[Route[IntakeHandlers], ...] = (
    Route("submissions", ReferralSubmitted, H.on_submitted),
    Route("submissions", ReferralCancelled, H.on_cancelled),
    Route("submissions", ReferralUpdated, H.on_updated),
    # What became of each referral downstream: one path for all (domain.status).
    Route("outcomes", ReferralRegulated, H.on_outcome),
    Route("outcomes", ReferralWaitlisted, H.on_outcome),
    Route("outcomes", SlotAssigned, H.on_outcome),
    Route("outcomes", AppointmentRescheduled, H.on_outcome),
    Route("outcomes", AppointmentCancelled, H.on_outcome),
    Route("outcomes", ConsultationCompleted, H.on_outcome),
    Route("outcomes", ConsultationNoShow, H.on_outcome),
    Route("outcomes", ConsultationCancelled, H.on_outcome),
    Route("outcomes", ConsultationCorrected, H.on_outcome),
    Route("outcomes", PatientEscalated, H.on_outcome),
)


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(ServiceName.INTAKE, settings, "services.intake:migrations", in_memory)
    handlers = IntakeHandlers(settings)
    # A batch's submissions in referrer order: each locks its referrer's quota rows. A
    # quota known spent is refused before its submission joins a batch (issue 28).
    submissions = ConsumeOptions(order=by_referrer, gate=handlers.gate)
    runtime.route(handlers, ROUTES, {"submissions": submissions})
    install(runtime.http_app, handlers, runtime.database, runtime.relay, settings)
    # What is past its retention goes, on a schedule (issue 34).
    runtime.retain(purge_steps(Retention.of(settings)))
    return runtime
