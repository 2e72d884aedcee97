"""The saturation forecast of each département (issue 31, ``domain/forecast.py``):
computed every ``AIGUILLAGE_FORECAST_EVERY_SECONDS`` (``ForecastWatch``) and after a
capacity change of one of its centres (``CentreHandlers`` marks it due, ``DueForecasts``;
the watch forecasts it a few seconds later, once for a burst of changes, never in the
consumer's transaction: an ARS activating 155 centres in a row waits for no
simulation), published as
``capacity.forecast.<département>``; when its median hours until full falls below
``AIGUILLAGE_FORECAST_ALERT_HOURS`` the ARS's ``capacity.alert`` (kind ``forecast``) is
raised, once while it lasts, and cleared when it ends. A forecast from less than a day
of arrivals is published but raises nothing: its rate is a few minutes' count, a guess
(the first patients of a département just opened would alert it at once).

Inputs: the arrivals of the last 7 days (recorded as each oriented patient arrives), the
active centres' schedules and their bookings (the free places of the next hours), the
waiting list per priority, the suspended centres (the reserve). The simulation runs in
a worker thread: the event loop keeps serving deliveries meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import structlog
from sqlalchemy import event as sa_event

from services.scheduler import store
from services.scheduler.domain.forecast import (
    BOOKED,
    Forecast,
    ForecastSettings,
    ReserveCentre,
    box_places_by_hour,
    estimate_rate,
    forecast,
    free_places_by_hour,
    hourly_counts,
    reserve_to_open,
    simulate_arrivals,
)
from services.scheduler.domain.slots import capacity_between
from services.scheduler.handlers.waiting import WaitingList
from shared.consumer import Delivery
from shared.db import Database
from shared.events import AlertKind, CapacityAlert, CapacityForecast, EventPayload, Priority
from shared.events.forecast import MAX_SUGGESTED
from shared.outbox import add_to_outbox
from shared.settings import ServiceName

log = structlog.get_logger(__name__)

FIT = timedelta(days=7)
KEEP = timedelta(days=8)  # arrivals older than this are forgotten
SETTLED = timedelta(days=1)  # the history a forecast needs before it alerts anyone
# A box the ARS opens: 08:00-20:00 every day, 20-minute consultations.
BOX_OPENS, BOX_CLOSES, BOX_MINUTES = 8, 20, 20
SETTINGS = ForecastSettings()

Emit = Callable[[EventPayload, str], Awaitable[None]]
_PRIORITIES = frozenset(p.value for p in Priority)


@dataclass(frozen=True)
class Inputs:
    hourly: dict[Priority, Any]
    free: Any
    waiting: dict[Priority, int]
    reserves: list[ReserveCentre]
    near: tuple[float, float] | None
    first: datetime | None  # the earliest arrival of the last 7 days


async def _inputs(session: Any, departement: str, now: datetime) -> Inputs:
    rows = await store.arrivals_since(session, departement, now - FIT)
    hours = SETTINGS.fit_days * 24
    hourly: dict[Priority, Any] = {
        p: hourly_counts((t for t, q in rows if q == p.value), now, hours) for p in BOOKED
    }
    schedules = await store.active_schedules(session, departement=departement)
    tail = SETTINGS.tail_hours
    ids = [s.centre_id for s in schedules]
    booked = await store.booked_slots(session, ids, now, now + timedelta(hours=tail))
    waiting = {
        Priority(p): n
        for p, n in (await store.waiting_in(session, departement)).items()
        if p in _PRIORITIES
    }
    reserves = [
        ReserveCentre(r.id, r.lat, r.lon, r.boxes)
        for r in await store.reserve_centres(session, departement)
    ]
    near = await store.demand_point(session, departement, now - FIT)
    free = free_places_by_hour(schedules, booked, now, tail)
    return Inputs(hourly, free, waiting, reserves, near, rows[0][0] if rows else None)


def _compute(inputs: Inputs, departement: str, now: datetime) -> Forecast:
    rate = estimate_rate(inputs.hourly, now, SETTINGS)
    box = box_places_by_hour(
        BOX_OPENS, BOX_CLOSES, BOX_MINUTES, now, SETTINGS.tail_hours, SETTINGS.timezone
    )
    return forecast(
        rate,
        inputs.free,
        inputs.waiting,
        box,
        now,
        SETTINGS,
        seed=_seed(departement, now),
        open_hours=box,
    )


def _suggested(inputs: Inputs, boxes: int) -> list[ReserveCentre]:
    """The reserve centres nearest the demand (their own middle when no arrival yet)
    whose boxes cover ``boxes``."""
    near = inputs.near
    if near is None and inputs.reserves:
        near = (
            float(np.mean([r.lat for r in inputs.reserves])),
            float(np.mean([r.lon for r in inputs.reserves])),
        )
    return reserve_to_open(inputs.reserves, near, boxes) if near else []


def _seed(departement: str, now: datetime) -> int:
    # The same département and hour draw the same paths: a forecast read twice agrees.
    return zlib.crc32(f"{departement}:{now:%Y%m%d%H}".encode())


async def forecast_departement(
    session: Any, emit: Emit, departement: str, now: datetime, alert_hours: float
) -> CapacityForecast:
    """Compute the département's forecast, publish it, and raise or clear its alert."""
    inputs = await _inputs(session, departement, now)
    result = await asyncio.to_thread(_compute, inputs, departement, now)
    suggested = _suggested(inputs, result.boxes_72h)
    p10, p50, p90 = result.hours_until_full
    event = CapacityForecast(
        departement=departement,
        computed_at=now,
        horizon_hours=SETTINGS.horizon_hours,
        hours_until_full_p10=p10,
        hours_until_full_p50=p50,
        hours_until_full_p90=p90,
        full_within_horizon=round(result.full_within_horizon, 3),
        arrivals_per_day=round(result.rate.per_day, 2),
        growth_per_day=round(result.rate.growth, 4),
        free_places_24h=int(inputs.free[:24].sum()),
        waiting=sum(inputs.waiting.values()),
        boxes_needed_24h=result.boxes_24h,
        boxes_needed_72h=result.boxes_72h,
        reserve_centres=[c.centre_id for c in suggested[:MAX_SUGGESTED]],
        alert_hours=alert_hours,
    )
    await emit(event, f"departement-{departement}")
    settled = inputs.first is not None and now - inputs.first >= SETTLED
    await _alert_on(session, emit, event, now, settled)
    return event


async def _alert_on(
    session: Any, emit: Emit, event: CapacityForecast, now: datetime, settled: bool
) -> None:
    """The ARS's alert while the median hours until full is under its threshold (and
    the forecast stands on a day of arrivals: ``settled``)."""
    departement = event.departement
    p50 = event.hours_until_full_p50
    soon = settled and p50 is not None and p50 < event.alert_hours
    active = await store.alert_active(session, departement, AlertKind.FORECAST.value)
    if soon == active:
        return  # raised once while it lasts
    if soon:
        await store.record_alert(session, departement, AlertKind.FORECAST.value, now)
    else:
        await store.clear_alert(session, departement, AlertKind.FORECAST.value)
    load = await store.departement_load(session, departement, now)
    await emit(
        CapacityAlert(
            departement=departement,
            kind=AlertKind.FORECAST,
            occupancy_next_24h=round(load.booked / load.capacity, 3) if load.capacity else 1.0,
            booked_next_24h=load.booked,
            capacity_next_24h=load.capacity,
            waiting=event.waiting,
            threshold=event.alert_hours,
            cleared=not soon,
        ),
        f"departement-{departement}",
    )


BLOCK_HOURS = 6  # the ARS's chart: arrivals and places per 6 hours, 72 h each side


def _arrival_band(forecast_: Forecast, departement: str, now: datetime) -> Any:
    """(3, blocks): the 10th, 50th, 90th percentiles of the arrivals per block to come,
    on the forecast's own paths (same seed)."""
    rng = np.random.default_rng(_seed(departement, now))
    paths = simulate_arrivals(forecast_.rate, now, SETTINGS, rng).sum(axis=2)
    blocks = paths.reshape(len(paths), -1, BLOCK_HOURS).sum(axis=2)
    return np.quantile(blocks, [0.1, 0.5, 0.9], axis=0, method="inverted_cdf")


async def forecast_view(session: Any, departement: str, now: datetime) -> dict[str, Any]:
    """The département's forecast as the ARS reads it (nothing published): hours until
    full and its band, boxes needed, reserve centres suggested, and per 6 hours over
    the last and next 72 hours the arrivals, the places of the active centres, the free
    places ahead and the arrivals forecast (P10, P50, P90)."""
    now = now.replace(minute=0, second=0, microsecond=0)
    inputs = await _inputs(session, departement, now)
    result = await asyncio.to_thread(_compute, inputs, departement, now)
    band = await asyncio.to_thread(_arrival_band, result, departement, now)
    horizon = SETTINGS.horizon_hours
    rows = await store.arrivals_since(session, departement, now - timedelta(hours=horizon))
    past = hourly_counts((t for t, _ in rows), now, horizon).reshape(-1, BLOCK_HOURS).sum(axis=1)
    schedules = await store.active_schedules(session, departement=departement)
    free = inputs.free[:horizon].reshape(-1, BLOCK_HOURS).sum(axis=1)
    blocks = []
    for k in range(-len(past), len(free)):
        start = now + timedelta(hours=k * BLOCK_HOURS)
        end = start + timedelta(hours=BLOCK_HOURS)
        ahead = k >= 0
        blocks.append(
            {
                "start": start.isoformat(),
                "ahead": ahead,
                "arrivals": None if ahead else int(past[k + len(past)]),
                "places": sum(capacity_between(s, start, end) for s in schedules),
                "free": int(free[k]) if ahead else None,
                "forecast": [int(band[q][k]) for q in range(3)] if ahead else None,
            }
        )
    p10, p50, p90 = result.hours_until_full
    return {
        "departement": departement,
        "computed_at": now.isoformat(),
        "horizon_hours": horizon,
        "hours_until_full": {"p10": p10, "p50": p50, "p90": p90},
        "full_within_horizon": round(result.full_within_horizon, 3),
        "arrivals_per_day": round(result.rate.per_day, 1),
        "growth_per_day": round(result.rate.growth, 3),
        "waiting": sum(inputs.waiting.values()),
        "boxes_needed_24h": result.boxes_24h,
        "boxes_needed_72h": result.boxes_72h,
        "reserve_centres": [c.centre_id for c in _suggested(inputs, result.boxes_72h)],
        "block_hours": BLOCK_HOURS,
        "blocks": blocks,
    }


def outbox_emit(session: Any) -> Emit:
    """Stage events in the session's transaction (no delivery: the periodic watch)."""

    async def emit(payload: EventPayload, correlation_id: str) -> None:
        await add_to_outbox(
            session, payload, source=ServiceName.SCHEDULER.value, correlation_id=correlation_id
        )

    return emit


async def forecast_all(database: Database, now: datetime, alert_hours: float) -> int:
    """Every département with arrivals or an active centre, each in its own transaction;
    the arrivals past ``KEEP`` forgotten. Returns how many were forecast."""
    async with database.transaction() as session:
        departements = await store.forecast_departements(session, now - FIT)
        await store.forget_arrivals(session, now - KEEP)
    return await forecast_some(database, departements, now, alert_hours)


class DueForecasts:
    """The départements whose capacity changed since their last forecast: a decision of
    the ARS marks its département once its transaction commits, and ``ForecastWatch``
    forecasts each marked one once, a few seconds later, off the consumer's path (155
    centres activated in a row give one forecast per département, not 155)."""

    def __init__(self) -> None:
        self._due: set[str] = set()
        self.wake = asyncio.Event()

    def mark(self, departement: str) -> None:
        self._due.add(departement)
        self.wake.set()

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self._due)

    def take(self) -> list[str]:
        """The départements due, forgotten here (sorted: a stable order)."""
        due, self._due = sorted(self._due), set()
        self.wake.clear()
        return due


class Forecasting(WaitingList):
    """A capacity change marks its département due for a forecast (``DueForecasts``);
    the forecast itself runs in ``ForecastWatch``, not in the change's transaction."""

    # The service's clock (tests inject one) and the départements due; set by
    # SchedulerHandlers' constructor.
    clock: Callable[[], datetime]
    forecasts_due: DueForecasts

    async def _forecast_after_change(self, delivery: Delivery, centre_id: str) -> None:
        row = await store.centre_row(delivery.session, centre_id)
        if row is None:
            return
        departement, due = row.departement, self.forecasts_due

        def committed(_session: object) -> None:
            due.mark(departement)  # what the watch reads is then the committed change

        sa_event.listen(delivery.session.sync_session, "after_commit", committed, once=True)


async def forecast_some(
    database: Database, departements: list[str], now: datetime, alert_hours: float
) -> int:
    """The given départements' forecasts, each in its own transaction."""
    for departement in departements:
        async with database.transaction() as session:
            await forecast_departement(session, outbox_emit(session), departement, now, alert_hours)
    return len(departements)


class ForecastWatch:
    """Runs ``forecast_all`` every ``every`` seconds on the given clock and, between
    rounds, the départements ``due`` marks: ``coalesce`` seconds after the first mark
    (the burst of an ARS's decisions gathers), then at most once per ``coalesce``
    seconds."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        notify: Callable[[], None],
        every: float,
        alert_hours: float,
        due: DueForecasts | None = None,
        coalesce: float = 5.0,
    ) -> None:
        self.database, self.clock, self.notify = database, clock, notify
        self.every, self.alert_hours = every, alert_hours
        self.due, self.coalesce = due or DueForecasts(), coalesce
        self._task: asyncio.Task[None] | None = None
        self.rounded = asyncio.Event()  # a round over every département done (tests)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_due(self) -> int:
        """Forecast the départements due now; how many."""
        return await self._guarded(forecast_some, self.due.take())

    async def run_all(self) -> int:
        """Forecast every département (the marks it covers forgotten); how many."""
        self.due.take()
        return await self._guarded(forecast_all)

    async def _guarded(self, step: Callable[..., Awaitable[int]], *args: Any) -> int:
        try:
            done = await step(self.database, *args, self.clock(), self.alert_hours)
        except Exception:  # a database away for a while: the next round tries again
            log.exception("saturation forecast failed")
            return 0
        if done:
            self.notify()  # the relay publishes them now, not at its next poll
        return int(done)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            if loop.time() >= next_round:
                await self.run_all()
                self.rounded.set()
                next_round = loop.time() + self.every
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.due.wake.wait(), next_round - loop.time())
            if self.due.pending:
                await asyncio.sleep(self.coalesce)  # the rest of the burst gathers
                await self.run_due()
