"""The pipeline against the broker's own limit, in one run on this machine.

1. raw ceiling: N persistent messages through four relay processes written with plain
   aio-pika (durable queues, publisher confirms, ack after publish, no validation, no
   database): the same number of hops as the pipeline;
2. the pipeline: N referrals through the four services as separate processes (each on
   its own PostgreSQL database), from submission to the centre's notification;
3. latency from submission to the centre's notification at fixed offered loads;
4. each service's peak memory (VmHWM).

    python bench/pipeline.py [--n 1000] [--rates 10 50 100] [--seconds 10] [--sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import aio_pika
import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from stack import (  # bench/ is the script's folder, first on sys.path
    BROKER,
    POSTGRES,
    bench_centre,
    bench_referral,
    cpu_ms_per_item,
    cpu_seconds,
    peak_rss_mb,
    run_bench,
    running_stack,
    write_results,
)

from aiguillage.demo import wait_for_drain
from aiguillage.observer import Observer
from aiguillage.processes import ServiceProcesses
from shared.events import (
    CentreActivated,
    Envelope,
    ReferralSubmitted,
)
from shared.publisher import EventPublisher

HOMES = ["35238", "35278", "75115", "75120", "93066", "92050", "94028"]
console = Console()
PROGRESS = Progress(
    "[progress.description]{task.description}",
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    console=console,
)


# -- the raw ceiling -------------------------------------------------------------------


def _relay(url: str, source: str, target: str) -> None:
    async def run() -> None:
        connection = await aio_pika.connect(url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(
            source, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def hop(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=target,
            )
            await message.ack()

        await queue.consume(hop)
        await asyncio.Future()

    asyncio.run(run())


# The relays are spawned, not forked: a forked child inherits the bench's asyncio
# SIGTERM handler and its wake-up descriptor, so terminating it cancelled the parent,
# which then waited forever on its children (the bench hung after its raw phase).
_SPAWN = multiprocessing.get_context("spawn")


async def raw_ceiling(n: int, body: bytes, hops: int = 4) -> float:
    """Plain aio-pika relays through ``hops`` quorum queues: persistent, confirmed,
    acked after the next publish. Messages per second end to end."""
    tag = uuid.uuid4().hex[:8]
    names = [f"bench-raw-{tag}-{i}" for i in range(hops + 1)]
    connection = await aio_pika.connect(BROKER)
    channel = await connection.channel(publisher_confirms=True)
    for name in names:
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    relays = [
        _SPAWN.Process(target=_relay, args=(BROKER, names[i], names[i + 1]), daemon=True)
        for i in range(hops)
    ]
    for relay in relays:
        relay.start()
    await asyncio.sleep(2)
    done = asyncio.Event()
    received = 0

    task = PROGRESS.add_task(f"raw {hops} hops", total=n)

    async def sink(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += 1
        PROGRESS.update(task, completed=received)
        if received == n:
            done.set()

    sink_channel = await connection.channel()
    await sink_channel.set_qos(prefetch_count=200)
    await (await sink_channel.declare_queue(names[hops], passive=True)).consume(sink)
    started = time.perf_counter()
    for chunk in range(0, n, 100):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=names[0],
                )
                for _ in range(min(100, n - chunk))
            )
        )
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    for relay in relays:
        relay.terminate()
    for relay in relays:
        relay.join(10)
    for name in names:
        await channel.queue_delete(name)
    await connection.close()
    return n / elapsed


# -- the pipeline ----------------------------------------------------------------------


def referral(rng: random.Random, reference: str) -> ReferralSubmitted:
    born = date(1970 + rng.randint(0, 30), rng.randint(1, 12), rng.randint(1, 28))
    return bench_referral(reference, rng.choice(HOMES), born, reply_to="bench")


def centres() -> list[CentreActivated]:
    return [
        bench_centre(f"bench-{i}", f"Centre {i}", HOMES[i % len(HOMES)], 20, minutes=15)
        for i in range(21)
    ]


async def push(
    publisher: EventPublisher,
    observer: Observer,
    rng: random.Random,
    count: int,
    rate: float | None,
) -> None:
    start = time.perf_counter()
    for i in range(count):
        reference = f"b-{uuid.uuid4().hex[:12]}"
        observer.submitted(reference)
        envelope = Envelope.wrap(referral(rng, reference), source="gp", correlation_id=reference)
        await publisher.publish_envelope(envelope, "referral.submitted")
        if rate:
            delay = start + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


async def until_notified(
    observer: Observer, references: set[str], timeout: float, label: str
) -> None:
    task = PROGRESS.add_task(label, total=len(references))
    deadline = time.monotonic() + timeout
    while missing := sum(observer.tracks[r].notified_at is None for r in references):
        PROGRESS.update(task, completed=len(references) - missing)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{missing} referrals not notified")
        await asyncio.sleep(0.05)
    PROGRESS.update(task, completed=len(references))


async def database_counts(databases: list[str]) -> dict[str, dict[str, int]]:
    """Per service database: committed transactions, inbox rows (deliveries handled),
    outbox rows (events emitted)."""
    counts: dict[str, dict[str, int]] = {}
    admin = await asyncpg.connect(POSTGRES)
    try:
        for name in databases:
            service = name.rsplit("_", 1)[1]
            commits = await admin.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
            )
            connection = await asyncpg.connect(POSTGRES.rsplit("/", 1)[0] + "/" + name)
            try:
                counts[service] = {
                    "transactions": int(commits),
                    "deliveries": int(await connection.fetchval("SELECT count(*) FROM inbox")),
                    "events": int(await connection.fetchval("SELECT count(*) FROM outbox")),
                }
            finally:
                await connection.close()
    finally:
        await admin.close()
    return counts


def per_referral(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], count: int
) -> dict[str, dict[str, float]]:
    return {
        service: {k: round((v - before[service][k]) / count, 1) for k, v in figures.items()}
        for service, figures in after.items()
    }


def start_profilers(services: ServiceProcesses, folder: Path) -> list[subprocess.Popen[bytes]]:
    # py-spy samples each service from outside: no change to the code measured.
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                # The venv's own (pip install -e '.[bench]'), found without PATH.
                shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--rate",
                "200",
                "-p",
                str(proc.pid),
                "-o",
                str(folder / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, proc in services.procs.items()
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        profiler.wait(30)


async def pipeline(
    n: int, rates: list[float], seconds: float, sqlite: bool, profile: Path | None = None
) -> dict[str, object]:
    rng = random.Random(2020)
    results: dict[str, object] = {}
    ids = [c.centre_id for c in centres()]
    async with running_stack(sqlite, ids) as stack:
        observer, services, databases = stack.observer, stack.services, stack.databases
        async with EventPublisher(BROKER, stack.namespace, "bench") as publisher:
            for centre in centres():
                await publisher.publish(centre, correlation_id=centre.centre_id)
            await wait_for_drain(BROKER, f"{stack.namespace}.scheduler.centres")
            await asyncio.sleep(2)
            # Warm up, then throughput: N as fast as the publisher goes.
            await push(publisher, observer, rng, 50, None)
            await until_notified(observer, set(observer.tracks), 120, "warm-up")
            before = set(observer.tracks)
            profilers = start_profilers(services, profile) if profile else []
            counts_before = await database_counts(databases) if databases else {}
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            await push(publisher, observer, rng, n, None)
            batch = set(observer.tracks) - before
            await until_notified(observer, batch, 600, f"pipeline, {n} at once")
            results["cpu_ms_per_referral"] = cpu_ms_per_item(cpu_before, n)
            if databases:
                # pg_stat_database lags by up to the stats interval: let it catch up.
                await asyncio.sleep(1.5)
                results["work_per_referral"] = per_referral(
                    counts_before, await database_counts(databases), n
                )
            stop_profilers(profilers)
            last = max(observer.tracks[r].notified_at or 0 for r in batch)
            first = min(observer.tracks[r].submitted_at for r in batch)
            results["throughput"] = n / (last - first)
            results["throughput_wall_s"] = time.perf_counter() - started
            latencies = {}
            scheduler_stage: dict[str, dict[str, float]] = {}
            for rate in rates:
                before = set(observer.tracks)
                await push(publisher, observer, rng, int(rate * seconds), rate)
                batch = set(observer.tracks) - before
                await until_notified(observer, batch, 300, f"latency at {rate:.0f}/s")
                ms = sorted(
                    (observer.tracks[r].notified_at or 0) - observer.tracks[r].submitted_at
                    for r in batch
                )
                ms = [m * 1000 for m in ms]
                latencies[str(rate)] = {
                    "n": len(ms),
                    "p50": statistics.median(ms),
                    "p95": ms[int(len(ms) * 0.95) - 1],
                    "p99": ms[int(len(ms) * 0.99) - 1],
                }
                # The scheduler's stage alone: from referral.regulated on the bus to
                # slot.assigned on the bus, both as the observer saw them (one clock).
                stage = sorted(
                    1000 * (t.booked_at - t.regulated_at)
                    for t in (observer.tracks[r] for r in batch)
                    if t.booked_at is not None and t.regulated_at is not None
                )
                if stage:
                    scheduler_stage[str(rate)] = {
                        "n": len(stage),
                        "p50": statistics.median(stage),
                        "p95": stage[max(0, int(len(stage) * 0.95) - 1)],
                        "p99": stage[max(0, int(len(stage) * 0.99) - 1)],
                    }
            results["latency_ms"] = latencies
            results["scheduler_stage_ms"] = scheduler_stage
        results["peak_rss_mb"] = {
            name: peak_rss_mb(proc.pid) for name, proc in services.procs.items()
        }
    return results


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    body = (
        Envelope.wrap(referral(random.Random(1), "size"), source="gp", correlation_id="size")
        .model_dump_json()
        .encode()
    )
    with PROGRESS:
        raw = await raw_ceiling(args.n, body)
        piped = await pipeline(args.n, args.rates, args.seconds, args.sqlite, args.profile)
        # Like work: as many deliveries per message as the pipeline made per referral.
        work = cast(dict[str, dict[str, float]], piped.get("work_per_referral", {}))
        deliveries = sum(w["deliveries"] for w in work.values())
        hops = max(1, round(deliveries)) if work else 9
        like = await raw_ceiling(args.n, body, hops)
    return {
        "raw_msgs_per_s": raw,
        "raw_like_work_hops": hops,
        "raw_like_work_msgs_per_s": like,
        **piped,
        "n": args.n,
        "message_bytes": len(body),
        "database": "sqlite" if args.sqlite else "postgresql",
        "when": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 50, 100])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy each service during the throughput "
        "run; collapsed stacks to this folder (bench/profile_report.py reads them)",
    )
    args = parser.parse_args()
    # The figures are JSON-shaped: read them as such.
    result: dict[str, Any] = run_bench(main_async(args))
    table = Table(title=f"Pipeline vs raw four hops ({result['database']}, n={args.n})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    raw, piped = float(result["raw_msgs_per_s"]), float(result["throughput"])
    like, hops = float(result["raw_like_work_msgs_per_s"]), result["raw_like_work_hops"]
    table.add_row("raw 4-hop ceiling (msg/s)", f"{raw:.0f}")
    table.add_row(f"raw {hops}-hop ceiling, like work (msg/s)", f"{like:.0f}")
    table.add_row("pipeline (referrals/s)", f"{piped:.0f}")
    table.add_row("ratio pipeline / raw 4 hops", f"{piped / raw:.2f}")
    table.add_row(f"ratio pipeline / raw {hops} hops (like work)", f"{piped / like:.2f}")
    for rate, lat in result["latency_ms"].items():
        table.add_row(
            f"latency at {float(rate):.0f}/s: p50 / p95 / p99 (ms)",
            f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f}",
        )
    for rate, lat in result.get("scheduler_stage_ms", {}).items():
        table.add_row(
            f"scheduler's stage at {float(rate):.0f}/s: p50 / p95 / p99 (ms)",
            f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f}",
        )
    for name, ms in result["cpu_ms_per_referral"].items():
        table.add_row(f"CPU per referral, {name} (ms)", f"{ms:.1f}")
    for name, work in result.get("work_per_referral", {}).items():
        table.add_row(
            f"per referral, {name}: deliveries / events / transactions",
            f"{work['deliveries']} / {work['events']} / {work['transactions']}",
        )
    for name, mb in result["peak_rss_mb"].items():
        table.add_row(f"peak RSS {name} (MB)", f"{mb:.0f}")
    console.print(table)
    console.print(f"written {write_results('pipeline', result)}")


if __name__ == "__main__":
    main()
