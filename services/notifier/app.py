"""The notifier service process."""

from __future__ import annotations

import json
from typing import Any

from faststream.rabbit import RabbitExchange

from services.notifier.api import build_router
from services.notifier.channels import HttpSms, PatientChannel, RecordChannel, SmtpEmail, Webhook
from services.notifier.dispatcher import Dispatcher
from services.notifier.handlers import NotifierHandlers
from services.notifier.patient_links import patient_link_for
from shared.http import development
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.territory import Territories
from shared.topology import CentreQueues, dead_letter_exchange
from shared.webhooks import WebhookPolicy


def patient_channels(settings: Settings) -> list[PatientChannel]:
    channels: list[PatientChannel] = []
    for name in settings.patient_channels:
        if name == "record":
            channels.append(RecordChannel())
        elif name == "email":
            channels.append(
                SmtpEmail(
                    settings.smtp_host,
                    settings.smtp_port,
                    settings.mail_from,
                    settings.smtp_username,
                    settings.smtp_password,
                    settings.smtp_starttls,
                )
            )
        elif name == "sms":
            if not settings.sms_gateway_url:
                raise ValueError("AIGUILLAGE_SMS_GATEWAY_URL is needed for the sms channel")
            channels.append(HttpSms(settings.sms_gateway_url, settings.sms_api_key))
        else:
            raise ValueError(f"unknown patient channel {name!r} (record, email, sms)")
    return channels


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
    )
    handlers = NotifierHandlers(
        channels, provision_centre, patient_link_for(settings), Territories.of(settings)
    )
    runtime.consume("assignments", handlers.on_assignment)
    runtime.consume("contacts", handlers.on_contact)
    runtime.consume("referrals", handlers.on_referral)
    runtime.consume("centres", handlers.on_centre)
    runtime.on_startup(dispatcher.start)
    runtime.on_shutdown(dispatcher.stop)
    runtime.http_app.include_router(
        build_router(runtime.database, runtime.publish_at_door, settings)
    )
    return runtime
