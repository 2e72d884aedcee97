"""The status of a referral: one table, replayed over the history in time order, so
that the order in which events arrive does not change what the referrer reads."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain.status import (
    FINAL,
    TRANSITIONS,
    Current,
    Entry,
    Happening,
    State,
    entry_for_event,
    message,
    replay,
)
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CancelledBy,
    CentreCancelReason,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Decision,
    EventPayload,
    PatientEscalated,
    Priority,
    ReferralCancelled,
    ReferralRegulated,
    ReferralWaitlisted,
    SlotAssigned,
)

T0 = datetime(2020, 3, 25, 8, 0, tzinfo=UTC)
REFERRAL = "ref-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(payload: EventPayload, minutes: float, event_id: str = "") -> Entry:
    found = entry_for_event(payload.event_type, payload.model_dump(mode="json"))
    assert found is not None
    happening, detail = found
    return Entry(happening, detail, at(minutes), event_id or f"e-{minutes}")


def received() -> Entry:
    return Entry(Happening.RECEIVED, {}, at(0), "e-received")


def regulated(
    minutes: float,
    decision: Decision = Decision.ORIENT,
    *,
    test_eligible: bool = True,
    priority: Priority | None = Priority.URGENT,
    decided_by: str = "protocol",
) -> Entry:
    return entry(
        ReferralRegulated(
            referral_id=REFERRAL,
            patient_ref="pat-1",
            decision=decision,
            priority=priority if decision is Decision.ORIENT else None,
            test_eligible=test_eligible,
            protocol_version="1",
            decided_by=decided_by,
            decision_id=f"d-{minutes}",
            age=50,
            commune_insee="35238",
            departement="35",
        ),
        minutes,
    )


def booked(minutes: float, appointment: str, centre: str = "rennes") -> Entry:
    return entry(
        SlotAssigned(
            centre_id=centre,
            appointment_id=appointment,
            referral_id=REFERRAL,
            patient_ref="pat-1",
            centre_name=f"Centre {centre}",
            centre_commune_insee="35238",
            centre_address="12 rue de la Poterie",
            start=at(120),
            end=at(140),
            box=1,
            priority=Priority.URGENT,
            distance_km=1.5,
        ),
        minutes,
    )


def moved(minutes: float, appointment: str, previous: str, centre: str, old_centre: str) -> Entry:
    return entry(
        AppointmentRescheduled(
            centre_id=centre,
            appointment_id=appointment,
            referral_id=REFERRAL,
            patient_ref="pat-1",
            previous_centre_id=old_centre,
            previous_start=at(120),
            previous_appointment_id=previous,
            centre_name=f"Centre {centre}",
            centre_commune_insee="35278",
            centre_address=None,
            start=at(180),
            end=at(200),
            box=1,
            priority=Priority.URGENT,
            distance_km=6.0,
            reason="centre suspended: no staff",
        ),
        minutes,
    )


def cancelled(
    minutes: float,
    appointment: str,
    *,
    centre: str = "rennes",
    by: CancelledBy = CancelledBy.SERVICE,
    replaced_by: str | None = None,
    event_id: str = "",
) -> Entry:
    return entry(
        AppointmentCancelled(
            centre_id=centre,
            appointment_id=appointment,
            referral_id=REFERRAL,
            patient_ref="pat-1",
            start=at(120),
            cancelled_by=by,
            reason="centre suspended: no staff",
            replaced_by=replaced_by,
        ),
        minutes,
        event_id,
    )


def withdrawn(minutes: float, by: CancelledBy = CancelledBy.REFERRER) -> Entry:
    return entry(
        ReferralCancelled(referral_id=REFERRAL, cancelled_by=by, reason="plus nécessaire"),
        minutes,
    )


def waitlisted(minutes: float) -> Entry:
    return entry(
        ReferralWaitlisted(
            referral_id=REFERRAL,
            patient_ref="pat-1",
            priority=Priority.URGENT,
            departement="35",
            reason="no free slot",
            waiting_in_departement=1,
        ),
        minutes,
    )


def seen(minutes: float, appointment: str, centre: str = "rennes") -> Entry:
    return entry(
        ConsultationCompleted(appointment_id=appointment, referral_id=REFERRAL, centre_id=centre),
        minutes,
    )


def no_show(minutes: float, appointment: str, centre: str = "rennes") -> Entry:
    return entry(
        ConsultationNoShow(appointment_id=appointment, referral_id=REFERRAL, centre_id=centre),
        minutes,
    )


def corrected(
    minutes: float, appointment: str, outcome: ConsultationOutcome, centre: str = "rennes"
) -> Entry:
    return entry(
        ConsultationCorrected(
            appointment_id=appointment,
            referral_id=REFERRAL,
            centre_id=centre,
            outcome=outcome,
            previous_outcome=(
                ConsultationOutcome.NO_SHOW
                if outcome is ConsultationOutcome.SEEN
                else ConsultationOutcome.SEEN
            ),
            reason="erreur de saisie",
        ),
        minutes,
    )


def escalated_by(minutes: float, centre: str, appointment: str | None = None) -> Entry:
    return entry(
        PatientEscalated(
            referral_id=REFERRAL, centre_id=centre, appointment_id=appointment, reason="SpO2 89"
        ),
        minutes,
    )


def final(*entries: Entry) -> Current:
    current = replay(entries)
    assert current is not None
    return current


def in_every_order(*entries: Entry) -> set[tuple[str, Any]]:
    """The status (and its appointment) for each order the entries could arrive in."""
    outcomes = set()
    for order in itertools.permutations(entries):
        current = final(*order)
        outcomes.add((current.status, current.detail.get("appointment_id")))
    return outcomes


# -- the table ----------------------------------------------------------------------


def test_the_table_names_every_happening_and_reaches_every_state() -> None:
    assert set(TRANSITIONS) == set(Happening)
    reached = {target for row in TRANSITIONS.values() for target in row.values()}
    assert reached == set(State)


def test_final_states_are_left_by_a_centre_s_escalation_or_correction_only() -> None:
    corrections = {
        Happening.CORRECTED_TO_SEEN: {State.NO_SHOW: State.SEEN},
        Happening.CORRECTED_TO_NO_SHOW: {State.SEEN: State.NO_SHOW},
    }
    for happening, row in TRANSITIONS.items():
        leaving = {source for source in row if source in FINAL and row[source] != source}
        if happening is Happening.ESCALATED_BY_CENTRE:
            assert leaving == FINAL - {State.REJECTED}
        elif happening in corrections:
            # A correction turns a recorded outcome into the other, and nothing else.
            assert row == corrections[happening]
        else:
            assert not leaving, happening


def test_a_withdrawn_referral_reads_cancelled() -> None:
    assert State.WITHDRAWN.status == "cancelled"
    assert {s.status for s in State} - {"cancelled"} == {
        s.value for s in State if s not in (State.CANCELLED, State.WITHDRAWN)
    }


# -- the workflow, step by step -------------------------------------------------------


def test_received_regulated_booked() -> None:
    assert final(received()).status == "received"
    current = final(received(), regulated(1))
    assert current.status == "regulated"
    assert current.detail["test_eligible"] is True and current.detail["priority"] == "urgent"
    current = final(received(), regulated(1), booked(2, "a-1"))
    assert current.status == "appointment"
    assert current.detail["appointment_id"] == "a-1"
    assert current.detail["centre_name"] == "Centre rennes"
    # What the orientation decided stays with the appointment.
    assert current.detail["test_eligible"] is True and current.detail["priority"] == "urgent"
    assert current.at == at(2)


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        (Decision.ESCALATE, "escalated"),
        (Decision.HOME_FOLLOW_UP, "home_follow_up"),
        (Decision.REFUSE, "refused"),
        (Decision.HOLD, "held_for_regulator"),
    ],
)
def test_decisions_other_than_orient(decision: Decision, status: str) -> None:
    current = final(received(), regulated(1, decision))
    assert current.status == status
    if decision is Decision.ESCALATE:
        assert current.detail["by"] == "protocol"


def test_a_moved_patient_reads_appointment_at_the_new_centre_whatever_the_order() -> None:
    history = (
        received(),
        regulated(1),
        booked(2, "a-1", "rennes"),
        moved(3, "a-2", "a-1", "st-gregoire", "rennes"),
        cancelled(3.001, "a-1", centre="rennes", replaced_by="a-2"),
    )
    current = final(*history)
    assert current.status == "appointment"
    assert current.detail["centre_id"] == "st-gregoire"
    assert current.detail["appointment_id"] == "a-2"
    assert current.detail["previous_centre_id"] == "rennes"
    assert current.detail["test_eligible"] is True
    assert current.detail["start"] == history[3].detail["start"]
    # The replaced appointment's cancellation is history under its own name.
    assert history[-1].happening is Happening.APPOINTMENT_REPLACED
    assert in_every_order(*history) == {("appointment", "a-2")}


def test_the_move_and_the_cancellation_at_the_same_instant() -> None:
    for ids in (("e-a", "e-b"), ("e-b", "e-a")):
        move = moved(3, "a-2", "a-1", "st-gregoire", "rennes")
        move = Entry(move.happening, move.detail, move.at, ids[0])
        current = final(
            received(),
            regulated(1),
            booked(2, "a-1"),
            move,
            cancelled(3, "a-1", replaced_by="a-2", event_id=ids[1]),
        )
        assert (current.status, current.detail["appointment_id"]) == ("appointment", "a-2")


def test_a_cancellation_of_an_appointment_that_is_not_the_current_one_changes_nothing() -> None:
    # Even without replaced_by, and even when it comes last.
    current = final(received(), regulated(1), booked(2, "a-2"), cancelled(5, "a-1"))
    assert (current.status, current.detail["appointment_id"]) == ("appointment", "a-2")


def test_an_appointment_at_the_same_time_as_the_cancellation_of_a_previous_one_wins() -> None:
    for ids in (("e-a", "e-b"), ("e-b", "e-a")):
        booking = booked(3, "a-2")
        booking = Entry(booking.happening, booking.detail, booking.at, ids[0])
        current = final(
            received(),
            regulated(1),
            booked(2, "a-1"),
            cancelled(3, "a-1", event_id=ids[1]),
            booking,
        )
        assert (current.status, current.detail["appointment_id"]) == ("appointment", "a-2")


def test_a_suspended_centre_s_patient_without_a_new_slot_waits() -> None:
    history = (received(), regulated(1), booked(2, "a-1"), cancelled(3, "a-1"), waitlisted(3.01))
    current = final(*history)
    assert current.status == "waitlisted" and current.detail["test_eligible"] is True
    assert in_every_order(*history) == {("waitlisted", None)}
    # Until then, the cancellation is the status, with who cancelled.
    current = final(*history[:4])
    assert current.status == "cancelled"
    assert current.detail["by"] == "service" and current.detail["appointment_id"] == "a-1"


def test_the_referrer_withdraws_and_nothing_undoes_it() -> None:
    history = (
        received(),
        regulated(1),
        booked(2, "a-1"),
        withdrawn(3),
        # The scheduler frees the slot; a slot booked meanwhile changes nothing.
        cancelled(3.1, "a-1", by=CancelledBy.REFERRER),
        booked(3.2, "a-9"),
        regulated(4),
    )
    current = final(*history)
    assert current.state is State.WITHDRAWN and current.status == "cancelled"
    assert current.detail["by"] == "referrer"
    assert in_every_order(*history) == {("cancelled", None)}


def test_a_regulator_s_new_decision_for_a_booked_patient() -> None:
    # Escalated: the scheduler cancels the appointment (cancelled_by regulator): history.
    current = final(
        received(),
        regulated(1),
        booked(2, "a-1"),
        regulated(5, Decision.ESCALATE, decided_by="DR-x"),
        cancelled(5.1, "a-1", by=CancelledBy.REGULATOR),
    )
    assert current.status == "escalated" and current.detail["by"] == "regulator"
    # Still oriented, another priority: the appointment stands, with the new priority.
    current = final(
        received(),
        regulated(1),
        booked(2, "a-1"),
        regulated(5, priority=Priority.ASAP, test_eligible=False),
    )
    assert current.status == "appointment" and current.detail["appointment_id"] == "a-1"
    assert current.detail["priority"] == "asap" and current.detail["test_eligible"] is False
    # A regulator reopens a refusal.
    current = final(received(), regulated(1, Decision.REFUSE), regulated(5, decided_by="DR-x"))
    assert current.status == "regulated"


def test_the_centre_s_reports_on_the_current_appointment() -> None:
    base = (received(), regulated(1), booked(2, "a-1"))
    assert final(*base, seen(9, "a-1")).status == "seen"
    assert final(*base, no_show(9, "a-1")).status == "no_show"
    current = final(*base, escalated_by(9, "rennes", "a-1"))
    assert current.status == "escalated"
    assert current.detail["by"] == "centre" and current.detail["centre_id"] == "rennes"
    # Seen and no-show are final; a centre's escalation still shows.
    assert final(*base, seen(9, "a-1"), regulated(10), booked(11, "a-3")).status == "seen"
    assert final(*base, no_show(9, "a-1"), withdrawn(10)).status == "no_show"
    assert final(*base, seen(9, "a-1"), escalated_by(10, "rennes", "a-1")).status == "escalated"


def test_the_status_follows_a_centre_s_correction() -> None:
    base = (received(), regulated(1), booked(2, "a-1"))
    to_seen = corrected(30, "a-1", ConsultationOutcome.SEEN)
    current = final(*base, no_show(9, "a-1"), to_seen)
    assert current.status == "seen"
    assert (current.detail["previous_outcome"], current.detail["appointment_id"]) == (
        "no_show",
        "a-1",
    )
    assert "Issue corrigée par le centre" in message(current.status, current.detail)
    # Corrected and corrected back: the newest stands, whatever order they arrive in.
    back = corrected(40, "a-1", ConsultationOutcome.NO_SHOW)
    assert in_every_order(*base, no_show(9, "a-1"), to_seen, back) == {("no_show", "a-1")}
    assert final(*base, seen(9, "a-1"), back).status == "no_show"
    # Only a recorded outcome is corrected: an appointment still awaited, one escalated
    # since, or one replaced by a move keeps its status (the correction is history).
    assert final(*base, to_seen).status == "appointment"
    assert final(*base, no_show(9, "a-1"), escalated_by(20, "rennes"), to_seen).status == (
        "escalated"
    )
    moved_since = (*base, moved(3, "a-2", "a-1", "sg", "rennes"), no_show(9, "a-2", "sg"))
    current = final(*moved_since, to_seen)
    assert (current.status, current.detail["appointment_id"]) == ("no_show", "a-2")
    history = message(to_seen.happening, to_seen.detail)
    assert history == (
        "Issue corrigée par le centre rennes : patient vu (il avait été noté absent). "
        "Motif : erreur de saisie."
    )


def test_a_report_on_an_appointment_moved_since_is_history() -> None:
    base = (
        received(),
        regulated(1),
        booked(2, "a-1", "rennes"),
        moved(3, "a-2", "a-1", "st-gregoire", "rennes"),
    )
    current = final(*base, no_show(9, "a-1", "rennes"))
    assert (current.status, current.detail["appointment_id"]) == ("appointment", "a-2")
    assert final(*base, no_show(9, "a-2", "st-gregoire")).status == "no_show"


def test_reception_comes_first_whatever_the_clocks() -> None:
    early = regulated(-1)  # regulation's clock behind intake's
    assert final(early, received()).status == "regulated"


def test_rows_written_before_the_table() -> None:
    legacy = [
        Entry.from_row("received", {}, at(0)),
        Entry.from_row("appointment", {"appointment_id": "a-1", "centre_id": "rennes"}, at(2)),
        Entry.from_row("rescheduled", {"appointment_id": "a-2", "centre_id": "sg"}, at(3)),
        Entry.from_row("escalated", {"by": "sg", "reason": "x"}, at(4)),
    ]
    assert [e.happening for e in legacy if e] == [
        Happening.RECEIVED,
        Happening.BOOKED,
        Happening.MOVED,
        Happening.ESCALATED_BY_CENTRE,
    ]
    service = Entry.from_row("cancelled", {"by": "service", "reason": "x"}, at(3))
    referrer = Entry.from_row("cancelled", {"by": "referrer", "reason": "x"}, at(3))
    assert service is not None and service.happening is Happening.APPOINTMENT_CANCELLED
    assert referrer is not None and referrer.happening is Happening.WITHDRAWN
    assert Entry.from_row("something_else", {}, at(1)) is None


def test_what_a_person_reads_is_french() -> None:
    current = final(received(), regulated(1), booked(2, "a-1"), moved(3, "a-2", "a-1", "sg", "r"))
    text = message(current.status, current.detail)
    assert text.startswith("Rendez-vous le 25/03/2020 à 12h00 (heure de Paris)")
    assert "Centre sg" in text and "déplacé depuis le centre r" in text
    assert "Test à prescrire" in text
    text = message("cancelled", final(received(), withdrawn(1)).detail)
    assert text == "Demande annulée par le médecin adresseur. Motif : plus nécessaire."
    cancellation = cancelled(3, "a-1", replaced_by="a-2")
    assert "remplace" in message(cancellation.happening, cancellation.detail)
    for state in State:
        assert message(state.status, {}) != state.status
    for happening in Happening:
        assert message(happening.value, {}) != happening.value


def test_a_consultation_the_centre_cancelled_reads_the_patient_s_new_appointment() -> None:
    """Issue 27, "annulé": the report is history; the move that follows at once (or the
    cancellation and the waiting list) says where the patient stands, in any order."""
    report = entry(
        ConsultationCancelled(
            appointment_id="a-1",
            referral_id=REFERRAL,
            centre_id="rennes",
            reason_code=CentreCancelReason.DOCTOR_ABSENT,
        ),
        3,
    )
    assert report.happening is Happening.CONSULTATION_CANCELLED
    assert message(report.happening.value, report.detail) == (
        "Consultation annulée par le centre rennes (médecin absent) : le patient reçoit "
        "aussitôt un autre rendez-vous, ou attend sur la liste d'attente."
    )
    rebooked = (
        received(),
        regulated(1),
        booked(2, "a-1", "rennes"),
        report,
        moved(3, "a-2", "a-1", "rennes", "rennes"),
        cancelled(3, "a-1", by=CancelledBy.CENTRE, replaced_by="a-2"),
    )
    assert in_every_order(*rebooked) == {("appointment", "a-2")}
    waiting = (
        received(),
        regulated(1),
        booked(2, "a-1", "rennes"),
        report,
        cancelled(3.001, "a-1", by=CancelledBy.CENTRE),
        entry(
            ReferralWaitlisted(
                referral_id=REFERRAL,
                patient_ref="pat-1",
                priority=Priority.URGENT,
                departement="35",
                reason="médecin absent",
                waiting_in_departement=1,
            ),
            3.002,
        ),
    )
    assert final(*waiting).status == "waitlisted"
