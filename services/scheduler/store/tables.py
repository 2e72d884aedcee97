"""The scheduler's tables: centres, their capacity changes, appointments, the
bookings that hold slots, and the waiting list."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

centres = Table(
    "centres",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("commune_insee", String(5), nullable=False),
    Column("departement", String(3), nullable=False, index=True),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("address", Text, nullable=True),
    Column("opening_hours", JSON, nullable=False),
    Column("boxes", Integer, nullable=False),
    Column("consultation_minutes", Integer, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

capacity_changes = Table(
    "capacity_changes",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("centre_id", String(64), nullable=False, index=True),
    Column("from_date", Date, nullable=False),
    Column("boxes", Integer, nullable=True),
    Column("opening_hours", JSON, nullable=True),
    Column("consultation_minutes", Integer, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("referral_id", String(36), nullable=False, index=True),
    Column("patient_ref", String(40), nullable=False),
    Column("centre_id", String(64), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("box", Integer, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("distance_km", Float, nullable=False),
    # Regulation's verdict, carried to the centre with each (re)booking: it prescribes.
    Column("test_eligible", Boolean, nullable=False, server_default=false()),
    # FHIR Appointment status: booked, cancelled, fulfilled, noshow...
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # How many candidate centres the patient had in reach when booked: the policy
    # learns which centres few-option patients depend on (domain/policy.py, 4.).
    # None: booked before it was recorded (counts as many).
    Column("options", Integer, nullable=True),
)

# One booked appointment per referral, the database's own rule: whatever two replicas
# race on, a patient is never booked twice (a move sets the old one aside first).
Index(
    "uq_appointments_booked_referral",
    appointments.c.referral_id,
    unique=True,
    postgresql_where=appointments.c.status == "booked",
    sqlite_where=appointments.c.status == "booked",
)
# The policy's recent demand of its candidate centres (store/bookings.py, recent_demand):
# their appointments booked since a time, not the whole table (issue 32).
Index("ix_appointments_centre_created", appointments.c.centre_id, appointments.c.created_at)
# The ARS's figures of a day (store/history.py): that day's appointments, not every one.
Index("ix_appointments_start", appointments.c.start)

# Every move, one row per appointment replaced: who moved it and why. The patient's
# own moves are counted from it (at most three by their link, patient_requests.py),
# durably, whichever replica answers; the patient's page reads why their current
# appointment replaced another (a suspended centre, say).
appointment_moves = Table(
    "appointment_moves",
    metadata,
    Column("appointment_id", String(36), primary_key=True),  # the one replaced
    Column("referral_id", String(36), nullable=False, index=True),
    Column("replaced_by", String(36), nullable=False, index=True),
    Column("moved_by", String(16), nullable=False),  # CancelledBy: patient, service...
    Column("reason", Text, nullable=False),
    Column("moved_at", DateTime(timezone=True), nullable=False),
)

# The database itself forbids a double booking: one row per (centre, start, box),
# deleted when the appointment is cancelled so that the slot is free again.
bookings = Table(
    "bookings",
    metadata,
    Column("centre_id", String(64), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("box", Integer, nullable=False),
    Column("appointment_id", String(36), nullable=False, unique=True),
    PrimaryKeyConstraint("centre_id", "start", "box", name="pk_bookings_slot"),
)
# The slots booked in a time range, every centre (/metrics's free places): the key leads
# with the centre, and without this the figure read every booking ever made (issue 32).
Index("ix_bookings_start", bookings.c.start)

waitlist = Table(
    "waitlist",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("patient_ref", String(40), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("priority_rank", Integer, nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("commune_insee", String(5), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    # Kept while the patient waits, for the slot.assigned that ends the wait.
    Column("test_eligible", Boolean, nullable=False, server_default=false()),
    Column("queued_at", DateTime(timezone=True), nullable=False),
)
Index("ix_waitlist_order", waitlist.c.departement, waitlist.c.priority_rank, waitlist.c.deadline)

# Every time a patient was put on the waiting list (issue 30): the list itself forgets
# them once served; the ARS's history of a day counts who waited that day. No identity.
waitlist_entries = Table(
    "waitlist_entries",
    metadata,
    Column("referral_id", String(36), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("referral_id", "queued_at", name="pk_waitlist_entries"),
)
Index("ix_waitlist_entries_day", waitlist_entries.c.queued_at, waitlist_entries.c.departement)

# The spatial prefilter's bounding boxes.
Index("ix_centres_location", centres.c.status, centres.c.lat, centres.c.lon)
Index("ix_waitlist_location", waitlist.c.lat, waitlist.c.lon)

# The last alert sent per département and kind, so that a lasting saturation is
# reported once an hour, not on every booking.
alerts = Table(
    "alerts",
    metadata,
    Column("departement", String(3), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("departement", "kind", name="pk_alerts"),
)

origins = Table(
    "origins",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("departement", String(3), nullable=False),
    Column("commune_insee", String(5), nullable=False),
)

# The decision that stands for each referral as regulation gave it (its reasons: the
# severity findings and risk factors; its protocol version; when): what the centre
# that receives the patient reads (GET /centres/{id}/regulations). The latest wins.
regulations = Table(
    "regulations",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("reasons", JSON, nullable=False),
    Column("protocol_version", Text, nullable=False),
    Column("decided_by", Text, nullable=False),
    Column("regulated_at", DateTime(timezone=True), nullable=False),
)

# What centres asked the ARS for, kept for the ARS to read (GET /reinforcements) even
# when no console was open when the request came.
reinforcements = Table(
    "reinforcements",
    metadata,
    Column("id", String(36), primary_key=True),  # the request's event id
    Column("centre_id", String(64), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("count", Integer, nullable=False),
    Column("profession", String(100), nullable=False),
    Column("from_date", Date, nullable=False),
    Column("note", String(500), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    # Its life (migration 0013): requested, acknowledged, granted or declined.
    Column("state", String(16), nullable=False, server_default="requested"),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),  # granted or declined
    Column("granted_boxes", Integer),
    Column("granted_staff", Integer),
    Column("granted_hours", Integer),
    Column("answer", String(500)),  # the ARS's note, or its reason to decline
    # Raised again to the ARS for want of an answer (once per request).
    Column("raised_again_at", DateTime(timezone=True)),
)
Index("ix_reinforcements_unanswered", reinforcements.c.state, reinforcements.c.requested_at)
Index("ix_reinforcements_departement", reinforcements.c.departement, reinforcements.c.requested_at)

# What a centre recorded of each consultation (issue 27): the outcome that stands, and
# when and by whom it was first recorded; a correction is allowed within 24 hours of
# that (shared/outcomes.py), and changes the outcome, never the first recording.
consultation_outcomes = Table(
    "consultation_outcomes",
    metadata,
    Column("appointment_id", String(36), primary_key=True),
    Column("outcome", String(16), nullable=False),  # ConsultationOutcome: seen, no_show
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(128), nullable=False),  # the actor, as its door proved it
)

# Every correction of an outcome, never overwritten: who (the actor, the broker user that
# published it and the door that spoke in its name), when, from what to what, and why.
outcome_corrections = Table(
    "outcome_corrections",
    metadata,
    Column("id", String(36), primary_key=True),  # the correction's event id
    Column("appointment_id", String(36), nullable=False, index=True),
    Column("referral_id", String(36), nullable=False),
    Column("centre_id", String(64), nullable=False),
    Column("from_outcome", String(16), nullable=False),
    Column("to_outcome", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("sender_user", String(128), nullable=False),
    Column("via", String(128), nullable=True),
    Column("reason", String(500), nullable=False),
    Column("corrected_at", DateTime(timezone=True), nullable=False),
)

# Each oriented patient's arrival at the scheduler (issue 31): the saturation forecast
# learns the arrival rate of each département and priority from them. No referral, no
# identity: the département, the priority, the commune's point and when; kept 8 days.
arrivals = Table(
    "arrivals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("departement", String(3), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("arrived_at", DateTime(timezone=True), nullable=False),
)
Index("ix_arrivals_departement", arrivals.c.departement, arrivals.c.arrived_at)
