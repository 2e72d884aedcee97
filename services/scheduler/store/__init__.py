"""The scheduler's store: the one place of the service that speaks SQL.

``tables.py`` is the schema; each other module is one aggregate: ``centres`` (the ARS's
centres, read as schedules), ``bookings`` (slots held and the appointments they are
for), ``waitlist``, ``origins`` (where each patient comes from), ``alerts`` (a
département's load and the ARS's alerts), ``reinforcements``, ``moves`` (who moved an
appointment), ``outcomes`` (what centres record of their consultations) and
``regulations`` (the decision that stands for each referral, for its centre).

Each statement is built once, at import (or once per shape, ``centres._schedules``),
with its parameters bound per call: a message costs the execution, not the
construction, and SQLAlchemy's compiled cache keys on the one statement object. Lists
go through expanding parameters (``IN (...)`` rendered per call from one statement).

The handlers and routers call ``store.<function>``: every aggregate's functions are
named here, so that a caller need not know which module holds which.
"""

from __future__ import annotations

from services.scheduler.store.alerts import (
    Load,
    alert_active,
    clear_alert,
    departement_load,
    raised_alerts,
    record_alert,
)
from services.scheduler.store.bookings import (
    AnyRow,
    appointment,
    booked_among,
    booked_appointment,
    booked_by_centre,
    booked_slots,
    centre_booked,
    future_appointments,
    hold_again,
    is_patient_of,
    recent_demand,
    release,
    reported_appointment,
    set_appointment_priority,
    set_appointment_status,
    try_book,
)
from services.scheduler.store.centres import (
    CentreFields,
    active_schedules,
    add_capacity_change,
    add_centre,
    centre_row,
    centre_rows,
    lock_centres,
    nearby_centre_ids,
    set_centre_status,
    update_centre,
)
from services.scheduler.store.forecasts import (
    arrivals_since,
    demand_point,
    forecast_departements,
    forget_arrivals,
    record_arrival,
    reserve_centres,
    waiting_in,
)
from services.scheduler.store.moves import moved_into, moves_by, record_move
from services.scheduler.store.origins import (
    referral_departement,
    referral_origin,
    relocate_origin,
    remember_origin,
)
from services.scheduler.store.outcomes import (
    consultation_outcome,
    correct_outcome,
    record_outcome,
)
from services.scheduler.store.regulations import day_regulations, remember_regulation
from services.scheduler.store.reinforcements import (
    acknowledge_reinforcement,
    add_reinforcement,
    answer_reinforcement,
    centre_reinforcements,
    mark_raised_again,
    reinforcement,
    reinforcement_requests,
    unanswered_reinforcements,
)
from services.scheduler.store.waitlist import (
    hold_waiting,
    leave_waitlist,
    put_on_waitlist,
    relocate_waiting,
    waiting_by_departement,
    waiting_by_priority,
    waiting_count,
    waiting_departement,
    waiting_near,
)

__all__ = [
    "AnyRow",
    "CentreFields",
    "Load",
    "acknowledge_reinforcement",
    "active_schedules",
    "add_capacity_change",
    "add_centre",
    "add_reinforcement",
    "alert_active",
    "answer_reinforcement",
    "appointment",
    "arrivals_since",
    "booked_among",
    "booked_appointment",
    "booked_by_centre",
    "booked_slots",
    "centre_booked",
    "centre_reinforcements",
    "centre_row",
    "centre_rows",
    "clear_alert",
    "consultation_outcome",
    "correct_outcome",
    "day_regulations",
    "demand_point",
    "departement_load",
    "forecast_departements",
    "forget_arrivals",
    "future_appointments",
    "hold_again",
    "hold_waiting",
    "is_patient_of",
    "leave_waitlist",
    "lock_centres",
    "mark_raised_again",
    "moved_into",
    "moves_by",
    "nearby_centre_ids",
    "put_on_waitlist",
    "raised_alerts",
    "recent_demand",
    "record_alert",
    "record_arrival",
    "record_move",
    "record_outcome",
    "referral_departement",
    "referral_origin",
    "reinforcement",
    "reinforcement_requests",
    "release",
    "relocate_origin",
    "relocate_waiting",
    "remember_origin",
    "remember_regulation",
    "reported_appointment",
    "reserve_centres",
    "set_appointment_priority",
    "set_appointment_status",
    "set_centre_status",
    "try_book",
    "unanswered_reinforcements",
    "update_centre",
    "waiting_by_departement",
    "waiting_by_priority",
    "waiting_count",
    "waiting_departement",
    "waiting_in",
    "waiting_near",
]
