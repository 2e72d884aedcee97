"""Issue 35: after a run of the four services as processes, each one's /metrics holds the
figures of that run, in an exposition Prometheus's own parser reads, with bounded labels
(no referral id among them)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.events import Clinical, Envelope, Purpose
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(http: httpx.AsyncClient, port: int) -> Samples:
    response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def _scraped_when(
    http: httpx.AsyncClient, port: int, done: object, timeout: float = 30.0
) -> Samples:
    """Scrape until ``done(samples)`` (a service may still be taking the last events)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await _scrape(http, port)
        if done(samples) or time.monotonic() > deadline:  # type: ignore[operator]
            return samples
        await asyncio.sleep(0.5)


async def _run(settings: Settings, tap: Tap) -> str:
    """The ARS opens a centre; a GP refers a mild patient, a severe one and a screening
    request intake refuses. The booked referral's id."""
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-m", "35238"), correlation_id="rennes-m")
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
        await gp.publish(referral("m-mild"), correlation_id="c-1")
        await gp.publish(referral("m-severe", severe=True), correlation_id="c-2")
        await gp.publish(
            referral("m-screening").model_copy(
                update={"purpose": Purpose.SCREENING, "clinical": Clinical(symptomatic=False)}
            ),
            correlation_id="c-3",
        )

    def finished(events: list[Envelope]) -> bool:
        types = [e.type for e in events]
        return "slot.assigned" in types and types.count("referral.regulated") == 2

    await tap.wait_for(finished, timeout=60)
    [slot] = tap.of_type("slot.assigned")
    return str(slot.data["referral_id"])


async def test_each_service_s_metrics_count_the_run(
    settings: Settings, processes: ServiceProcesses
) -> None:
    ports = processes.ports
    async with Tap(settings.broker_url, settings.namespace) as tap, httpx.AsyncClient() as http:
        booked_id = await _run(settings, tap)
        intake = await _scraped_when(
            http,
            ports["intake"],
            lambda s: _value(s, "aiguillage_submission_to_booking_seconds_count") >= 1,
        )
        regulation = await _scrape(http, ports["regulation"])
        scheduler = await _scrape(http, ports["scheduler"])
        # Every notice the bus saw sent is counted (the count comes first, at the commit).
        notifier = await _scraped_when(
            http,
            ports["notifier"],
            lambda s: (
                _value(s, "aiguillage_notifications_total", outcome="sent")
                == len(tap.of_type("notification.sent"))
                >= 2
            ),
        )
        told = len(tap.of_type("notification.sent"))
    # Intake: two referrals accepted, one refused, a GP's each; one booked.
    referrals = "aiguillage_referrals_total"
    delivered = "aiguillage_deliveries_total"
    assert _value(intake, referrals, outcome="accepted", referrer_kind="gp") == 2
    assert _value(intake, referrals, outcome="rejected", referrer_kind="gp") == 1
    assert _value(intake, delivered, subscription="intake.submissions") == 3
    assert _value(intake, "aiguillage_submission_to_booking_seconds_count") == 1
    assert 0 < _value(intake, "aiguillage_submission_to_booking_seconds_sum") < 120
    # Regulation: one oriented, one escalated, both a GP's.
    assert _value(regulation, referrals, stage="regulation", outcome="orient") == 1
    assert _value(regulation, referrals, stage="regulation", outcome="escalate") == 1
    assert _value(regulation, referrals, referrer_kind="gp") == 2
    assert _value(regulation, delivered, subscription="regulation.referrals") == 2
    # The scheduler: the centre's places left today in Ille-et-Vilaine, nobody waiting.
    assert ("aiguillage_free_places_today", (("departement", "35"),)) in scheduler
    assert _value(scheduler, "aiguillage_waiting_patients") == 0
    handled = "aiguillage_handling_seconds_count"
    assert _value(scheduler, handled, subscription="scheduler.centres") == 1
    # The notifier: as many notices sent as the bus saw, none failed.
    assert _value(notifier, "aiguillage_notifications_total", outcome="sent") == told
    assert _value(notifier, "aiguillage_notifications_total", outcome="failed") == 0
    assert _value(notifier, "aiguillage_webhooks_failed_total") == 0
    for name, samples in {
        "intake": intake,
        "regulation": regulation,
        "scheduler": scheduler,
        "notifier": notifier,
    }.items():
        # Nothing dead-lettered, the outbox relayed, transactions timed.
        assert _value(samples, "aiguillage_dead_lettered_total") == 0, name
        assert _value(samples, "aiguillage_delivery_failures_total") == 0, name
        assert ("aiguillage_outbox_pending", ()) in samples, name
        assert ("aiguillage_outbox_oldest_age_seconds", ()) in samples, name
        assert _value(samples, "aiguillage_db_transaction_seconds_count") > 0, name
        # Bounded labels: no referral's id in any of them.
        values = {v for _, labels in samples for _, v in labels}
        assert booked_id not in values, name
        assert not any(len(v) >= 36 for v in values), (name, values)
