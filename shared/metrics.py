"""Each service's Prometheus figures, in a registry of its own (``/metrics`` on its HTTP
port: ``ServiceRuntime``).

One registry per runtime, never prometheus_client's global one: tests and the demo run
several services in one process, and each must expose its own counts.

Labels are bounded: a subscription (``service.queue``), an error code of ours, a
referrer kind, a decision, a channel, a département, a priority. Never a referral id,
never a person. What an event says is read from the envelopes a delivery committed
(``observe_emitted``): a dictionary lookup per event, no parsing.

FastStream's ``RabbitPrometheusMiddleware`` is not used: it labels each delivery with
its exchange and routing key, and a door's routing keys are chosen by the sender (and the
centres' queues carry a centre id in theirs), which would make the labels unbounded; and
our events leave by the outbox's own channel, never by the broker's ``publish``. The
consumer (``shared.consumer``) counts per subscription instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.events import Envelope
from shared.events.vocabulary import ReferrerKind

log = structlog.get_logger(__name__)

SUBMISSION_TO_BOOKING = "submission_to_booking"
# What a scrape may cost at most this often: the figures read from a database are read
# again only after this many seconds (Prometheus scrapes every 15 to 60 s).
COLLECT_EVERY_SECONDS = 5.0

_KINDS = frozenset(kind.value for kind in ReferrerKind)
_HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TRANSACTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# From a minute to a day: the objective is in minutes, a waiting list holds for hours.
_BOOKING_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
                    7200.0, 14400.0, 43200.0, 86400.0)  # fmt: skip

Collect = Callable[["ServiceMetrics"], Awaitable[None]]
# A metric with its labels bound (``Counter.labels(...)``): what a hot path increments.
CounterChild = Counter
HistogramChild = Histogram


def _kind(value: Any) -> str:
    return value if isinstance(value, str) and value in _KINDS else "unknown"


def _word(value: Any, longest: int = 32) -> str:
    """A label from an event's validated enum (decision, channel, priority): bounded by
    the enum, and cut all the same."""
    return value[:longest] if isinstance(value, str) and value else "unknown"


class ServiceMetrics:
    """The figures of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "aiguillage_deliveries", "Deliveries handled (committed) per subscription",
            ["subscription"], registry=r,
        )  # fmt: skip
        self.handling = Histogram(
            "aiguillage_handling_seconds",
            "From a delivery's arrival to its ack, per subscription (group commit included)",
            ["subscription"], buckets=_HANDLING_BUCKETS, registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "aiguillage_delivery_failures",
            "Deliveries whose handling failed and that go back to the queue for another try",
            ["subscription"], registry=r,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "aiguillage_dead_lettered", "Deliveries put in the dead-letter queue, by code",
            ["subscription", "code"], registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "aiguillage_refused", "Messages a door refused, by code",
            ["subscription", "code"], registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "aiguillage_inbox_duplicates",
            "Deliveries the inbox found already handled (a redelivery, a publish repeated)",
            ["subscription"], registry=r,
        )  # fmt: skip
        self.transactions = Histogram(
            "aiguillage_db_transaction_seconds", "Database transactions, begin to commit",
            buckets=_TRANSACTION_BUCKETS, registry=r,
        )  # fmt: skip
        self.outbox_pending = Gauge(
            "aiguillage_outbox_pending", "Outbox rows committed and not yet relayed",
            registry=r,
        )  # fmt: skip
        self.outbox_oldest = Gauge(
            "aiguillage_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet relayed (0: none)", registry=r,
        )  # fmt: skip
        self.outbox_set_aside = Gauge(
            "aiguillage_outbox_set_aside", "Outbox rows the broker refused, set aside",
            registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "aiguillage_http_requests",
            "HTTP requests answered, per route template and status class (the doors' "
            "availability: 5xx against all)",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self._business(r)
        self._collectors: list[Collect] = []
        self._collected_at = float("-inf")

    def _business(self, r: CollectorRegistry) -> None:
        self.referrals = Counter(
            "aiguillage_referrals",
            "Referrals by stage (intake: accepted or rejected; regulation: the decision) "
            "and referrer kind",
            ["stage", "outcome", "referrer_kind"], registry=r,
        )  # fmt: skip
        self.submission_to_booking = Histogram(
            "aiguillage_submission_to_booking_seconds",
            "From a referral's submission to its appointment's booking",
            buckets=_BOOKING_BUCKETS, registry=r,
        )  # fmt: skip
        self.waiting = Gauge(
            "aiguillage_waiting_patients", "Patients on the waiting list",
            ["departement", "priority"], registry=r,
        )  # fmt: skip
        self.free_places = Gauge(
            "aiguillage_free_places_today",
            "Places left today (Paris day, from now) in the active centres",
            ["departement"], registry=r,
        )  # fmt: skip
        self.notifications = Counter(
            "aiguillage_notifications", "Notifications sent or failed, per channel",
            ["channel", "outcome"], registry=r,
        )  # fmt: skip
        self.webhooks_failed = Counter(
            "aiguillage_webhooks_failed",
            "Webhook sends that failed (final: no try left)", ["final"], registry=r,
        )  # fmt: skip
        self._measures = {SUBMISSION_TO_BOOKING: self.submission_to_booking}

    def measure(self, name: str, value: float) -> None:
        self._measures[name].observe(value)

    def observe_emitted(self, incoming: Envelope | None, emitted: Iterable[Envelope]) -> None:
        """The business figures an event committed by this service says."""
        for envelope in emitted:
            kind = envelope.type
            data = envelope.data
            if kind == "referral.received":
                referrer = _kind((data.get("referrer") or {}).get("kind"))
                self.referrals.labels(self.service, "accepted", referrer).inc()
            elif kind == "referral.rejected":
                referrer = _kind((data.get("referrer") or {}).get("kind"))
                self.referrals.labels(self.service, "rejected", referrer).inc()
            elif kind == "referral.regulated":
                referrer = "unknown"
                if incoming is not None and incoming.type == "referral.received":
                    referrer = _kind((incoming.data.get("referrer") or {}).get("kind"))
                decision = _word(data.get("decision"))
                self.referrals.labels(self.service, decision, referrer).inc()
            elif kind in ("notification.sent", "notification.failed"):
                # Told in the handler (the record channel); the dispatcher counts its own.
                sent = kind == "notification.sent"
                self.notification(data.get("channel", ""), sent, bool(data.get("final", sent)))

    def notification(self, channel: str, sent: bool, final: bool) -> None:
        self.notifications.labels(_word(channel), "sent" if sent else "failed").inc()
        if not sent and channel == "webhook":
            self.webhooks_failed.labels("true" if final else "false").inc()

    def on_collect(self, collect: Collect) -> None:
        """Run ``collect`` (figures read from the database) before a scrape, at most every
        ``COLLECT_EVERY_SECONDS``."""
        self._collectors.append(collect)

    async def exposition(self) -> tuple[bytes, str]:
        now = time.monotonic()
        if now - self._collected_at >= COLLECT_EVERY_SECONDS:
            self._collected_at = now
            for collect in self._collectors:
                try:
                    await collect(self)
                except Exception as exc:  # the database is away: the other figures still go
                    log.warning("figures not read for /metrics", error=str(exc)[:200])
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})


class HttpMetrics:
    """ASGI middleware: each answer counted by method, route template (never the path,
    which holds ids and a patient's personal link) and status class."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.counter = metrics.http_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in _UNCOUNTED:
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes every handler is answered 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.counter.labels(
                method if method in _METHODS else "other", template, f"{status // 100}xx"
            ).inc()


def replace_gauge(gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
    """Set a labelled gauge to exactly ``values`` (a label gone since is removed)."""
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
