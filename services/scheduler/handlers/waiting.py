"""The waiting list and the ARS's alerts: a patient no slot was found for waits, and is
served when capacity appears near them (``_drain``, a joint assignment of the first of
them); a département's waiting list and its saturation are told to the ARS once while
they last, and their end too."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from services.scheduler import store
from services.scheduler.domain.policy import Request
from services.scheduler.handlers.booking import (
    DRAIN_HORIZON,
    Booking,
    Patient,
    place_of,
)
from services.scheduler.handlers.messages import announce_assigned
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import AlertKind, CapacityAlert, Priority, ReferralWaitlisted

DRAIN_MISSES = 5
# Waiting patients placed jointly per drain (the rest one by one, as before).
DRAIN_BATCH = 32


class WaitingList(Booking):
    # When each département's saturation was last checked (time.monotonic, per process);
    # set by SchedulerHandlers' constructor.
    _checked: dict[str, float]

    async def _waitlist(
        self, delivery: Delivery, patient: Patient, now: datetime, reason: str
    ) -> None:
        session = delivery.session
        lat, lon = place_of(patient.commune_insee)
        await store.put_on_waitlist(
            session,
            referral_id=patient.referral_id,
            patient_ref=patient.patient_ref,
            priority=patient.priority.value,
            priority_rank=patient.priority.rank,
            deadline=patient.deadline,
            departement=patient.departement,
            commune_insee=patient.commune_insee,
            lat=lat,
            lon=lon,
            test_eligible=patient.test_eligible,
            queued_at=now,
        )
        waiting = await self._waiting(session, patient.departement)
        await delivery.emit(
            ReferralWaitlisted(
                referral_id=patient.referral_id,
                patient_ref=patient.patient_ref,
                priority=patient.priority,
                departement=patient.departement,
                reason=reason,
                waiting_in_departement=waiting,
            ),
            correlation_id=patient.referral_id,
        )
        # One alert while the département has a waiting list, not one per patient.
        if not await store.alert_active(session, patient.departement, AlertKind.WAITING_LIST):
            await self._alert(delivery, patient.departement, now, AlertKind.WAITING_LIST, waiting)

    async def _waiting(self, session: Any, departement: str) -> int:
        return await store.waiting_count(session, departement)

    async def _alert(
        self,
        delivery: Delivery,
        departement: str,
        now: datetime,
        kind: AlertKind,
        waiting: int,
        *,
        cleared: bool = False,
    ) -> None:
        load = await store.departement_load(delivery.session, departement, now)
        occupancy = load.booked / load.capacity if load.capacity else 1.0
        if not cleared:
            await store.record_alert(delivery.session, departement, kind.value, now)
        await delivery.emit(
            CapacityAlert(
                departement=departement,
                kind=kind,
                occupancy_next_24h=round(occupancy, 3),
                booked_next_24h=load.booked,
                capacity_next_24h=load.capacity,
                waiting=waiting,
                threshold=self.config.saturation_threshold,
                cleared=cleared,
            ),
            correlation_id=f"departement-{departement}",
        )

    async def _leave_waitlist(self, delivery: Delivery, referral_id: str, now: datetime) -> None:
        departement = await store.waiting_departement(delivery.session, referral_id)
        if departement is None:
            return
        await store.leave_waitlist(delivery.session, referral_id)
        await self._waiting_list_resolved(delivery, departement, now)

    async def _waiting_list_resolved(
        self, delivery: Delivery, departement: str, now: datetime
    ) -> None:
        """The département's waiting list emptied: its alert is cleared, and the ARS told."""
        if await self._waiting(delivery.session, departement):
            return
        if await store.clear_alert(delivery.session, departement, AlertKind.WAITING_LIST):
            await self._alert(delivery, departement, now, AlertKind.WAITING_LIST, 0, cleared=True)

    async def _check_saturation(self, delivery: Delivery, departement: str, now: datetime) -> None:
        """Alert the ARS when the next 24 hours of a département are nearly full."""
        last = self._checked.get(departement, 0.0)
        if time.monotonic() - last < self.config.saturation_check_seconds:
            return
        self._checked[departement] = time.monotonic()
        load = await store.departement_load(delivery.session, departement, now)
        saturated = not load.capacity or load.booked / load.capacity >= (
            self.config.saturation_threshold
        )
        active = await store.alert_active(delivery.session, departement, AlertKind.SATURATION.value)
        if saturated == active:
            return  # raised while it lasts, once; nothing new
        if not saturated:
            await store.clear_alert(delivery.session, departement, AlertKind.SATURATION.value)
        await self._alert(
            delivery,
            departement,
            now,
            AlertKind.SATURATION,
            await self._waiting(delivery.session, departement),
            cleared=not saturated,
        )

    async def _drain(self, delivery: Delivery, centre_id: str, now: datetime) -> None:
        """Capacity appeared at a centre: the patients waiting within reach of it are
        served, most urgent first."""
        session = delivery.session
        centre = await store.centre_row(session, centre_id)
        if centre is None or centre.status != "active":
            return
        rows = await store.waiting_near(session, centre.lat, centre.lon, self.config.max_travel_km)
        # The first of them placed together (a joint assignment), not one by one.
        plan = await self._plan(
            session,
            [
                Request(
                    row.referral_id,
                    Priority(row.priority),
                    (row.lat, row.lon),
                    max(as_utc(row.deadline), now + DRAIN_HORIZON),
                    self._reach(row.commune_insee),
                )
                for row in rows[:DRAIN_BATCH]
            ],
            now,
        )
        misses = 0
        drained: set[str] = set()
        for row in rows:
            # Read before another replica's drain committed: held, then checked again.
            if not await store.hold_waiting(session, row.referral_id):
                continue  # served meanwhile
            if await store.booked_appointment(session, row.referral_id) is not None:
                # Already booked (an entry an older version left): off the list, once.
                await store.leave_waitlist(session, row.referral_id)
                drained.add(row.departement)
                continue
            patient = Patient(
                referral_id=row.referral_id,
                patient_ref=row.patient_ref,
                priority=Priority(row.priority),
                deadline=max(as_utc(row.deadline), now + DRAIN_HORIZON),
                departement=row.departement,
                commune_insee=row.commune_insee,
                test_eligible=bool(row.test_eligible),
            )
            booked = await self._book(session, patient, now, plan.get(row.referral_id))
            if booked is None:
                misses += 1
                if misses >= DRAIN_MISSES:
                    break  # the centres around are full again
                continue
            await store.leave_waitlist(session, row.referral_id)
            await announce_assigned(delivery, patient, booked)
            drained.add(row.departement)
        for departement in drained:
            await self._waiting_list_resolved(delivery, departement, now)
