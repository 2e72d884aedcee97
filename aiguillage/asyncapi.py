"""The AsyncAPI document, generated from the code: each service's subscribers, and a
publisher per event type with its envelope schema."""

from __future__ import annotations

import importlib

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from shared.contracts import PUBLISHERS, routing_key_pattern, typed_envelope
from shared.runtime import events_exchange_ref
from shared.settings import ServiceName, Settings

DESCRIPTION = """Aiguillage routes Covid-19 patients, after medical regulation by Centre 15,
to the ambulatory consultation centres the ARS activates. One topic exchange carries
every event; the event type is the routing key (with the centre id appended where a
centre must receive it alone). Every message is an envelope (id, type, version, time,
source, correlation id, causation id) with the payload under `data`."""


def build_brokers(settings: Settings) -> list[RabbitBroker]:
    brokers = []
    for service in ServiceName:
        module = importlib.import_module(f"services.{service.value}.app")
        brokers.append(module.build(settings).broker)
    external = RabbitBroker(settings.broker_url, description="External actors")
    brokers.append(external)
    exchange = events_exchange_ref(settings.namespace)
    by_service = {b.config.app_id if hasattr(b, "config") else "": b for b in brokers}
    for producer, events in PUBLISHERS.items():
        broker = by_service.get(producer, external)
        for cls in events:
            broker.publisher(
                routing_key=routing_key_pattern(cls),
                exchange=exchange,
                persist=True,
                title=f"{producer}:{cls.event_type}",
                description=(cls.__doc__ or cls.event_type).strip(),
                schema=typed_envelope(cls),
            )
    return brokers


def render() -> str:
    settings = Settings(namespace="aiguillage")
    spec = AsyncAPI(
        *build_brokers(settings),
        title="Aiguillage events",
        version="1.0.0",
        description=DESCRIPTION,
        schema_version="3.0.0",
    )
    return spec.to_specification().to_yaml()
