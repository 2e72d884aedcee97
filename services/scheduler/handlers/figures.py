"""The scheduler's figures for /metrics (shared.metrics), read from its database before
a scrape: the waiting list per département and priority, and the places left today per
département (the rest of the Paris day, in the active centres, less what is booked)."""

from __future__ import annotations

from collections import defaultdict

from services.scheduler import store
from services.scheduler.domain.slots import capacity_between
from shared.db import Database
from shared.events import utcnow
from shared.metrics import ServiceMetrics, replace_gauge
from shared.paris import PARIS, paris_day_bounds


async def collect_figures(database: Database, metrics: ServiceMetrics) -> None:
    now = utcnow()
    _, end = paris_day_bounds(now.astimezone(PARIS).date())
    async with database.transaction() as session:
        waiting = await store.waiting_by_priority(session)
        schedules = await store.active_schedules(session)
        booked = await store.booked_by_centre(session, now, end)
    free: dict[str, int] = defaultdict(int)
    for schedule in schedules:
        places = capacity_between(schedule, now, end) - booked.get(schedule.centre_id, 0)
        free[schedule.departement] += max(0, places)
    replace_gauge(metrics.waiting, {key: float(count) for key, count in waiting.items()})
    replace_gauge(metrics.free_places, {(dep,): float(n) for dep, n in free.items()})
