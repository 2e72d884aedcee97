"""The intake service process."""

from __future__ import annotations

from services.intake.api import build_router, document_referral_schema
from services.intake.handlers import IntakeHandlers, by_referrer
from services.intake.patient_link import build_patient_router
from services.intake.referrer_list import build_list_router
from services.intake.withdrawal import build_withdrawal_router
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(ServiceName.INTAKE, settings, "services.intake:migrations", in_memory)
    handlers = IntakeHandlers(settings)
    # A batch's submissions in referrer order: each locks its referrer's quota rows. A
    # quota known spent is refused before its submission joins a batch (issue 28).
    runtime.consume("submissions", handlers.on_submitted, order=by_referrer, gate=handlers.gate)
    runtime.consume("outcomes", handlers.on_outcome)
    runtime.http_app.include_router(
        build_router(handlers, runtime.database, runtime.relay, settings)
    )
    # Issue 17: a referrer's own list, and the patient's cancellation by their link.
    runtime.http_app.include_router(build_list_router(runtime.database, settings))
    runtime.http_app.include_router(
        build_patient_router(handlers, runtime.database, runtime.relay, settings.patient_link_key)
    )
    # Issue 27: a referrer withdraws its own referral, with a reason from the list.
    runtime.http_app.include_router(
        build_withdrawal_router(handlers, runtime.database, runtime.relay, settings)
    )
    document_referral_schema(runtime.http_app)
    return runtime
