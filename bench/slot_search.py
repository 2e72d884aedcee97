"""Time to assign one patient as the number of active centres grows (national scale).

The scheduler's real booking path (services.scheduler.handlers.booking: spatial prefilter,
row locks, schedules, booked slots, ranking, the insert under the unique key) against
a real database holding N active centres spread over France in proportion to
population, each with 30 days of slots and a third of its next days booked. Each
assignment runs in a transaction that is rolled back, so every one sees the same state.

    python bench/slot_search.py [--centres 100 1000 10000] [--patients 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert
from stack import write_results

from services.scheduler.handlers import Patient, SchedulerHandlers
from services.scheduler.store.tables import bookings, centres
from shared.db import Database
from shared.events import Priority
from shared.geo import communes
from shared.migrations import upgrade

HOURS = [{"weekday": d, "opens": "08:00", "closes": "20:00"} for d in range(7)]


async def populate(database: Database, count: int, seed: int, now: datetime) -> list[str]:
    rng = random.Random(seed)
    towns = [c for c in communes() if c.population > 0 and c.departement < "97"]
    chosen = rng.choices(towns, weights=[c.population for c in towns], k=count)
    async with database.transaction() as session:
        rows = [
            {
                "id": f"c{i:05d}",
                "name": f"Centre {i}",
                "kind": "msp",
                "commune_insee": town.insee,
                "departement": town.departement,
                "lat": town.lat + rng.uniform(-0.02, 0.02),
                "lon": town.lon + rng.uniform(-0.02, 0.02),
                "address": None,
                "opening_hours": HOURS,
                "boxes": 2,
                "consultation_minutes": 20,
                "first_day": now.date(),
                "status": "active",
                "updated_at": now,
            }
            for i, town in enumerate(chosen)
        ]
        await session.execute(insert(centres), rows)
        # A third of each centre's slots of the next three days are taken.
        taken = []
        for row in rows:
            day = now.replace(hour=7, minute=0, second=0, microsecond=0)
            for slot in range(0, 3 * 36, 3):
                start = day + timedelta(minutes=20 * (slot % 36), days=slot // 36)
                taken.append(
                    {
                        "centre_id": row["id"],
                        "start": start,
                        "box": 1,
                        "appointment_id": f"{row['id']}-{slot}",
                    }
                )
        await session.execute(insert(bookings), taken)
    return [t.insee for t in rng.choices(towns, weights=[c.population for c in towns], k=500)]


async def measure(url: str, count: int, patients: int, seed: int) -> dict[str, float]:
    database = Database(url)
    try:
        await upgrade(database, "services.scheduler:migrations")
        now = datetime.now(UTC)
        homes = await populate(database, count, seed, now)
        handlers = SchedulerHandlers()
        timings = []
        found = 0
        for i in range(patients):
            patient = Patient(
                referral_id=f"r{i}",
                patient_ref=f"p{i}",
                priority=Priority.ROUTINE,
                deadline=now + timedelta(days=30),
                departement="00",
                commune_insee=homes[i % len(homes)],
            )
            async with database.sessions() as session:
                transaction = await session.begin()
                t0 = time.perf_counter()
                booked = await handlers._book(session, patient, now)
                timings.append(time.perf_counter() - t0)
                await transaction.rollback()
            found += booked is not None
        timings.sort()
        return {
            "centres": count,
            "patients": patients,
            "assigned": found,
            "median_ms": statistics.median(timings) * 1000,
            "p95_ms": timings[int(len(timings) * 0.95)] * 1000,
        }
    finally:
        await database.dispose()


async def main_async(args: argparse.Namespace) -> list[dict[str, float]]:
    results = []
    for count in args.centres:
        if args.postgres:
            import asyncpg

            name = f"bench_slots_{count}_{int(time.time())}"
            admin = await asyncpg.connect(args.postgres)
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            try:
                results.append(await measure(f"{base}/{name}", count, args.patients, args.seed))
            finally:
                admin = await asyncpg.connect(args.postgres)
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.close()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{tmp}/scheduler.db"
                results.append(await measure(url, count, args.patients, args.seed))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centres", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--postgres", help="admin URL, e.g. postgresql://postgres@127.0.0.1/test")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    table = Table(title="Time to assign one patient (30 days of slots)")
    for column in ["active centres", "patients", "assigned", "median ms", "p95 ms"]:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r["centres"]),
            str(r["patients"]),
            str(r["assigned"]),
            f"{r['median_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"written {write_results('slot_search', {'args': vars(args), 'results': results})}"
    )


if __name__ == "__main__":
    main()
