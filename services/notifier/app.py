"""The notifier service process: its wiring, and the table of which handler takes each
event type its queues receive (``ROUTES``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faststream.rabbit import RabbitExchange

from services.notifier.domain.oncall import OnCallContacts, parse_contacts
from services.notifier.handlers import Dispatcher, NotifierHandlers
from services.notifier.handlers.channels import Webhook, oncall_channels, patient_channels
from services.notifier.handlers.retention import purge_steps
from services.notifier.handlers.sealing import ContactVault
from services.notifier.http import centres
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CapacityAlert,
    CentreActivated,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    PatientContact,
    PatientEscalated,
    ReferralCancelled,
    ReferralRegulated,
    ReferralRejected,
    ReferralRestricted,
    ReferralWaitlisted,
    SlotAssigned,
)
from shared.http import development
from shared.patient_link import patient_link_for
from shared.retention import Retention
from shared.routing import Route
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.territory import Territories
from shared.topology import CentreQueues, dead_letter_exchange
from shared.webhooks import WebhookPolicy

ROUTES: tuple[Route[NotifierHandlers], ...] = (
    Route("assignments", SlotAssigned, NotifierHandlers.on_slot_assigned),
    Route("assignments", AppointmentRescheduled, NotifierHandlers.on_rescheduled),
    Route("assignments", AppointmentCancelled, NotifierHandlers.on_appointment_cancelled),
    Route("contacts", PatientContact, NotifierHandlers.on_contact),
    # No referral.received: the referrer comes with patient.contact.
    Route("referrals", ReferralRejected, NotifierHandlers.on_rejected),
    Route("referrals", ReferralRegulated, NotifierHandlers.on_regulated),
    Route("referrals", ReferralWaitlisted, NotifierHandlers.on_waitlisted),
    Route("referrals", ReferralCancelled, NotifierHandlers.on_withdrawn),
    Route("referrals", PatientEscalated, NotifierHandlers.on_escalated),
    Route("referrals", ConsultationNoShow, NotifierHandlers.on_no_show),
    Route("referrals", ConsultationCompleted, NotifierHandlers.on_completed),
    Route("referrals", ConsultationCancelled, NotifierHandlers.on_consultation_cancelled),
    Route("referrals", ConsultationCorrected, NotifierHandlers.on_corrected),
    Route("referrals", ReferralRestricted, NotifierHandlers.on_restricted),
    Route("centres", CentreActivated, NotifierHandlers.on_centre_activated),
    # The départements' alerts, e-mailed and texted to the ARS's on-call.
    Route("alerts", CapacityAlert, NotifierHandlers.on_capacity_alert),
)


def _oncall_contacts(settings: Settings) -> OnCallContacts:
    """AIGUILLAGE_ONCALL_CONTACTS: the JSON itself, or the path of a file holding it."""
    raw = settings.oncall_contacts
    if raw and not raw.lstrip().startswith("{"):
        raw = Path(raw).read_text(encoding="utf-8")
    return parse_contacts(raw)


def build(settings: Settings, *, in_memory: bool = False) -> ServiceRuntime:
    runtime = ServiceRuntime(
        ServiceName.NOTIFIER, settings, "services.notifier:migrations", in_memory
    )
    channels = patient_channels(settings)

    centre_queues = CentreQueues(settings.broker_nodes, settings.namespace)
    runtime.on_shutdown(centre_queues.close)

    async def provision_centre(centre_id: str) -> None:
        if not in_memory:
            await centre_queues.ensure(centre_id)

    dlx = RabbitExchange(
        dead_letter_exchange(settings.namespace, ServiceName.NOTIFIER.value), declare=False
    )

    async def dead_letter(document: dict[str, Any], error: str) -> None:
        await runtime.broker.publish(
            json.dumps(document).encode(),
            exchange=dlx,
            routing_key=ServiceName.NOTIFIER.value,
            headers={"x-error-code": "notification_failed", "x-error": error[:2000]},
            persist=True,
            mandatory=False,
        )

    oncall = _oncall_contacts(settings)
    to_oncall = oncall_channels(settings)
    # The contacts sealed at rest under the notifier's own data keys (issue 34).
    vault = ContactVault.of(settings)
    dispatcher = Dispatcher(
        runtime.database,
        runtime.relay,
        {c.name: c for c in channels},
        # Plain http and loopback receivers in development only (shared/webhooks.py).
        Webhook(
            settings.webhook_secret,
            policy=WebhookPolicy.for_environment(development(settings)),
        ),
        dead_letter,
        max_attempts=settings.notify_max_attempts,
        backoff_seconds=settings.notify_backoff_seconds,
        poll_seconds=min(settings.outbox_poll_seconds, 0.5),
        contact_messages_per_day=settings.contact_messages_per_day,
        metrics=runtime.metrics,
        oncall=oncall,
        oncall_channels={c.name: c for c in to_oncall},
        vault=vault,
    )
    handlers = NotifierHandlers(
        channels, provision_centre, patient_link_for(settings), Territories.of(settings), vault
    )
    handlers.oncall_contacts = oncall
    handlers.oncall_channels = to_oncall
    runtime.route(handlers, ROUTES)
    runtime.on_startup(dispatcher.start)
    runtime.on_shutdown(dispatcher.stop)
    centres.install(
        runtime.http_app, runtime.database, runtime.publish_at_door, settings, vault=vault
    )
    # What is past its retention goes, on a schedule (issue 34).
    runtime.retain(purge_steps(Retention.of(settings)))
    return runtime
