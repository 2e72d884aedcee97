"""The fault suite's cluster: the four services as processes, each on its own
PostgreSQL database, watched through the broker."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.observer import FINAL, Observer
from aiguillage.processes import ServiceProcesses
from aiguillage.scenario import demo_referral
from services.notifier.store.tables import notifications
from shared.db import Database
from shared.events import Envelope, ReferralSubmitted, new_id
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import declare_topology
from tests.helpers import centre

CENTRES = [
    ("rennes-f1", "35238"),
    ("rennes-f2", "35238"),
    ("st-gregoire-f", "35278"),
    ("paris-f1", "75115"),
    ("st-denis-f", "93066"),
    ("nanterre-f", "92050"),
    ("creteil-f", "94028"),
]


class Cluster:
    def __init__(self, settings: Settings, urls: dict[str, str], logs: Path) -> None:
        self.settings = settings
        self.urls = urls
        env = {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.3",
            "AIGUILLAGE_MAX_DELIVERIES": "3",
            "AIGUILLAGE_RETRY_BACKOFF_SECONDS": "0.1",
            **{f"AIGUILLAGE_{s.upper()}_DATABASE_URL": url for s, url in urls.items()},
        }
        self.processes = ServiceProcesses(env, logs)
        self.observer = Observer(
            settings.broker_url, settings.namespace, durable_queue=f"{settings.namespace}.observer"
        )
        self.references: list[str] = []

    async def start(self) -> None:
        await declare_topology(self.settings.broker_url, self.settings.namespace)
        await self.observer.start()
        self.processes.start()
        await wait_for_consumers(self.settings.broker_url, self.settings.namespace, timeout=90)
        async with EventPublisher(self.settings.broker_url, self.settings.namespace, "ars") as ars:
            for centre_id, insee in CENTRES:
                await ars.publish(centre(centre_id, insee, boxes=6), correlation_id=centre_id)
        await wait_for_drain(
            self.settings.broker_url, f"{self.settings.namespace}.scheduler.centres"
        )

    async def restart(self, service: str, *, kill: bool = True) -> None:
        if kill:
            self.processes.kill(service)
        self.processes.start(service)

    async def burst(self, count: int, seed: int, *, pause: float = 0.0) -> None:
        """Referrals as the demo makes them: every kind of outcome, malformed ones too."""
        rng = random.Random(seed)
        today = date.today()
        start = len(self.references)
        async with EventPublisher(self.broker(), self.settings.namespace, "gp") as gp:
            for i in range(start, start + count):
                reference, referral = demo_referral(rng, i, today)
                self.references.append(reference)
                self.observer.submitted(reference)
                if isinstance(referral, ReferralSubmitted):
                    envelope = Envelope.wrap(referral, source="gp", correlation_id=new_id())
                else:
                    envelope = Envelope(
                        type="referral.submitted",
                        source="gp",
                        correlation_id=new_id(),
                        data=referral,
                    )
                await self.send(gp, envelope)
                if pause:
                    await asyncio.sleep(pause)

    def broker(self) -> str | list[str]:
        """Where the burst's referrer connects."""
        return self.settings.broker_url

    async def send(self, gp: EventPublisher, envelope: Envelope) -> None:
        """One referral of the burst, confirmed by the broker."""
        await gp.publish_envelope(envelope, "referral.submitted")

    async def settle(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.observer.done():
            if time.monotonic() > deadline:
                missing = [
                    t.reference for t in self.observer.tracks.values() if t.state not in FINAL
                ]
                raise TimeoutError(f"{len(missing)} referrals without a final state: {missing[:5]}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # room for late duplicates to show

    def final_states(self) -> Counter[str]:
        return Counter(t.state or "none" for t in self.observer.tracks.values())

    async def notifications(self) -> list[Any]:
        database = Database(self.urls["notifier"])
        try:
            async with database.transaction() as session:
                return list((await session.execute(select(notifications))).all())
        finally:
            await database.dispose()

    def duplicates(self) -> dict[str, int]:
        """Effects seen more than once: per referral, a second distinct slot.assigned event,
        a second referral.received, a second centre or patient notification."""
        seen: Counter[tuple[str, str]] = Counter()
        ids: set[str] = set()
        for envelope in self.observer.events:
            if envelope.id in ids:  # the same event again: at-least-once, not an effect
                continue
            ids.add(envelope.id)
            key = envelope.data.get("referral_id") or envelope.correlation_id
            if envelope.type in ("referral.received", "slot.assigned"):
                seen[(envelope.type, key)] += 1
            elif envelope.type == "notification.sent":
                seen[
                    (f"notified.{envelope.data['recipient_kind']}.{envelope.data['template']}", key)
                ] += 1
        return {f"{k[0]}:{k[1]}": n for k, n in seen.items() if n > 1}

    def story(self, duplicates: dict[str, int]) -> str:
        """For a failed check: every event of each duplicated referral, in the order seen,
        with what caused it (which message made the second effect)."""
        referrals = {key.rsplit(":", 1)[1] for key in duplicates}
        lines = []
        for envelope in self.observer.events:
            key = envelope.data.get("referral_id") or envelope.correlation_id
            if key in referrals:
                lines.append(
                    f"{key[:8]} {envelope.type} id={envelope.id[:8]} "
                    f"caused_by={(envelope.causation_id or '-')[:8]} "
                    f"source={envelope.source} at={envelope.time.isoformat()} "
                    f"decision={envelope.data.get('decision', '-')} "
                    f"appointment={str(envelope.data.get('appointment_id', '-'))[:8]}"
                )
        return "\n".join(lines)

    async def stop(self) -> None:
        self.processes.stop()
        await self.observer.stop()


@pytest.fixture
async def cluster(settings: Settings, postgres: Any, tmp_path: Path) -> AsyncIterator[Cluster]:
    urls = {s.value: await postgres.create(s.value) for s in ServiceName}
    running = Cluster(settings, urls, tmp_path / "logs")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        for service in ServiceName:
            log = running.processes.log(service)
            if "Traceback" in log:
                print(f"--- {service} ---\n{log[-4000:]}")
