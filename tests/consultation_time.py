"""The time of a consultation comes, for the tests that drive the services as processes.

A centre records "vu" from the slot's start and "absent" from its end, judged by each
service's own clock (shared/outcomes.py); the scheduler books only slots to come. So a
test that plays a consultation moves its appointment into the past, in the scheduler's
database (whose door decides) and the notifier's (the centres' HTTP door and day list),
the SQLite files the processes keep under ``AIGUILLAGE_DATA_DIR``, rather than wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from services.notifier.store.tables import centre_appointments
from services.scheduler.store.tables import appointments
from shared.db import Database


async def consultation_over(
    data_dir: Path, appointment_id: str, *, ended: timedelta = timedelta(minutes=1)
) -> tuple[datetime, datetime]:
    """The appointment moved to a 20-minute slot that ended ``ended`` ago; returns its
    new (start, end). The slot held in ``bookings`` stays where it was: nothing books
    into the past, and the door reads the appointment's own times."""
    end = datetime.now(UTC) - ended
    start = end - timedelta(minutes=20)
    for service, table, key in (
        ("scheduler", appointments, appointments.c.id),
        ("notifier", centre_appointments, centre_appointments.c.appointment_id),
    ):
        database = Database(f"sqlite+aiosqlite:///{data_dir / f'{service}.db'}")
        try:
            async with database.transaction() as session:
                await session.execute(
                    update(table).where(key == appointment_id).values(start=start, end=end)
                )
        finally:
            await database.dispose()
    return start, end
