"""The AsyncAPI document, generated from the code: each service's subscribers, and a
publisher per event type with its envelope schema."""

from __future__ import annotations

import importlib

import yaml
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange
from faststream.specification import AsyncAPI

from shared.contracts import OUTSIDE_PRODUCERS, PUBLISHERS, routing_key_pattern, typed_envelope
from shared.runtime import events_exchange_ref
from shared.settings import ServiceName, Settings
from shared.topology import ingress_exchange

DESCRIPTION = (
    "Aiguillage routes Covid-19 patients, after medical regulation by Centre 15, to the "
    "ambulatory consultation centres the ARS activates. Two topic exchanges: outside actors "
    "(referrers, Centre 15, the ARS, centres) publish on `<ns>.ingress` only, where each "
    "message is checked against its sender (the AMQP user_id) by the service whose door it "
    "is; the services publish on `<ns>.events`. The event type is the routing key (with "
    "the centre id appended where a centre must receive it alone, or sends for itself). "
    "Every message is an envelope (id, type, version, time, source, correlation id, "
    "causation id) with the payload under `data`."
)


def build_brokers(settings: Settings) -> list[RabbitBroker]:
    by_service: dict[str, RabbitBroker] = {}
    for service in ServiceName:
        module = importlib.import_module(f"services.{service.value}.app")
        by_service[service.value] = module.build(settings).broker
    external = RabbitBroker(
        settings.broker_url, description="External actors: referrers, Centre 15, the ARS, centres"
    )
    bus = events_exchange_ref(settings.namespace)
    ingress = RabbitExchange(
        ingress_exchange(settings.namespace), type=ExchangeType.TOPIC, durable=True, declare=False
    )
    for producer, events in PUBLISHERS.items():
        broker = by_service.get(producer, external)
        exchange = ingress if producer in OUTSIDE_PRODUCERS else bus
        for cls in events:
            broker.publisher(
                routing_key=routing_key_pattern(cls),
                exchange=exchange,
                persist=True,
                title=f"{producer}:{cls.event_type}",
                description=(cls.__doc__ or cls.event_type).strip(),
                schema=typed_envelope(cls),
            )
    return [*by_service.values(), external]


def render() -> str:
    settings = Settings(namespace="aiguillage")
    spec = AsyncAPI(
        *build_brokers(settings),
        title="Aiguillage events",
        version="1.0.0",
        description=DESCRIPTION,
        schema_version="3.0.0",
    )
    # Sorted keys: the same code gives the same document, whatever the registration order.
    document = spec.to_specification().to_jsonable()
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)
