"""``aiguillage demo``: the whole flow on this machine, accounted for referral by referral."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import aio_pika
from fastapi import FastAPI
from faststream.rabbit.annotations import RabbitMessage
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from aiguillage.observer import FINAL, Observer
from aiguillage.processes import ServiceProcesses
from aiguillage.reach import Unreachable, broker
from aiguillage.scenario import demo_centres, demo_referral
from shared.events import Envelope, ReferralSubmitted, new_id
from shared.http import HttpServer
from shared.logging import configure_logging
from shared.publisher import EventPublisher
from shared.settings import Environment, ServiceName, Settings
from shared.topology import SUBSCRIPTIONS, declare_topology, delete_topology

console = Console()


def sms_sink() -> FastAPI:
    """An SMS gateway that takes every message and sends it nowhere (the demo's)."""
    app = FastAPI()

    @app.post("/sms")
    async def sms() -> dict[str, str]:
        return {"status": "queued"}

    return app


def no_broker(settings: Settings) -> Unreachable:
    """The one line every command says of a broker that does not answer (errors.py),
    and the demo's way round it."""
    line = broker(settings).down().removesuffix(".")
    return Unreachable(f"{line} ; pour voir le flux sans broker : aiguillage demo --in-memory.")


async def broker_reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), timeout)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return False
    await connection.close()
    return True


async def wait_for_consumers(url: str, namespace: str, timeout: float = 60.0) -> None:
    """Every service queue has a consumer: the services are up."""
    names = [spec.name(namespace) for specs in SUBSCRIPTIONS.values() for spec in specs]
    deadline = time.monotonic() + timeout
    connection = await aio_pika.connect(url)
    try:
        while True:
            missing = []
            for name in names:
                # A passive declare of a missing queue closes the channel: one per queue.
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    if not queue.declaration_result.consumer_count:
                        missing.append(name)
                    await channel.close()
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    missing.append(name)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"services not consuming: {', '.join(missing)}")
            await asyncio.sleep(0.3)
    finally:
        await connection.close()


async def wait_for_drain(url: str, queue_name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        while time.monotonic() < deadline:
            queue = await channel.declare_queue(queue_name, passive=True)
            if queue.declaration_result.message_count == 0:
                return
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


Publish = Callable[[Envelope, str], Awaitable[None]]


async def _drive(
    publish: Publish,
    observer: Observer,
    referrals: int,
    seed: int,
    timeout: float,
    centres_ready: Callable[[], Awaitable[None]],
    alive: Callable[[], None],
) -> int:
    """The scenario, whatever carries it: centres, referrals, wait, report."""
    today = date.today()
    centres = demo_centres(today)
    for centre in centres:
        await publish(
            Envelope.wrap(centre, source="ars", correlation_id=centre.centre_id),
            centre.routing_key(),
        )
    await centres_ready()
    console.print(f"ARS activated {len(centres)} centres (Rennes and Île-de-France)")
    rng = random.Random(seed)
    started = time.monotonic()
    for i in range(referrals):
        reference, referral = demo_referral(rng, i, today)
        observer.submitted(reference)
        if isinstance(referral, ReferralSubmitted):
            envelope = Envelope.wrap(
                referral, source=referral.referrer.kind.value, correlation_id=new_id()
            )
        else:  # a malformed referral, as a schema would never let us build it
            envelope = Envelope(
                type="referral.submitted", source="gp", correlation_id=new_id(), data=referral
            )
        await publish(envelope, "referral.submitted")
    console.print(
        f"{referrals} referrals pushed by Centre 15, GPs, SOS Médecins and emergency departments"
    )
    deadline = time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("referrals in a final state", total=referrals)
        while not observer.done() and time.monotonic() < deadline:
            alive()
            final = sum(t.state in FINAL for t in observer.tracks.values())
            progress.update(task, completed=final)
            observer.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(observer.changed.wait(), 1.0)
        final = sum(t.state in FINAL for t in observer.tracks.values())
        progress.update(task, completed=final)
    return _report(observer, referrals, time.monotonic() - started)


async def _run(settings: Settings, referrals: int, seed: int, timeout: float, keep: bool) -> int:
    if not await broker_reachable(settings.broker_url):
        raise no_broker(settings)
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    namespace = f"{settings.namespace}-{run_id}"
    run_dir = settings.data_dir / run_id
    env = {
        # A demo on a laptop: the development secrets are accepted (with a warning), so
        # `make demo` needs no set-up; production refuses them.
        "AIGUILLAGE_ENVIRONMENT": Environment.DEVELOPMENT.value,
        "AIGUILLAGE_NAMESPACE": namespace,
        "AIGUILLAGE_DATA_DIR": str(run_dir),
        "AIGUILLAGE_BROKER_URL": settings.broker_url,
    }
    console.print(f"[bold]Aiguillage demo[/] {run_id}: namespace {namespace}, data in {run_dir}")
    await declare_topology(settings.broker_url, namespace)
    observer = Observer(settings.broker_url, namespace)
    await observer.start()
    # The patients' SMS go to a gateway of the demo's own that delivers them to nobody:
    # the notifier sends them as it would in production, and their length is measured.
    gateway = HttpServer(sms_sink(), "127.0.0.1", 0)
    await gateway.start()
    env["AIGUILLAGE_PATIENT_CHANNELS"] = "record,sms"
    env["AIGUILLAGE_SMS_GATEWAY_URL"] = f"http://127.0.0.1:{gateway.port}/sms"
    services = ServiceProcesses(env, run_dir / "logs")

    def alive() -> None:
        if services.dead():
            raise RuntimeError(f"a service stopped: {services.dead()}; logs in {run_dir}/logs")

    try:
        services.start()
        with console.status("starting the four services..."):
            await wait_for_consumers(settings.broker_url, namespace)
        async with EventPublisher(settings.broker_url, namespace, "demo") as publisher:
            return await _drive(
                publisher.publish_envelope,
                observer,
                referrals,
                seed,
                timeout,
                lambda: wait_for_drain(settings.broker_url, f"{namespace}.scheduler.centres"),
                alive,
            )
    finally:
        services.stop()
        steps: list[Callable[[], Awaitable[object]]] = [gateway.stop, observer.stop]
        if not keep:
            centre_ids = [c.centre_id for c in demo_centres(date.today())]
            steps.append(lambda: delete_topology(settings.broker_url, namespace, centre_ids))
        await _clean_up(steps)
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            console.print(f"kept: namespace {namespace}, data in {run_dir}")


async def _clean_up(steps: list[Callable[[], Awaitable[object]]]) -> None:
    """Every clean-up step carried out, even when Ctrl-C lands on one: a Ctrl-C during
    the services' start (synchronous code) is delivered at the first await, here, and
    would otherwise skip the rest and leave the run's queues on the broker. The
    interruption goes on once they are done."""
    interrupted = False
    for step in steps:
        try:
            await step()
        except asyncio.CancelledError:
            interrupted = True
            await step()
    if interrupted:
        raise asyncio.CancelledError


async def _run_in_memory(settings: Settings, referrals: int, seed: int, timeout: float) -> int:
    """The same services and scenario in one process, on FastStream's in-memory broker.

    Deliveries are direct calls: nothing is durable and nothing is retried, so this shows
    the flow, not the guarantees.
    """
    from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker

    from shared.runtime import events_exchange_ref

    with tempfile.TemporaryDirectory(prefix="aiguillage-demo-") as tmp:
        local = settings.model_copy(
            update={
                "environment": Environment.DEVELOPMENT,
                "data_dir": Path(tmp),
                **{f"{s.value}_database_url": None for s in ServiceName},
            }
        )
        # The services share this process: their logs, redacted, only for what goes wrong.
        configure_logging("demo", "WARNING", json=False)
        console.print("[bold]Aiguillage demo[/] on the in-memory broker (one process)")
        runtimes = [
            importlib.import_module(f"services.{s.value}.app").build(local, in_memory=True)
            for s in ServiceName
        ]
        observer = Observer(settings.broker_url, local.namespace)
        exchange = events_exchange_ref(local.namespace)
        outside = RabbitBroker()

        @outside.subscriber(RabbitQueue("observer", routing_key="#", declare=False), exchange)
        async def watch(message: RabbitMessage) -> None:
            observer.feed(message.body)

        async def publish(envelope: Envelope, routing_key: str) -> None:
            await outside.publish(
                envelope.model_dump_json().encode(), exchange=exchange, routing_key=routing_key
            )

        async def nothing() -> None:
            return None

        async with TestRabbitBroker(*(r.broker for r in runtimes), outside):
            for runtime in runtimes:
                await runtime.prepare()
                await runtime.started()
            try:
                return await _drive(
                    publish, observer, referrals, seed, timeout, nothing, lambda: None
                )
            finally:
                for runtime in runtimes:
                    await runtime.stopping()
                    await runtime.stopped()


def _report(observer: Observer, submitted: int, elapsed: float) -> int:
    states = Counter(t.state or "unaccounted" for t in observer.tracks.values())
    received = submitted - states["rejected"]
    table = Table(title="What became of each referral")
    table.add_column("state")
    table.add_column("referrals", justify="right")
    for state in ["rejected", *[s for s in FINAL if s != "rejected"], "unaccounted"]:
        if states[state] or state != "unaccounted":
            table.add_row(state, str(states[state]))
    table.add_row("[bold]submitted[/]", f"[bold]{submitted}[/]")
    console.print(table)
    downstream = sum(states[s] for s in FINAL if s != "rejected")
    console.print(
        f"received {received} = refused {states['refused']} + escalated {states['escalated']}"
        f" + assigned {states['assigned']} + waitlisted {states['waitlisted']}"
        f" + home follow-up {states['home_follow_up']} + held {states['held']}"
        f" = {downstream}"
    )
    per_centre = Counter(t.centre for t in observer.tracks.values() if t.state == "assigned")
    centres = Table(title="Assignments per centre")
    centres.add_column("centre")
    centres.add_column("patients", justify="right")
    for centre, count in sorted(per_centre.items(), key=lambda kv: (-kv[1], kv[0] or "")):
        centres.add_row(centre or "?", str(count))
    console.print(centres)
    latencies = sorted(
        (t.notified_at - t.submitted_at) * 1000
        for t in observer.tracks.values()
        if t.notified_at is not None
    )
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        console.print(
            f"submission → centre notified: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
            f"over {len(latencies)} assigned referrals"
        )
    if observer.shortest_lead is not None:
        console.print(f"shortest lead: {int(observer.shortest_lead.total_seconds() // 60)} min")
    if observer.longest_sms is not None:
        console.print(f"longest SMS: {observer.longest_sms} segments")
    console.print(f"{submitted} referrals in {elapsed:.1f} s")
    ok = states["unaccounted"] == 0 and received == downstream
    console.print(
        "[bold green]every referral accounted for[/]"
        if ok
        else "[bold red]some referrals are unaccounted for[/]"
    )
    return 0 if ok else 1


def run_demo(
    settings: Settings,
    *,
    referrals: int,
    seed: int,
    timeout: float,
    keep: bool,
    in_memory: bool = False,
) -> int:
    try:
        if in_memory:
            return asyncio.run(_run_in_memory(settings, referrals, seed, timeout))
        return asyncio.run(_run(settings, referrals, seed, timeout, keep))
    except KeyboardInterrupt:
        console.print("interrupted: services stopped")
        return 130
