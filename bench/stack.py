"""What the bench scripts share: the four services as processes on their own namespace
(and PostgreSQL databases), an observer of the events, and the machine's figures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from aiguillage.demo import wait_for_consumers
from aiguillage.observer import Observer
from aiguillage.processes import ServiceProcesses
from shared.events import (
    CentreActivated,
    CentreKind,
    Clinical,
    OpeningPeriod,
    PatientIdentity,
    ReferralSubmitted,
    Referrer,
    ReferrerKind,
    SeveritySign,
    Vitals,
)
from shared.settings import ServiceName
from shared.topology import declare_topology, delete_topology

BROKER = os.environ.get("AIGUILLAGE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

T = TypeVar("T")


def run_bench(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, with SIGTERM (``kill``, ``timeout``) cancelling the bench like
    Ctrl-C does: its services are stopped and its queues and databases removed, not
    left behind to slow the broker down (2,000 quorum queues a wave)."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        raise SystemExit("stopped (SIGTERM): services stopped, queues and databases gone") from None


# Round the clock since yesterday: a bench's slots never depend on the hour it runs.
ALWAYS_OPEN = tuple(OpeningPeriod(weekday=d, opens="00:00", closes="24:00") for d in range(7))


def bench_centre(
    centre_id: str,
    name: str,
    commune_insee: str,
    boxes: int,
    *,
    minutes: int,
    kind: CentreKind = CentreKind.TEMPORARY_DEDICATED,
) -> CentreActivated:
    return CentreActivated(
        centre_id=centre_id,
        name=name,
        kind=kind,
        commune_insee=commune_insee,
        opening_hours=ALWAYS_OPEN,
        boxes=boxes,
        consultation_minutes=minutes,
        first_day=date.today() - timedelta(days=1),
    )


def bench_referral(
    reference: str,
    commune_insee: str,
    birth_date: date,
    *,
    reply_to: str,
    severe: bool = False,
) -> ReferralSubmitted:
    """A GP's referral of a febrile patient; a severe one shows a sign the protocol
    escalates."""
    return ReferralSubmitted(
        referrer=Referrer(kind=ReferrerKind.GP, identifier="10001234567", reply_to=reply_to),
        reference=reference,
        patient=PatientIdentity(
            first_name="Camille",
            last_name="Martin",
            birth_date=birth_date,
            phone="0612345678",
            sms_consent=True,
            commune_insee=commune_insee,
        ),
        clinical=Clinical(
            symptomatic=True,
            symptoms=("fever", "cough"),
            severity_signs=(SeveritySign.DYSPNOEA,) if severe else (),
            vitals=Vitals(spo2=97, respiratory_rate=16, temperature_c=38.2),
        ),
    )


@dataclass
class Stack:
    namespace: str
    services: ServiceProcesses
    observer: Observer
    databases: list[str]


@asynccontextmanager
async def running_stack(
    sqlite: bool,
    centre_ids: Iterable[str],
    observer: Observer | None = None,
    env: dict[str, str] | None = None,
    before_start: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> AsyncIterator[Stack]:
    """The four services up and consuming; everything removed afterwards.
    ``before_start`` gets the services' environment once their databases exist (and
    before they start): bench/history.py loads its history there."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix="bench-")
    environment = {
        # A bench on this machine: the development secrets are accepted.
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_BROKER_URL": BROKER,
        "AIGUILLAGE_NAMESPACE": namespace,
        "AIGUILLAGE_LOG_LEVEL": "WARNING",
        "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.5",
        "AIGUILLAGE_DATA_DIR": tmp,
        # One referrer sends the whole wave: its quotas (60 a minute by default) would
        # make the bench measure the rate limit, not the pipeline.
        "AIGUILLAGE_REFERRER_PER_MINUTE": "100000000",
        "AIGUILLAGE_REFERRER_PER_DAY": "100000000",
        **(env or {}),
    }
    databases: list[str] = []
    if not sqlite:
        base = POSTGRES.rsplit("/", 1)[0]
        admin = await asyncpg.connect(POSTGRES)
        try:
            for service in ServiceName:
                name = f"{namespace.replace('-', '_')}_{service.value}"
                await admin.execute(f'CREATE DATABASE "{name}"')
                databases.append(name)
                url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")
                environment[f"AIGUILLAGE_{service.value.upper()}_DATABASE_URL"] = url
        finally:
            await admin.close()
    if before_start is not None:
        await before_start(environment)
    await declare_topology(BROKER, namespace)
    observer = observer or Observer(BROKER, namespace)
    observer.namespace = namespace
    await observer.start()
    services = ServiceProcesses(environment, Path(tmp) / "logs")
    services.start()
    try:
        await wait_for_consumers(BROKER, namespace, timeout=90)
        yield Stack(namespace, services, observer, databases)
    finally:
        services.stop()
        await observer.stop()
        await delete_topology(BROKER, namespace, centre_ids)
        if databases:
            admin = await asyncpg.connect(POSTGRES)
            try:
                for name in databases:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def cpu_seconds() -> dict[str, float]:
    """CPU time so far of the broker, the database and the services' processes."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if "beam.smp" in cmdline:
            group = "rabbitmq"
        elif raw.split(" (", 1)[1].startswith("postgres"):
            group = "postgresql"
        elif "aiguillage run" in cmdline:
            group = cmdline.split("aiguillage run", 1)[1].split()[0]
        else:
            continue
        totals[group] = totals.get(group, 0.0) + used
    return totals


def cpu_ms_per_item(before: dict[str, float], count: int) -> dict[str, float]:
    """Milliseconds of CPU per item since ``before``, per process group."""
    after = cpu_seconds()
    return {k: round((after[k] - before.get(k, 0.0)) * 1000 / count, 2) for k in after}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_results(name: str, result: dict[str, Any]) -> Path:
    """The run's figures as JSON under bench/results/ (git-ignored), named by time."""
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
