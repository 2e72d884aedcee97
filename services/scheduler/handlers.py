"""The scheduler's consumers: centres from the ARS, slots for oriented referrals."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import structlog

from services.scheduler import consultations, store
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
from services.scheduler.domain.slots import has_place
from services.scheduler.store import CentreFields
from shared.consumer import Delivery, PermanentError
from shared.db import as_utc
from shared.events import (
    AlertKind,
    AppointmentCancelled,
    AppointmentRescheduled,
    CancelledBy,
    CapacityAlert,
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    Decision,
    Envelope,
    PatientEscalated,
    Priority,
    ReferralCancelled,
    ReferralRegulated,
    ReferralWaitlisted,
    ReinforcementRequested,
    SlotAssigned,
    WithdrawalReason,
    new_id,
    utcnow,
)
from shared.geo import commune
from shared.labels import CENTRE_STATUSES, PRIORITIES
from shared.regions import CentreDecisionRefused, Region, judge_centre_decision
from shared.senders import ActorKind, SenderRefused

log = structlog.get_logger(__name__)

# A patient drained from the waiting list has often passed their deadline: they get
# the soonest slot within this horizon rather than none.
DRAIN_HORIZON = timedelta(hours=48)
SATURATION_THRESHOLD = 0.9
CONTENTION_ROUNDS = 5
DRAIN_MISSES = 5
# Waiting patients placed jointly per drain (the rest one by one, as before).
DRAIN_BATCH = 32
# New referrals of one consumer batch placed jointly (the rest one by one; setting
# AIGUILLAGE_JOINT_BATCH): the joint assignment's work grows with the square of the
# batch (each one is offered as many places per centre as the batch holds), and a batch
# is answered when it commits.
JOINT_BATCH = 8
# Where a consumer batch's joint plan waits for its handlers (session.info: the batch's
# own transaction; a delivery replayed alone has its own session, and no plan).
PLAN = "scheduler.plan"

# The reasons the scheduler gives travel as they are to the patient, the centre and
# the referrer: French. What a machine acts on keeps its stable codes (the event
# type, ``cancelled_by``, the statuses).
WITHDRAWN_FR = CENTRE_STATUSES  # shared/labels.py, as every label a person reads
DECISION_FR = {
    Decision.ESCALATE: "adressé au SAMU / aux urgences",
    Decision.HOME_FOLLOW_UP: "suivi à domicile par le médecin traitant",
    Decision.REFUSE: "demande refusée",
    Decision.HOLD: "en attente d'un médecin régulateur",
    Decision.ORIENT: "orienté vers un centre",
}
PRIORITY_FR = PRIORITIES
NO_SLOT_FR = "aucun créneau libre avant l'échéance"
REDUCED_FR = "capacité du centre réduite"


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


def _place(insee: str) -> tuple[float, float]:
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


_CENTRE_DECISIONS = (CentreActivated, CentreCapacityChanged, CentreSuspended, CentreClosed)
_CENTRE_REPORTS = (
    ConsultationCompleted,
    ConsultationNoShow,
    ConsultationCorrected,
    PatientEscalated,
    ReinforcementRequested,
)


async def _judge_centre(delivery: Delivery, payload: Any) -> None:
    """Judged on the centre as stored here, never on what the message says of it: an ARS
    decides on its region's centres only, and a centre id keeps the département of its
    first activation, whoever sends it (shared.regions). Refused: answered, recorded,
    never applied (the consumer)."""
    row = await store.centre_row(delivery.session, payload.centre_id)
    sender = delivery.sender
    region = None
    if sender is not None and sender.kind is ActorKind.ARS:
        region = Region(sender.actor)
    elif sender is not None and sender.kind is ActorKind.OPERATOR:
        # The one national path: every region's centres, each decision in the log.
        log.warning(
            "centre decision by an operator",
            sender_user=sender.user,
            centre_id=payload.centre_id,
            event_type=delivery.envelope.type,
        )
    try:
        judge_centre_decision(region, row.departement if row is not None else None, payload)
    except CentreDecisionRefused as refused:
        raise SenderRefused(refused.code, str(refused), refused.field) from None


class SchedulerHandlers:
    def __init__(
        self,
        config: SchedulerConfig | None = None,
        provision_centre: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.provision_centre = provision_centre
        # What the centres' outcomes are judged by (services/scheduler/consultations.py):
        # this service's own clock, never a time the message carries; tests set it.
        self.clock = clock
        self._checked: dict[str, float] = {}

    # -- centres -----------------------------------------------------------------

    async def on_centre(self, delivery: Delivery) -> None:
        """The ARS's door (its senders checked by the consumer): the decision applies, then
        goes on the bus for the services that follow the centres (the notifier)."""
        payload = delivery.envelope.payload()
        if not isinstance(payload, _CENTRE_DECISIONS):
            raise PermanentError("unexpected_event", f"{delivery.envelope.type} is no decision")
        await _judge_centre(delivery, payload)
        now = utcnow()
        await self._apply_centre(delivery, payload, now)
        await delivery.emit(payload, correlation_id=delivery.envelope.correlation_id)

    async def _apply_centre(self, delivery: Delivery, payload: Any, now: datetime) -> None:
        if isinstance(payload, CentreActivated):
            if self.provision_centre is not None:
                # Before the centre's first patient is booked (a drained waiting list,
                # in this very transaction): its queue must be there to receive them.
                await self.provision_centre(payload.centre_id)
            await self._activate(delivery, payload, now)
            await self._drain(delivery, payload.centre_id, now)
        elif isinstance(payload, CentreCapacityChanged):
            row = await store.centre_row(delivery.session, payload.centre_id)
            if row is None:
                # Its activation may still be in flight: retried, then dead-lettered.
                raise LookupError(f"unknown centre {payload.centre_id}")
            await store.add_capacity_change(
                delivery.session,
                event_id=delivery.envelope.id,
                centre_id=payload.centre_id,
                from_date=payload.from_date,
                boxes=payload.boxes,
                opening_hours=[p.model_dump() for p in payload.opening_hours]
                if payload.opening_hours is not None
                else None,
                consultation_minutes=payload.consultation_minutes,
                recorded_at=now,
            )
            await self._move_unfit(delivery, payload.centre_id, now)
            await self._drain(delivery, payload.centre_id, now)
        elif isinstance(payload, CentreSuspended | CentreClosed):
            status = "suspended" if isinstance(payload, CentreSuspended) else "closed"
            await self._withdraw(delivery, payload.centre_id, status, payload.reason, now)

    async def _activate(self, delivery: Delivery, event: CentreActivated, now: datetime) -> str:
        place = commune(event.commune_insee)
        if place is None:
            raise PermanentError("unknown_commune", f"no commune {event.commune_insee}")
        values: CentreFields = {
            "name": event.name,
            "kind": event.kind.value,
            "commune_insee": place.insee,
            "departement": place.departement,
            "lat": place.lat,
            "lon": place.lon,
            "address": event.address,
            "opening_hours": [p.model_dump() for p in event.opening_hours],
            "boxes": event.boxes,
            "consultation_minutes": event.consultation_minutes,
            "first_day": event.first_day,
            "status": "active",
            "updated_at": now,
        }
        if await store.centre_row(delivery.session, event.centre_id) is None:
            await store.add_centre(delivery.session, event.centre_id, values)
        else:
            await store.update_centre(delivery.session, event.centre_id, values)
        log.info("centre active", centre_id=event.centre_id, departement=place.departement)
        return place.departement

    async def _withdraw(
        self, delivery: Delivery, centre_id: str, status: str, reason: str, now: datetime
    ) -> None:
        """Suspend or close a centre: its future patients move, or wait; none is dropped."""
        session = delivery.session
        if await store.centre_row(session, centre_id) is None:
            return
        await store.set_centre_status(session, centre_id, status, now)
        future = await store.future_appointments(session, centre_id, now)
        why = f"centre {WITHDRAWN_FR.get(status, status)} : {reason}"
        await self._move_away(delivery, future, why, now)

    async def _move_unfit(self, delivery: Delivery, centre_id: str, now: datetime) -> None:
        """A capacity change: the centre's future appointments whose place (start, box)
        its new schedule no longer has (fewer boxes, shorter hours, another length) are
        moved, or waitlisted; left there, the patient would come to a closed box."""
        schedules = await store.active_schedules(delivery.session, ids=[centre_id])
        if not schedules:
            return  # suspended or closed: its appointments were moved then
        future = await store.future_appointments(delivery.session, centre_id, now)
        unfit = [a for a in future if not has_place(schedules[0], as_utc(a.start), a.box)]
        await self._move_away(delivery, unfit, REDUCED_FR, now)

    async def _move_away(
        self, delivery: Delivery, appointments: Sequence[Any], why: str, now: datetime
    ) -> None:
        """Each appointment moved to another slot (most urgent first), or cancelled and
        its patient waitlisted: none is dropped."""
        session = delivery.session
        for appt in sorted(appointments, key=lambda a: Priority(a.priority).rank):
            await self._cancel(session, appt.id)
            patient = await self._patient_of(session, appt, now)
            booked = await self._book(session, patient, now)
            if booked is not None:
                await self._announce_move(
                    delivery, appt, booked, patient.priority, why, CancelledBy.SERVICE
                )
            else:
                await self._announce_cancel(delivery, appt, CancelledBy.SERVICE, why)
                await self._waitlist(delivery, patient, now, why)

    async def _patient_of(self, session: Any, appt: Any, now: datetime) -> Patient:
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

    # -- referrals ---------------------------------------------------------------

    async def on_referral(self, delivery: Delivery) -> None:
        if delivery.envelope.type == ReferralCancelled.event_type:
            await self.on_cancelled(delivery)
        else:
            await self.on_regulated(delivery)

    async def plan_batch(self, session: Any, envelopes: Sequence[Envelope]) -> None:
        """A consumer batch's new referrals for a centre, placed together before its
        handlers run (``policy.assign_jointly``): each handler then books its planned
        slot if still free, its own choice otherwise (``_book``)."""
        regulated = [
            event
            for envelope in envelopes
            if envelope.type == ReferralRegulated.event_type
            and (event := envelope.payload_as(ReferralRegulated)).decision is Decision.ORIENT
        ]
        if len(regulated) < 2:
            return
        booked = await store.booked_among(session, [e.referral_id for e in regulated])
        now = utcnow()
        requests = [
            Request(
                e.referral_id,
                e.priority or Priority.ROUTINE,
                _place(e.commune_insee),
                e.deadline or now + timedelta(hours=24),
                self._reach(e.commune_insee),
            )
            for e in regulated
            if e.referral_id not in booked  # a confirmation or a move: not placed here
        ][: self.config.joint_batch]
        if len(requests) > 1:
            session.info[PLAN] = await self._plan(session, requests, now)

    async def on_regulated(self, delivery: Delivery) -> None:
        event = delivery.payload_as(ReferralRegulated)
        session = delivery.session
        now = utcnow()
        # The entry of a waiting patient is held before their booking is read: a drain
        # serving them at this moment holds it too, and this waits for it, then reads
        # the appointment it booked.
        waiting = await store.hold_waiting(session, event.referral_id)
        current = await store.booked_appointment(session, event.referral_id)
        if event.decision is not Decision.ORIENT:
            # Not (or no longer) for a centre: leave the waiting list, give the slot back.
            await self._leave_waitlist(delivery, event.referral_id, now)
            if current is not None:
                await self._cancel(session, current.id)
                await self._announce_cancel(
                    delivery,
                    current,
                    CancelledBy.REGULATOR,
                    f"décision de régulation : {DECISION_FR[event.decision]}",
                )
                await self._drain(delivery, current.centre_id, now)
            return
        if current is not None:
            await self._keep_or_move(delivery, event, current, now)
            return
        await store.remember_origin(
            session, event.referral_id, event.departement, event.commune_insee
        )
        patient = Patient(
            referral_id=event.referral_id,
            patient_ref=event.patient_ref,
            priority=event.priority or Priority.ROUTINE,
            deadline=event.deadline or now + timedelta(hours=24),
            departement=event.departement,
            commune_insee=event.commune_insee,
            test_eligible=event.test_eligible,
        )
        planned = session.info.get(PLAN, {}).get(event.referral_id)
        booked = await self._book(session, patient, now, planned)
        if booked is None:
            await self._waitlist(delivery, patient, now, NO_SLOT_FR)
        else:
            if waiting:
                # Booked on a new decision while waiting: off the list, or the next
                # drain would book them a second time.
                await self._leave_waitlist(delivery, event.referral_id, now)
            await self._announce(delivery, patient, booked)
            await self._check_saturation(delivery, patient.departement, now)

    async def _keep_or_move(
        self, delivery: Delivery, event: ReferralRegulated, current: Any, now: datetime
    ) -> None:
        """Still oriented, already booked: a regulator confirmed, or changed the priority.
        A slot that now starts after the new deadline is moved earlier if one is free;
        otherwise the patient keeps it (a later slot beats none)."""
        priority = event.priority or Priority(current.priority)
        if event.deadline is None or as_utc(current.start) <= event.deadline:
            await store.set_appointment_priority(
                delivery.session, current.id, priority.value, event.test_eligible
            )
            return
        session = delivery.session
        patient = Patient(
            referral_id=event.referral_id,
            patient_ref=event.patient_ref,
            priority=priority,
            deadline=event.deadline,
            departement=event.departement,
            commune_insee=event.commune_insee,
            test_eligible=event.test_eligible,
        )
        booked = await self._book_instead(session, current, patient, now)
        if booked is None:
            log.warning(
                "no earlier slot for a raised priority; the patient keeps theirs",
                referral_id=event.referral_id,
            )
            return
        await self._announce_move(
            delivery,
            current,
            booked,
            priority,
            f"priorité « {PRIORITY_FR[priority]} » décidée par "
            f"{'le protocole' if event.decided_by == 'protocol' else event.decided_by}",
            CancelledBy.REGULATOR,
        )

    # -- consultations -----------------------------------------------------------

    async def on_consultation(self, delivery: Delivery) -> None:
        """The centres' door: what a centre reports, for its own appointments only (the
        routing key names the centre, which the broker holds it to; the appointment's
        centre is checked here). Then the appointment's status: an outcome in its time,
        or its correction (consultations.py); a no-show or an escalation gives the slot
        back; and the report goes on the bus."""
        payload = delivery.envelope.payload()
        centre_id = getattr(payload, "centre_id", None)
        if not isinstance(payload, _CENTRE_REPORTS) or centre_id is None:
            raise PermanentError("unexpected_event", f"{delivery.envelope.type} is no report")
        self._check_reporter(delivery, centre_id)
        if isinstance(payload, ReinforcementRequested):
            row = await store.centre_row(delivery.session, centre_id)
            if row is None:
                raise SenderRefused("unknown_centre", "no such centre", "centre_id")
            await store.add_reinforcement(
                delivery.session,
                request_id=delivery.envelope.id,
                centre_id=centre_id,
                departement=row.departement,
                count=payload.count,
                profession=payload.profession,
                from_date=payload.from_date,
                note=payload.note,
                requested_at=delivery.received_at,
            )
            await delivery.emit(payload, correlation_id=centre_id)
            return
        appointment_id = payload.appointment_id
        if appointment_id is not None:
            appt = await store.reported_appointment(delivery.session, appointment_id)
            if appt is None:
                if delivery.sender is None or delivery.sender.trusted:
                    raise LookupError(f"report on unknown appointment {appointment_id}")
                raise SenderRefused("unknown_appointment", "no such appointment", "appointment_id")
            if appt.centre_id != centre_id or appt.referral_id != payload.referral_id:
                raise SenderRefused(
                    "sender_inconsistent",
                    "the appointment is not the reporting centre's",
                    "appointment_id",
                )
            if not isinstance(payload, PatientEscalated):
                await consultations.apply(delivery, payload, appt, self.clock())
                return
            await store.release(delivery.session, appointment_id)
            await store.set_appointment_status(delivery.session, appointment_id, "escalated")
        else:
            # An escalation outside an appointment (the patient called the centre, say)
            # is still about a patient of the reporting centre: one it has booked.
            own = await store.is_patient_of(delivery.session, payload.referral_id, centre_id)
            if not own and delivery.sender is not None and not delivery.sender.trusted:
                raise SenderRefused(
                    "sender_inconsistent",
                    "the patient is not the reporting centre's",
                    "referral_id",
                )
        if isinstance(payload, PatientEscalated):
            # Whose SAMUs the notifier tells: the département as recorded here, never
            # the centre's word for it.
            departement = await store.referral_departement(delivery.session, payload.referral_id)
            payload = payload.model_copy(update={"departement": departement})
        await delivery.emit(payload, correlation_id=payload.referral_id)

    @staticmethod
    def _check_reporter(delivery: Delivery, centre_id: str) -> None:
        """The centre named is the sender, and the key it came on names it."""
        sender = delivery.sender
        if delivery.routing_key and not delivery.routing_key.endswith(f".{centre_id}"):
            raise SenderRefused("routing_inconsistent", "the key names another centre", "centre_id")
        if sender is None or sender.trusted:
            return
        if sender.kind is not ActorKind.CENTRE or sender.actor != centre_id:
            raise SenderRefused(
                "sender_inconsistent", "a centre reports for itself only", "centre_id"
            )

    async def on_cancelled(self, delivery: Delivery) -> None:
        """A referral withdrawn (checked by intake's door): its slot is freed, its centre
        and its patient told; off the waiting list."""
        cancel = delivery.payload_as(ReferralCancelled)
        session = delivery.session
        await self._leave_waitlist(delivery, cancel.referral_id, utcnow())
        current = await store.booked_appointment(session, cancel.referral_id)
        if current is None:
            return
        await self._cancel(session, current.id)
        await self._announce_cancel(
            delivery, current, cancel.cancelled_by, cancel.reason, reason_code=cancel.reason_code
        )
        await self._drain(delivery, current.centre_id, utcnow())

    # -- assignment --------------------------------------------------------------

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
        lat, lon = _place(patient.commune_insee)
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
        (patient_requests.py), so that both keep the same rules. ``until``: only the
        places starting by then (at most the patient's deadline)."""
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

    async def _announce_move(
        self,
        delivery: Delivery,
        old: Any,
        booked: Booked,
        priority: Priority,
        reason: str,
        by: CancelledBy,
    ) -> None:
        """The new appointment to its centre (and so the patient and the referrer); the
        old one, replaced, to the centre that loses the patient."""
        # Recorded with who and why: a patient's own moves are counted from it, and
        # their page says why a suspension or a regulator moved them.
        await store.record_move(
            delivery.session,
            old=old,
            replaced_by=booked.appointment_id,
            by=by.value,
            reason=reason,
            now=utcnow(),
        )
        await delivery.emit(
            AppointmentRescheduled(
                centre_id=booked.slot.centre_id,
                appointment_id=booked.appointment_id,
                referral_id=old.referral_id,
                patient_ref=old.patient_ref,
                previous_centre_id=old.centre_id,
                previous_start=as_utc(old.start),
                previous_appointment_id=old.id,
                centre_name=booked.centre.name,
                centre_commune_insee=booked.centre.commune_insee,
                centre_address=booked.centre.address,
                start=booked.slot.start,
                end=booked.slot.end,
                box=booked.slot.box,
                priority=priority,
                distance_km=round(booked.slot.distance_km, 2),
                reason=reason,
                moved_by=by,
                test_eligible=booked.test_eligible,
            ),
            correlation_id=old.referral_id,
        )
        await self._announce_cancel(delivery, old, by, reason, replaced_by=booked.appointment_id)

    async def _announce_cancel(
        self,
        delivery: Delivery,
        old: Any,
        by: CancelledBy,
        reason: str,
        replaced_by: str | None = None,
        reason_code: WithdrawalReason | None = None,
    ) -> None:
        await delivery.emit(
            AppointmentCancelled(
                centre_id=old.centre_id,
                appointment_id=old.id,
                referral_id=old.referral_id,
                patient_ref=old.patient_ref,
                start=as_utc(old.start),
                cancelled_by=by,
                reason=reason,
                # A withdrawal's code, passed on for the notices to say why.
                reason_code=reason_code,
                replaced_by=replaced_by,
            ),
            correlation_id=old.referral_id,
        )

    async def _announce(self, delivery: Delivery, patient: Patient, booked: Booked) -> None:
        await delivery.emit(
            SlotAssigned(
                centre_id=booked.slot.centre_id,
                appointment_id=booked.appointment_id,
                referral_id=patient.referral_id,
                patient_ref=patient.patient_ref,
                centre_name=booked.centre.name,
                centre_commune_insee=booked.centre.commune_insee,
                centre_address=booked.centre.address,
                start=booked.slot.start,
                end=booked.slot.end,
                box=booked.slot.box,
                priority=patient.priority,
                distance_km=round(booked.slot.distance_km, 2),
                test_eligible=patient.test_eligible,
            ),
            correlation_id=patient.referral_id,
        )

    # -- waiting list ------------------------------------------------------------

    async def _waitlist(
        self, delivery: Delivery, patient: Patient, now: datetime, reason: str
    ) -> None:
        session = delivery.session
        lat, lon = _place(patient.commune_insee)
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
            await self._announce(delivery, patient, booked)
            drained.add(row.departement)
        for departement in drained:
            await self._waiting_list_resolved(delivery, departement, now)
