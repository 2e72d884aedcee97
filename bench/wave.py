"""A national wave: N referrals (100,000 by default) spread over the 101 départements
by population, in one burst, onto 2,000 active centres; time to drain, nothing lost,
memory.

    python bench/wave.py [--n 100000] [--centres 2000] [--sqlite]
                         [--curve ../shared/data/covid_hospit_2020.csv [--day-seconds 10]]

``--curve``: the arrivals follow the first wave (issue 32) instead of one burst: each
département's share of each day is its new hospital admissions that day in Santé
publique France's figures (Δhospitalised + Δreturned home + Δdeaths, the data's
README), scaled to N in all; a day of the wave lasts ``--day-seconds`` of the bench,
its arrivals spread at random within it, each from a commune of its département drawn by
population. The drain is timed from the first submission, as the burst's is.

"Nothing lost": every referral reaches a final state the observer saw on the broker
(the centre notified, waitlisted, escalated, home follow-up...), and every dead-letter
queue is empty at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import random
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import aio_pika
from aiormq.exceptions import DeliveryError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from stack import (
    BROKER,
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
from aiguillage.observer import FINAL, Observer
from shared.events import (
    CentreActivated,
    CentreKind,
    Envelope,
    ReferralSubmitted,
)
from shared.geo import Commune, communes, communes_in_departement, departements
from shared.publisher import EventPublisher
from shared.settings import ServiceName
from shared.topology import dead_letter_queue

console = Console()
KINDS = [CentreKind.TEMPORARY_DEDICATED, CentreKind.MSP, CentreKind.CENTRE_DE_SANTE]


def spread(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` split in proportion to ``weights``, at least one each (largest remainder)."""
    whole = sum(weights.values())
    shares = {k: max(1, total * w // whole) for k, w in weights.items()}
    rest = sorted(weights, key=lambda k: (total * weights[k]) % whole, reverse=True)
    for key in rest[: max(0, total - sum(shares.values()))]:
        shares[key] += 1
    return shares


def admissions(path: Path) -> dict[tuple[int, str], int]:
    """New hospital admissions per (day of the wave, département), from the SPF file:
    Δhospitalised + Δreturned home + Δdeaths (the latter two are cumulative), none below
    0. The first day has no day before it: the wave starts on the second."""
    totals: dict[str, list[tuple[str, int]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["departement"]:
                continue  # no département: not placeable
            stock = sum(int(row[k] or 0) for k in ("hospitalises", "retours_domicile", "deces"))
            totals.setdefault(row["departement"], []).append((row["jour"], stock))
    days = sorted({day for series in totals.values() for day, _ in series})
    index = {day: i for i, day in enumerate(days)}
    counts: dict[tuple[int, str], int] = {}
    for code, series in totals.items():
        series.sort()
        for (_, before), (day, stock) in itertools.pairwise(series):
            counts[(index[day] - 1, code)] = max(0, stock - before)
    return counts


def curve_arrivals(
    path: Path, n: int, day_seconds: float, rng: random.Random
) -> list[tuple[float, Commune]]:
    """N arrivals shaped by the wave: (seconds after the start, home), in time order."""
    homes: dict[str, tuple[list[Commune], list[int]]] = {}
    for code in {code for _, code in admissions(path)}:
        places = communes_in_departement(code)
        if sum(c.population for c in places) > 0:  # a code the communes file does not know
            homes[code] = (places, [c.population for c in places])
    weights = {key: w for key, w in admissions(path).items() if w > 0 and key[1] in homes}
    whole = sum(weights.values())
    shares = {key: n * w // whole for key, w in weights.items()}
    rest = sorted(weights, key=lambda k: (n * weights[k]) % whole, reverse=True)
    for key in rest[: n - sum(shares.values())]:
        shares[key] += 1
    arrivals: list[tuple[float, Commune]] = []
    for (day, code), count in shares.items():
        places, population = homes[code]
        for home in rng.choices(places, weights=population, k=count):
            arrivals.append(((day + rng.random()) * day_seconds, home))
    arrivals.sort(key=lambda a: a[0])
    return arrivals


def wave_centres(count: int, rng: random.Random) -> list[CentreActivated]:
    """Centres in each département's most populous communes, as many as its population
    calls for."""
    population = {
        d.code: sum(c.population for c in communes_in_departement(d.code)) for d in departements()
    }
    centres: list[CentreActivated] = []
    for code, share in spread(count, population).items():
        biggest = sorted(communes_in_departement(code), key=lambda c: -c.population)
        for i in range(share):
            place = biggest[i % len(biggest)]
            centres.append(
                bench_centre(
                    f"wave-{code}-{i}",
                    f"Centre {place.name} {i + 1}",
                    place.insee,
                    rng.randint(2, 6),
                    minutes=20,
                    kind=rng.choice(KINDS),
                )
            )
    return centres


def wave_referral(rng: random.Random, home: Commune, reference: str) -> ReferralSubmitted:
    # One in ten shows a severity sign: the protocol escalates it, no centre involved.
    severe = rng.random() < 0.1
    born = date(1955 + rng.randint(0, 45), rng.randint(1, 12), rng.randint(1, 28))
    return bench_referral(reference, home.insee, born, reply_to="wave", severe=severe)


async def dead_letters(namespace: str) -> dict[str, int]:
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        counts = {}
        for service in ServiceName:
            name = dead_letter_queue(namespace, service.value)
            queue = await channel.declare_queue(name, passive=True)
            counts[service.value] = queue.declaration_result.message_count or 0
        return counts


async def run(
    n: int, centre_count: int, sqlite: bool, curve: Path | None = None, day_seconds: float = 10.0
) -> dict[str, object]:
    rng = random.Random(2020)
    centres = wave_centres(centre_count, rng)
    # The burst: every referral at once, homes drawn by population; the curve: when and
    # where the first wave's admissions say.
    offsets: list[float] | None = None
    if curve is None:
        homes = communes()
        places = rng.choices(homes, weights=[c.population for c in homes], k=n)
    else:
        timed = curve_arrivals(curve, n, day_seconds, rng)
        offsets = [t for t, _ in timed]
        places = [home for _, home in timed]
    step = 200 if offsets is None else 20
    observer = Observer(BROKER, "", keep_events=False)
    results: dict[str, object] = {
        "n": n,
        "centres": len(centres),
        "arrivals": "burst" if curve is None else f"curve {curve.name}, {day_seconds} s a day",
    }
    async with running_stack(sqlite, [c.centre_id for c in centres], observer) as stack:
        async with EventPublisher(BROKER, stack.namespace, "bench") as publisher:
            with console.status(f"activating {len(centres)} centres..."):
                for chunk in range(0, len(centres), 100):
                    await asyncio.gather(
                        *(
                            publisher.publish(c, correlation_id=c.centre_id)
                            for c in centres[chunk : chunk + 100]
                        )
                    )
                await wait_for_drain(BROKER, f"{stack.namespace}.scheduler.centres", 600)
                await wait_for_drain(BROKER, f"{stack.namespace}.notifier.centres", 600)
            cpu_before = cpu_seconds()
            started = time.monotonic()
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                sent = progress.add_task("submitted", total=n)
                final = progress.add_task("final state", total=n)
                refs = [f"w-{uuid.uuid4().hex[:12]}" for _ in range(n)]

                async def watch() -> None:
                    while True:
                        done = sum(t.state in FINAL for t in observer.tracks.values())
                        progress.update(final, completed=done)
                        await asyncio.sleep(1)

                watcher = asyncio.create_task(watch())
                refused = 0

                async def submit(envelope: Envelope) -> None:
                    # The door's queue is bounded (reject-publish): a full door nacks,
                    # and a sender waits and sends the same message again, as Centre
                    # 15's software does. The nacked message was not taken.
                    nonlocal refused
                    while True:
                        try:
                            await publisher.publish_envelope(envelope, "referral.submitted")
                            return
                        except DeliveryError:
                            refused += 1
                            await asyncio.sleep(0.5)

                for chunk in range(0, n, step):
                    batch = range(chunk, min(chunk + step, n))
                    if offsets is not None:
                        await asyncio.sleep(max(0.0, started + offsets[chunk] - time.monotonic()))
                    for i in batch:
                        observer.submitted(refs[i])
                    await asyncio.gather(
                        *(
                            submit(
                                Envelope.wrap(
                                    wave_referral(rng, places[i], refs[i]),
                                    source="gp",
                                    correlation_id=refs[i],
                                )
                            )
                            for i in batch
                        )
                    )
                    progress.update(sent, completed=batch.stop)
                published = time.monotonic() - started
                deadline = time.monotonic() + max(600.0, n * 0.2)
                # Polled: a full scan of the tracks on every event would cost more than
                # the wave itself.
                while not observer.done() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(2)
                watcher.cancel()
                drained = time.monotonic() - started
        states = Counter(t.state or "none" for t in observer.tracks.values())
        lost = sum(t.state not in FINAL for t in observer.tracks.values())
        results |= {
            "publish_s": round(published, 1),
            "refused_by_the_full_door_then_sent_again": refused,
            "drain_s": round(drained, 1),
            "referrals_per_s": round(n / drained, 1),
            "final_states": dict(states),
            "not_final": lost,
            "dead_letters": await dead_letters(stack.namespace),
            "cpu_ms_per_referral": cpu_ms_per_item(cpu_before, n),
            "peak_rss_mb": {
                name: round(peak_rss_mb(proc.pid), 1) for name, proc in stack.services.procs.items()
            },
            "observer_rss_mb": round(_own_rss(), 1),
        }
    return results


def _own_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument(
        "--curve",
        type=Path,
        help="arrivals shaped by the first wave's daily admissions per département "
        "(../shared/data/covid_hospit_2020.csv), not one burst",
    )
    parser.add_argument(
        "--day-seconds", type=float, default=10.0, help="with --curve: a day of the wave lasts"
    )
    args = parser.parse_args()
    result = run_bench(run(args.n, args.centres, args.sqlite, args.curve, args.day_seconds))
    result |= {
        "database": "sqlite" if args.sqlite else "postgresql",
        "when": datetime.now(UTC).isoformat(),
    }
    table = Table(title=f"National wave: {args.n} referrals, {result['centres']} centres")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "arrivals",
        "publish_s",
        "refused_by_the_full_door_then_sent_again",
        "drain_s",
        "referrals_per_s",
        "not_final",
        "observer_rss_mb",
    ):
        table.add_row(key, str(result[key]))
    for group in ("final_states", "dead_letters", "cpu_ms_per_referral", "peak_rss_mb"):
        for name, value in result[group].items():  # type: ignore[attr-defined]
            table.add_row(f"{group}: {name}", str(value))
    console.print(table)
    console.print(f"written {write_results('wave', result)}")


if __name__ == "__main__":
    main()
