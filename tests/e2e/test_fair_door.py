"""No sender stalls intake's broker door (issue 28).

Found: one referrer published 3,000 submissions; each one past its quota was still
parsed, batched (its refusal failing the batch, replayed one by one), refused in a
transaction and answered through the outbox: about 23 a second. Another GP's
acknowledgement, queued behind them, went from 0.07 s to 25–76 s.

Here intake runs as a process of its own on the real broker. GP B submits 100 referrals
alone (50 before the flood, 50 after: this machine is shared, and "alone" is as it was
around the flood), and 100 while GP A floods 3,000 at 150 a second, six times what the
door refused a second before (A publishes from a process of its own, at a lower
priority: it stands for another machine). B's p99 (of 100: the second slowest) under
the flood must stay within twice its p99 alone, or within 0.1 s of it: on this 2-core
machine, beside other tests, B's p99 alone is 20 to 140 ms, and a flood that never
reaches intake (published to another queue) already adds up to 0.09 s to it by the
broker's and the machine's load alone.

The door queue is one queue, first in first out: a flood faster than the door refuses
it would queue B behind it whatever the door does; ``door_depth_max`` shows it does not.
The quota is per day here (250: B's 205 submissions fit), so that A stays held the whole
test; a per-minute window ending mid-test would admit another 250 of A's.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from aiguillage.processes import ServiceProcesses
from shared.events import Envelope, ReferralSubmitted, Referrer, ReferrerKind
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology, events_exchange
from tests.helpers import referral

# Alone: B's acknowledgement under A's flood is compared with B's alone, and another
# test on the same two cores would be part of what is measured (a clean-clone run saw
# p99 0.156 s against a bound of 0.140 s with the other worker busy).
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

FLOOD, FLOOD_PER_SECOND = 3000, 150
SAMPLES, EVERY = 100, 0.12  # B's submissions in each phase, one every 0.12 s
PER_DAY = 250
GP_A, GP_B = "gpa", "gpb"


@pytest.fixture
def intake_process(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    asyncio.run(declare_topology(settings.broker_url, settings.namespace))
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_REFERRER_PER_DAY": str(PER_DAY),
            "AIGUILLAGE_REFERRER_PER_MINUTE": "100000",
        },
        tmp_path / "logs",
    )
    procs.start("intake")
    try:
        yield settings
    finally:
        procs.stop()
        print(procs.log("intake")[-3000:])


def submission(gp: str, reference: str) -> ReferralSubmitted:
    own = Referrer(kind=ReferrerKind.GP, identifier=gp, reply_to=gp)
    return referral(reference, reply_to=gp).model_copy(update={"referrer": own})


def p99(latencies: list[float]) -> float:
    """Nearest rank: of 100, the second slowest."""
    ordered = sorted(latencies)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


class GpB:
    """GP B: submits one referral at a time and times its acknowledgement."""

    def __init__(self, settings: Settings, channel: AbstractChannel) -> None:
        self.settings, self.channel = settings, channel
        self.waiting: dict[str, asyncio.Future[str]] = {}

    async def listen(self) -> None:
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        bus = await self.channel.get_exchange(events_exchange(self.settings.namespace))
        await queue.bind(bus, f"reply.{GP_B}.#")
        await queue.consume(self._answered, no_ack=True)

    async def _answered(self, message: AbstractIncomingMessage) -> None:
        answered = Envelope.model_validate_json(message.body).data.get("source_message_id")
        found = self.waiting.get(str(answered))
        if found is not None and not found.done():
            found.set_result(message.routing_key or "")

    async def submit_every(self, publisher: EventPublisher, tag: str, count: int) -> list[float]:
        latencies: list[float] = []
        start = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n * EVERY - time.monotonic()))
            event_id = str(uuid.uuid4())
            answer = self.waiting[event_id] = asyncio.get_running_loop().create_future()
            sent = time.monotonic()
            await publisher.publish(
                submission(GP_B, f"{tag}-{n}"), correlation_id=event_id, event_id=event_id
            )
            key = await asyncio.wait_for(answer, 120)
            latencies.append(time.monotonic() - sent)
            assert key == f"reply.{GP_B}.submission.acknowledged", key
        return latencies


async def flood(url: str, namespace: str) -> float:
    """GP A's 3,000 submissions at FLOOD_PER_SECOND, bodies made beforehand."""
    bodies = [
        Envelope.wrap(submission(GP_A, f"a-{n}"), source=GP_A, correlation_id=str(n))
        for n in range(FLOOD)
    ]
    raw = [(e.id, e.model_dump_json().encode()) for e in bodies]
    async with EventPublisher(url, namespace, GP_A, actor=f"referrer-{GP_A}") as publisher:
        start = time.monotonic()
        for first in range(0, FLOOD, 10):
            await asyncio.gather(
                *(
                    publisher.publish_raw(body, "referral.submitted", message_id=message_id)
                    for message_id, body in raw[first : first + 10]
                )
            )
            await asyncio.sleep(
                max(0.0, start + (first + 10) / FLOOD_PER_SECOND - time.monotonic())
            )
        return time.monotonic() - start


async def start_flood(settings: Settings) -> asyncio.subprocess.Process:
    """A's flood from a process of its own, at a lower priority: A stands for another
    machine, whose work must not queue B's measurements in this process's event loop."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.test_fair_door",
        settings.broker_url,
        settings.namespace,
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.nice(10),
    )


async def depth(channel: AbstractChannel, name: str) -> tuple[int, int]:
    queue = await channel.declare_queue(name, passive=True)
    result = queue.declaration_result
    return result.message_count or 0, result.consumer_count or 0


async def until(
    probe: Callable[[], Awaitable[tuple[int, int]]],
    done: Callable[[tuple[int, int]], bool],
    timeout: float = 60.0,
) -> None:
    for _ in range(int(timeout / 0.1)):
        if done(await probe()):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the broker never showed it")


async def watch_depth(channel: AbstractChannel, name: str, seen: list[int]) -> None:
    while True:
        seen.append((await depth(channel, name))[0])
        await asyncio.sleep(0.25)


async def under_flood(
    settings: Settings, channel: AbstractChannel, gp_b: GpB, publisher: EventPublisher
) -> dict[str, Any]:
    """B's latencies while A floods, once A is past its quota and held."""
    door = f"{settings.namespace}.intake.submissions"
    refused_a = await channel.declare_queue(exclusive=True, auto_delete=True)
    bus = await channel.get_exchange(events_exchange(settings.namespace))
    await refused_a.bind(bus, f"reply.{GP_A}.request.refused")
    flooding = await start_flood(settings)
    measured = False
    try:
        # B submits again once A is past its quota, and the door has caught up with the
        # 250 that A may submit (processed in full: a referrer's right).
        await until(lambda: depth(channel, refused_a.name), lambda found: found[0] > 0)
        await until(lambda: depth(channel, door), lambda found: found[0] < 20)
        depths: list[int] = []
        watching = asyncio.create_task(watch_depth(channel, door, depths))
        loaded = await gp_b.submit_every(publisher, "loaded", SAMPLES)
        outlasted = flooding.returncode is None
        watching.cancel()
        measured = True
    finally:
        if not measured and flooding.returncode is None:
            flooding.kill()  # the test failed: no flood left running
            await flooding.wait()
    seconds = float((await flooding.communicate())[0] or 0)
    await until(lambda: depth(channel, door), lambda found: found[0] == 0)
    return {
        "loaded": loaded,
        "flood_seconds": seconds,
        "flood_outlasted_b": outlasted,
        "door_depth_max": max(depths),
        "a_answered_refused": (await depth(channel, refused_a.name))[0],
    }


async def run(settings: Settings) -> dict[str, Any]:
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        door = f"{settings.namespace}.intake.submissions"
        await until(lambda: depth(channel, door), lambda found: found[1] > 0)  # it consumes
        gp_b = GpB(settings, channel)
        await gp_b.listen()
        async with EventPublisher(
            settings.broker_url, settings.namespace, GP_B, actor=f"referrer-{GP_B}"
        ) as publisher:
            await gp_b.submit_every(publisher, "warm", 5)
            alone = await gp_b.submit_every(publisher, "before", SAMPLES // 2)
            figures = await under_flood(settings, channel, gp_b, publisher)
            # "Alone": around the flood, before and after, as this shared machine was then.
            alone += await gp_b.submit_every(publisher, "after", SAMPLES // 2)
    loaded = figures.pop("loaded")
    return {
        "alone_p50": sorted(alone)[SAMPLES // 2],
        "alone_p99": p99(alone),
        "loaded_p50": sorted(loaded)[SAMPLES // 2],
        "loaded_p99": p99(loaded),
        "alone_slowest": [round(x, 3) for x in sorted(alone)[-3:]],
        "loaded_slowest": [round(x, 3) for x in sorted(loaded)[-3:]],
        **figures,
    }


def test_a_referrer_s_flood_leaves_another_referrer_s_acknowledgement_within_2x(
    intake_process: Settings,
) -> None:
    figures = asyncio.run(run(intake_process))
    print(figures)
    assert figures["flood_outlasted_b"], "the flood ended before B's submissions"
    alone = figures["alone_p99"]
    assert figures["loaded_p99"] <= max(2 * alone, alone + 0.1), figures
    # A was held at its quota: 250 accepted, the rest refused, few of them recorded.
    with sqlite3.connect(intake_process.data_dir / "intake.db") as db:
        (accepted_a,) = db.execute(
            "SELECT count(*) FROM referrals WHERE referrer_id = ?", (GP_A,)
        ).fetchone()
        (recorded,) = db.execute("SELECT count(*) FROM refusals").fetchone()
    assert accepted_a == PER_DAY
    assert 1 <= recorded <= 40  # its first refusal, then the budget's (shared.door_guard)
    assert figures["a_answered_refused"] >= 100  # answered while its budget allowed


if __name__ == "__main__":  # the flood's own process (start_flood)
    print(asyncio.run(flood(sys.argv[1], sys.argv[2])))
