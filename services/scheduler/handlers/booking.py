"""The booking engine: the consumers call it, it consumes nothing.

A patient's candidate centres (the spatial prefilter, locked for a booking), their free
places ranked by the online policy (``domain/policy.py``), the first still free booked;
a consumer batch's new referrals planned together first (``plan_batch``, the joint
assignment), each handler then booking its planned place if still free. The ranking is
also what a patient is offered (``handlers/patient_requests.py``), so that both keep
the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from services.scheduler import store
from services.scheduler.domain.assignment import Candidate, Weights
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.policy import (
    Demand,
    PolicySettings,
    Request,
    assign_jointly,
    rank_priced,
)
from services.scheduler.domain.reach import DEFAULT_LEAD_MINUTES, Reach, commune_area
from shared.consumer import PermanentError
from shared.db import as_utc
from shared.events import (
    Decision,
    Envelope,
    Priority,
    ReferralRegulated,
    new_id,
    utcnow,
)
from shared.geo import commune

# A patient drained from the waiting list has often passed their deadline: they get
# the soonest slot within this horizon rather than none.
DRAIN_HORIZON = timedelta(hours=48)
SATURATION_THRESHOLD = 0.9
CONTENTION_ROUNDS = 5
# New referrals of one consumer batch placed jointly (the rest one by one; setting
# AIGUILLAGE_JOINT_BATCH): the joint assignment's work grows with the square of the
# batch (each one is offered as many places per centre as the batch holds), and a batch
# is answered when it commits.
JOINT_BATCH = 8
# Where a consumer batch's joint plan waits for its handlers (session.info: the batch's
# own transaction; a delivery replayed alone has its own session, and no plan).
PLAN = "scheduler.plan"


@dataclass(frozen=True)
class Patient:
    referral_id: str
    patient_ref: str
    priority: Priority
    deadline: datetime
    departement: str
    commune_insee: str
    # Regulation's verdict, told to the centre with the booking: it prescribes the test.
    test_eligible: bool = False


@dataclass(frozen=True)
class Booked:
    appointment_id: str
    slot: Candidate
    centre: Any  # the centre's row
    test_eligible: bool = False


def place_of(insee: str) -> tuple[float, float]:
    """The commune's (lat, lon); an unknown commune is never retried."""
    found = commune(insee)
    if found is None:
        raise PermanentError("unknown_commune", f"no commune with INSEE code {insee}")
    return found.lat, found.lon


class Nearby(NamedTuple):
    """The centres a patient may be booked at: where the patient is, the nearest active
    centres within the travel limit (ids, schedules), and how many (``options``)."""

    lat: float
    lon: float
    ids: list[str]
    schedules: list[CentreSchedule]
    options: int


class Planned(NamedTuple):
    """A joint plan's slot for one patient, and how many centres they had in reach."""

    candidate: Candidate
    options: int


@dataclass(frozen=True)
class SchedulerConfig:
    weights: Weights = field(default_factory=Weights)
    policy: PolicySettings = field(default_factory=PolicySettings)
    max_travel_km: float = 60.0
    candidate_centres: int = 40
    # No slot starts sooner than this after booking, travel not counted (domain/reach.py).
    lead_minutes: float = DEFAULT_LEAD_MINUTES
    joint_batch: int = JOINT_BATCH
    saturation_threshold: float = SATURATION_THRESHOLD
    # A département's saturation is checked at most this often (per process); its alert
    # is raised once when it begins and cleared when it ends.
    saturation_check_seconds: float = 30.0
    # The forecast median hours until full under which the ARS is alerted (forecasts.py).
    forecast_alert_hours: float = 24.0


class Booking:
    """The engine, shared by every handler of ``SchedulerHandlers`` (which sets
    ``config`` in its constructor)."""

    config: SchedulerConfig

    async def plan_batch(self, session: Any, envelopes: Sequence[Envelope]) -> None:
        """A consumer batch's new referrals for a centre, placed together before its
        handlers run (``policy.assign_jointly``): each handler then books its planned
        slot if still free, its own choice otherwise (``_book``). The batch holds every
        type its queue receives (cancellations too): only the orientations are planned."""
        regulated = [
            event
            for envelope in envelopes
            if envelope.type == ReferralRegulated.event_type
            and (event := envelope.payload_as(ReferralRegulated, tolerant=True)).decision
            is Decision.ORIENT
        ]
        if len(regulated) < 2:
            return
        booked = await store.booked_among(session, [e.referral_id for e in regulated])
        now = utcnow()
        requests = [
            Request(
                e.referral_id,
                e.priority or Priority.ROUTINE,
                place_of(e.commune_insee),
                e.deadline or now + timedelta(hours=24),
                self._reach(e.commune_insee),
            )
            for e in regulated
            if e.referral_id not in booked  # a confirmation or a move: not placed here
        ][: self.config.joint_batch]
        if len(requests) > 1:
            session.info[PLAN] = await self._plan(session, requests, now)

    async def _plan(
        self, session: Any, requests: list[Request], now: datetime
    ) -> dict[str, Planned]:
        """Patients placed jointly: referral -> the slot its booking tries first
        (policy.assign_jointly over their nearest centres, locked here in one order)."""
        ids: set[str] = set()
        options: dict[str, int] = {}
        for request in requests:
            lat, lon = request.location
            near = await store.nearby_centre_ids(
                session,
                lat,
                lon,
                k=self.config.candidate_centres,
                max_km=self.config.max_travel_km,
            )
            ids.update(centre_id for centre_id, _ in near)
            options[request.referral_id] = len(near)
        if len(requests) < 2 or not ids:
            return {}  # one patient: _book's own choice is the same
        centre_ids = sorted(ids)
        await store.lock_centres(session, centre_ids)
        horizon = max(max(r.deadline for r in requests), self._windows_end(now))
        plan = assign_jointly(
            requests,
            now=now,
            centres=await store.active_schedules(session, ids=centre_ids),
            booked=await store.booked_slots(session, centre_ids, now, horizon),
            demand=await self._demand(session, centre_ids, now),
            weights=self.config.weights,
            policy=self.config.policy,
            nearest=self.config.candidate_centres,
            max_km=self.config.max_travel_km,
        )
        return {ref: Planned(slot, options[ref]) for ref, slot in plan.items()}

    async def _book(
        self, session: Any, patient: Patient, now: datetime, planned: Planned | None = None
    ) -> Booked | None:
        """The best free slot before the patient's deadline at a centre within reach
        (the policy's, or ``planned`` by a joint assignment when still free), booked;
        None if none fits. Each booking records how many centres the patient had in
        reach (``options``: the policy's few-option holds learn from it)."""
        if planned is not None:
            # A joint plan (_plan) chose it among this patient's nearest centres, and
            # locked them, in this transaction: booked at once if still free.
            booked = await self._try(session, patient, planned.candidate, now, planned.options)
            if booked is not None:
                return booked
            # Taken meanwhile (by one before it in the batch): the policy's own choice.
        near = await self.nearby(session, patient)
        if near is None:
            return None
        for _ in range(CONTENTION_ROUNDS):
            candidates = await self.rank(session, patient, near, now)
            if not candidates:
                return None
            for candidate in candidates:
                booked = await self._try(session, patient, candidate, now, near.options)
                if booked is not None:
                    return booked
        # Replicas took every candidate, several rounds running: hand the message back.
        raise RuntimeError("slots taken by concurrent bookings; will retry")

    async def nearby(self, session: Any, patient: Patient, *, lock: bool = True) -> Nearby | None:
        """The active centres within the patient's reach (None: not one), locked for a
        booking (``lock``; a patient reading their offers books nothing)."""
        lat, lon = place_of(patient.commune_insee)
        nearby = await store.nearby_centre_ids(
            session, lat, lon, k=self.config.candidate_centres, max_km=self.config.max_travel_km
        )
        if not nearby:
            return None
        ids = [centre_id for centre_id, _ in nearby]
        if lock:
            await store.lock_centres(session, ids)
        schedules = await store.active_schedules(session, ids=ids)
        return Nearby(lat, lon, ids, schedules, len(nearby))

    async def rank(
        self,
        session: Any,
        patient: Patient,
        near: Nearby,
        now: datetime,
        *,
        per_centre: int = 3,
        limit: int = 10,
        until: datetime | None = None,
    ) -> list[Candidate]:
        """The free places the patient may take, best first (``policy.rank_priced``):
        the one ranking behind a booking and the slots a patient is offered
        (handlers/patient_requests.py), so that both keep the same rules. ``until``: only
        the places starting by then (at most the patient's deadline)."""
        taken = await store.booked_slots(session, near.ids, now, self._horizon(patient, now))
        return rank_priced(
            patient_lat=near.lat,
            patient_lon=near.lon,
            now=now,
            deadline=patient.deadline if until is None else min(until, patient.deadline),
            priority=patient.priority,
            centres=near.schedules,
            booked=taken,
            demand=await self._demand(session, near.ids, now),
            weights=self.config.weights,
            policy=self.config.policy,
            reach=self._reach(patient.commune_insee),
            per_centre=per_centre,
            limit=limit,
            options=near.options,
        )

    async def _try(
        self, session: Any, patient: Patient, candidate: Candidate, now: datetime, options: int
    ) -> Booked | None:
        """The patient booked into ``candidate``, or None if someone holds it already."""
        appointment_id = new_id()
        if not await store.try_book(
            session,
            candidate,
            appointment_id=appointment_id,
            referral_id=patient.referral_id,
            patient_ref=patient.patient_ref,
            priority=patient.priority.value,
            test_eligible=patient.test_eligible,
            now=now,
            options=options,
        ):
            return None
        centre = await store.centre_row(session, candidate.centre_id)
        return Booked(appointment_id, candidate, centre, patient.test_eligible)

    def _reach(self, insee: str) -> Reach:
        """The patient's reach from their commune: no slot before they can be there
        (domain/reach.py)."""
        found = commune(insee)
        if found is None:
            raise PermanentError("unknown_commune", f"no commune with INSEE code {insee}")
        return Reach.of(commune_area(found), self.config.lead_minutes)

    def _horizon(self, patient: Patient, now: datetime) -> datetime:
        return max(patient.deadline, self._windows_end(now))

    def _windows_end(self, now: datetime) -> datetime:
        # The bookings the policy must see beyond a deadline: over the urgent reserve's
        # and the few-option holds' windows, whose latest free places it holds.
        policy = self.config.policy
        return now + timedelta(minutes=max(policy.reserve_minutes, policy.few_hold_minutes))

    async def _demand(self, session: Any, ids: list[str], now: datetime) -> dict[str, Demand]:
        since = now - timedelta(minutes=self.config.policy.rate_window_minutes)
        return await store.recent_demand(session, ids, since, self.config.policy.few_options)

    async def _book_instead(
        self, session: Any, old: Any, patient: Patient, now: datetime
    ) -> Booked | None:
        """Another slot for a booked patient, or None (they keep theirs). Their slot stays
        held while another is sought, so the new one is never the same; the appointment
        is set aside meanwhile, as the database allows one booked appointment per
        referral; the old slot is released once the new one is booked."""
        await store.set_appointment_status(session, old.id, "cancelled")
        booked = await self._book(session, patient, now)
        if booked is None:
            await store.set_appointment_status(session, old.id, old.status)
            return None
        await store.release(session, old.id)
        return booked

    async def _cancel(self, session: Any, appointment_id: str) -> None:
        await store.release(session, appointment_id)
        await store.set_appointment_status(session, appointment_id, "cancelled")

    async def _patient_of(self, session: Any, appt: Any, now: datetime) -> Patient:
        """The patient of a booked appointment, to place again (their origin as
        regulation gave it; a deadline no sooner than ``DRAIN_HORIZON``)."""
        origin = await store.referral_origin(session, appt.referral_id)
        return Patient(
            referral_id=appt.referral_id,
            patient_ref=appt.patient_ref,
            priority=Priority(appt.priority),
            deadline=max(as_utc(appt.start), now + DRAIN_HORIZON),
            departement=origin[0],
            commune_insee=origin[1],
            test_eligible=bool(appt.test_eligible),
        )
