"""The status of a referral, as its referrer (and Centre 15) reads it: one state
machine. Plain functions: no broker, no database.

Every event about a referral becomes an entry of its history (``entry_for_event``),
named by what happened (``Happening``). The status is that history replayed in time
order through one table (``TRANSITIONS``): which happening leads from which state to
which; a happening the table does not name for the current state is history only.

Why a replay rather than "the newest event sets the status": the events of one
referral come from three services, through two of intake's queues, and may arrive in
any order (a retry, a slow relay); replayed by their own times, they give the same
status whatever order they came in. And the events' times alone cannot tell what a
move is: the scheduler emits the new appointment and then the cancellation of the old
one, so the newest event of a moved patient is a cancellation. The table and two
rules that follow the appointment's identity say it instead:

- a cancellation of an appointment that is not the current one (or a centre's report
  on it) changes nothing: it is history;
- the cancellation of an appointment that was replaced (``replaced_by``) is history
  under its own name, ``appointment_replaced``: the patient has the new one;

so an appointment at the same time as the cancellation of a previous one wins,
whichever of the two is replayed first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.labels import (
    CANCELLED_BY,
    CENTRE_CANCEL_REASONS,
    CONSULTATION_OUTCOMES,
    PRIORITIES,
    by_code,
)
from shared.paris import paris_fr


class State(StrEnum):
    """Where a referral stands. ``status`` is what the API and the table say."""

    RECEIVED = "received"  # accepted by intake, waiting for regulation
    REJECTED = "rejected"  # a submission refused by intake (never a referral)
    REGULATED = "regulated"  # oriented to a centre, a slot being looked for
    HELD_FOR_REGULATOR = "held_for_regulator"
    ESCALATED = "escalated"  # to SAMU / Centre 15: by the protocol, a regulator or a centre
    HOME_FOLLOW_UP = "home_follow_up"
    REFUSED = "refused"
    WAITLISTED = "waitlisted"
    APPOINTMENT = "appointment"  # booked (FHIR), possibly moved since: same state
    CANCELLED = "cancelled"  # an appointment cancelled by the service, a centre, a regulator
    WITHDRAWN = "withdrawn"  # the referral itself cancelled, through intake's door
    SEEN = "seen"
    NO_SHOW = "no_show"

    @property
    def status(self) -> str:
        # A withdrawn referral reads "cancelled", with who: the referrer, the patient,
        # Centre 15. It is a state of its own because nothing follows it.
        return State.CANCELLED.value if self is State.WITHDRAWN else self.value


class Happening(StrEnum):
    """What an event says happened to a referral: the history's entries."""

    RECEIVED = "received"  # intake accepted the submission
    REJECTED = "rejected"  # intake refused it
    REGULATED = "regulated"  # referral.regulated: orient
    HELD_FOR_REGULATOR = "held_for_regulator"  # referral.regulated: hold
    ESCALATED = "escalated"  # referral.regulated: escalate
    HOME_FOLLOW_UP = "home_follow_up"  # referral.regulated: home_follow_up
    REFUSED = "refused"  # referral.regulated: refuse
    WAITLISTED = "waitlisted"  # referral.waitlisted
    BOOKED = "appointment"  # slot.assigned
    MOVED = "moved"  # appointment.rescheduled: a new appointment replaces the current one
    APPOINTMENT_CANCELLED = "appointment_cancelled"  # appointment.cancelled
    APPOINTMENT_REPLACED = "appointment_replaced"  # appointment.cancelled with replaced_by
    WITHDRAWN = "withdrawn"  # referral.cancelled
    SEEN = "seen"  # consultation.completed
    NO_SHOW = "no_show"  # consultation.no_show
    # consultation.cancelled: the centre could not hold it; history only, as the
    # scheduler's move (or the cancellation and the waiting list) that follows at once
    # says where the patient stands now.
    CONSULTATION_CANCELLED = "consultation_cancelled"
    # consultation.corrected: the centre corrects the outcome it recorded (issue 27)
    CORRECTED_TO_SEEN = "corrected_to_seen"
    CORRECTED_TO_NO_SHOW = "corrected_to_no_show"
    ESCALATED_BY_CENTRE = "escalated_by_centre"  # patient.escalated


S = State
# Not final: what the workflow may still move on from.
OPEN = frozenset(
    {
        S.RECEIVED,
        S.REGULATED,
        S.HELD_FOR_REGULATOR,
        S.ESCALATED,
        S.HOME_FOLLOW_UP,
        S.REFUSED,
        S.WAITLISTED,
        S.APPOINTMENT,
        S.CANCELLED,
    }
)
# Where the scheduler's answer to an orientation (a slot, a move, the waiting list)
# applies: the orientation, its waiting, an appointment (the newest wins), and an
# appointment's cancellation (a suspended centre's patient is moved or waits).
FOR_A_SLOT = frozenset({S.RECEIVED, S.REGULATED, S.WAITLISTED, S.APPOINTMENT, S.CANCELLED})
# Nothing follows them; a centre's correction turns seen and no_show into each other.
FINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.SEEN, S.NO_SHOW})


def _to(target: State, sources: Iterable[State | None]) -> dict[State | None, State]:
    return dict.fromkeys(sources, target)


# The state machine: for each happening, the state it leads to from each state it
# applies to (``None``: before anything). Every other (happening, state) pair is
# history only. A regulator's decision reopens a decision that stood (escalated,
# home follow-up, refused); a centre's escalation shows whatever came before it, so
# that a patient handed back to Centre 15 is never hidden.
TRANSITIONS: dict[Happening, dict[State | None, State]] = {
    Happening.RECEIVED: {None: S.RECEIVED},
    Happening.REJECTED: {None: S.REJECTED},
    # Still oriented, already booked (a regulator confirms, changes the priority): the
    # patient keeps the appointment, unless the scheduler moves it (then: moved).
    Happening.REGULATED: {**_to(S.REGULATED, OPEN - {S.APPOINTMENT}), S.APPOINTMENT: S.APPOINTMENT},
    Happening.HELD_FOR_REGULATOR: _to(S.HELD_FOR_REGULATOR, OPEN),
    Happening.ESCALATED: _to(S.ESCALATED, OPEN),
    Happening.HOME_FOLLOW_UP: _to(S.HOME_FOLLOW_UP, OPEN),
    Happening.REFUSED: _to(S.REFUSED, OPEN),
    Happening.WAITLISTED: _to(S.WAITLISTED, FOR_A_SLOT),
    Happening.BOOKED: _to(S.APPOINTMENT, FOR_A_SLOT),
    Happening.MOVED: _to(S.APPOINTMENT, FOR_A_SLOT),
    Happening.APPOINTMENT_CANCELLED: {S.APPOINTMENT: S.CANCELLED},
    Happening.APPOINTMENT_REPLACED: {},
    Happening.WITHDRAWN: _to(S.WITHDRAWN, OPEN),
    Happening.SEEN: {S.APPOINTMENT: S.SEEN},
    Happening.NO_SHOW: {S.APPOINTMENT: S.NO_SHOW},
    Happening.CONSULTATION_CANCELLED: {},
    Happening.CORRECTED_TO_SEEN: {S.NO_SHOW: S.SEEN},
    Happening.CORRECTED_TO_NO_SHOW: {S.SEEN: S.NO_SHOW},
    Happening.ESCALATED_BY_CENTRE: _to(S.ESCALATED, set(State) - {S.REJECTED}),
}
# These apply only to the appointment the status holds: a report or a cancellation
# about an earlier appointment (moved since) is history.
ABOUT_THE_APPOINTMENT = frozenset(
    {
        Happening.APPOINTMENT_CANCELLED,
        Happening.SEEN,
        Happening.NO_SHOW,
        Happening.CORRECTED_TO_SEEN,
        Happening.CORRECTED_TO_NO_SHOW,
    }
)
# What the orientation decided, kept in the detail of what follows from it.
CARRIED = ("priority", "test_eligible")
_FROM_ORIENTATION = frozenset({S.REGULATED, S.WAITLISTED, S.APPOINTMENT})

_APPOINTMENT_KEYS = ("appointment_id", "centre_id", "centre_name", "centre_address", "start", "end")
_DECISIONS = {
    "orient": Happening.REGULATED,
    "escalate": Happening.ESCALATED,
    "home_follow_up": Happening.HOME_FOLLOW_UP,
    "refuse": Happening.REFUSED,
    "hold": Happening.HELD_FOR_REGULATOR,
}


@dataclass(frozen=True)
class Entry:
    """One entry of a referral's history: what happened, its facts, when."""

    happening: Happening
    detail: Mapping[str, Any]
    at: datetime
    event_id: str = ""

    @classmethod
    def from_row(
        cls, label: str, detail: Mapping[str, Any], at: datetime, event_id: str = ""
    ) -> Entry | None:
        happening = _legacy(label, detail)
        return None if happening is None else cls(happening, detail, at, event_id)


@dataclass(frozen=True)
class Current:
    """The status a history comes to, and the time of the entry that set it."""

    state: State
    detail: dict[str, Any]
    at: datetime

    @property
    def status(self) -> str:
        return self.state.status


def _legacy(label: str, detail: Mapping[str, Any]) -> Happening | None:
    """A history row's happening, rows written before this table included: they were
    named by the status they set (``rescheduled``; ``cancelled`` for any cancellation;
    ``escalated`` for a centre's escalation too, without a decision)."""
    if label == "rescheduled":
        return Happening.MOVED
    if label == "cancelled":
        by = detail.get("by")
        # The scheduler's cancellations were the service's, a centre's or a regulator's.
        scheduler = by in ("service", "centre", "regulator")
        return Happening.APPOINTMENT_CANCELLED if scheduler else Happening.WITHDRAWN
    if label == "escalated" and "decision" not in detail:
        return Happening.ESCALATED_BY_CENTRE
    try:
        return Happening(label)
    except ValueError:
        return None


def entry_for_event(
    event_type: str, data: Mapping[str, Any]
) -> tuple[Happening, dict[str, Any]] | None:
    """What an event says happened to its referral, and the facts to keep with it
    (None: the event is no news for the referral's status)."""

    def pick(*keys: str) -> dict[str, Any]:
        return {k: data.get(k) for k in keys}

    if event_type == "referral.regulated":
        happening = _DECISIONS[data["decision"]]
        detail = pick(
            "decision",
            "priority",
            "deadline",
            "test_eligible",
            "reasons",
            "protocol_version",
            "decided_by",
        )
        if happening is Happening.ESCALATED:
            detail["by"] = "protocol" if data.get("decided_by") == "protocol" else "regulator"
        return happening, detail
    if event_type == "slot.assigned":
        return Happening.BOOKED, pick(*_APPOINTMENT_KEYS)
    if event_type == "appointment.rescheduled":
        moved = pick(
            *_APPOINTMENT_KEYS,
            "previous_appointment_id",
            "previous_centre_id",
            "previous_start",
            "reason",
        )
        return Happening.MOVED, moved
    if event_type == "referral.waitlisted":
        return Happening.WAITLISTED, pick("priority", "reason")
    if event_type == "appointment.cancelled":
        detail = {
            "by": data.get("cancelled_by"),
            **pick("appointment_id", "centre_id", "start", "reason", "replaced_by"),
        }
        replaced = data.get("replaced_by") is not None
        return (
            Happening.APPOINTMENT_REPLACED if replaced else Happening.APPOINTMENT_CANCELLED
        ), detail
    if event_type == "referral.cancelled":
        withdrawn = {"by": data.get("cancelled_by"), "reason": data.get("reason")}
        if data.get("reason_code") is not None:  # chosen from the list (intake's HTTP door)
            withdrawn["reason_code"] = data["reason_code"]
        return Happening.WITHDRAWN, withdrawn
    if event_type == "consultation.completed":
        return Happening.SEEN, pick("appointment_id", "centre_id", "test_prescribed")
    if event_type == "consultation.no_show":
        return Happening.NO_SHOW, pick("appointment_id", "centre_id")
    if event_type == "consultation.cancelled":
        return Happening.CONSULTATION_CANCELLED, pick("appointment_id", "centre_id", "reason_code")
    if event_type == "consultation.corrected":
        seen = data.get("outcome") == "seen"
        corrected = pick("appointment_id", "centre_id", "outcome", "previous_outcome", "reason")
        if seen:
            corrected["test_prescribed"] = data.get("test_prescribed")
        return (Happening.CORRECTED_TO_SEEN if seen else Happening.CORRECTED_TO_NO_SHOW), corrected
    if event_type == "patient.escalated":
        return Happening.ESCALATED_BY_CENTRE, {
            "by": "centre",
            **pick("centre_id", "appointment_id", "reason"),
        }
    return None


def step(current: Current | None, entry: Entry, carried: Mapping[str, Any]) -> Current | None:
    """The status after ``entry``; None when the entry is history only."""
    state = None if current is None else current.state
    target = TRANSITIONS[entry.happening].get(state)
    if target is None:
        return None
    if entry.happening in ABOUT_THE_APPOINTMENT and current is not None:
        concerned = entry.detail.get("appointment_id")
        # Rows written before this table carried no appointment id: the current one.
        if concerned is not None and concerned != current.detail.get("appointment_id"):
            return None
    detail = dict(entry.detail)
    if entry.happening is Happening.REGULATED and current is not None and target is S.APPOINTMENT:
        # Kept: the appointment as it was, with what the new decision says.
        decided = {k: v for k in CARRIED if (v := entry.detail.get(k)) is not None}
        detail = {**current.detail, **decided}
    elif target in _FROM_ORIENTATION:
        detail = {**carried, **detail}
    return Current(target, detail, entry.at)


def replay(entries: Iterable[Entry]) -> Current | None:
    """The status a referral's history comes to, whatever order its entries arrived in."""
    current: Current | None = None
    carried: dict[str, Any] = {}
    # The referral's reception first, whatever the clocks of the services that wrote
    # the entries after it say; then by time (the event id only breaks ties).
    ordered = sorted(
        entries, key=lambda e: (e.happening is not Happening.RECEIVED, e.at, e.event_id)
    )
    for entry in ordered:
        if entry.happening is Happening.REGULATED:
            carried = {k: entry.detail.get(k) for k in CARRIED if k in entry.detail}
        current = step(current, entry, carried) or current
    return current


# -- what a person reads ---------------------------------------------------------------

# shared/labels.py, as every label a person reads.
BY_FR = {code: f"par {who}" for code, who in by_code(CANCELLED_BY).items()}
PRIORITY_FR = by_code(PRIORITIES)


def _when(value: Any) -> str:
    """``25/03/2020 à 14h20 (heure de Paris)``: instants are kept in UTC."""
    if not isinstance(value, str):
        return "(date inconnue)"
    try:
        return paris_fr(datetime.fromisoformat(value))
    except ValueError:
        return value


def _because(detail: Mapping[str, Any]) -> str:
    reason = detail.get("reason")
    return f" Motif : {reason}." if reason else ""


def _test(detail: Mapping[str, Any]) -> str:
    return " Test à prescrire." if detail.get("test_eligible") else ""


def _centre(detail: Mapping[str, Any]) -> str:
    """``centre « École de la Poterie », 12 rue…``, or the centre's id when no name."""
    name = detail.get("centre_name")
    centre = f"centre « {name} »" if name else f"centre {detail.get('centre_id')}"
    address = detail.get("centre_address")
    return f"{centre}, {address}" if address else centre


OUTCOME_FR = by_code(CONSULTATION_OUTCOMES)
CANCEL_REASON_FR = by_code(CENTRE_CANCEL_REASONS)


def _corrected(detail: Mapping[str, Any]) -> str:
    """What a status set by a correction says of it."""
    before = OUTCOME_FR.get(str(detail.get("previous_outcome")))
    return f" Issue corrigée par le centre (notée « {before} » d'abord)." if before else ""


def _by(detail: Mapping[str, Any]) -> str:
    by = BY_FR.get(str(detail.get("by")))
    return f" {by}" if by else ""


def _consultation_cancelled(detail: Mapping[str, Any]) -> str:
    why = CANCEL_REASON_FR.get(str(detail.get("reason_code")))
    return (
        f"Consultation annulée par le centre {detail.get('centre_id')}"
        f"{f' ({why})' if why else ''} : le patient reçoit aussitôt un autre rendez-vous, "
        "ou attend sur la liste d'attente."
    )


def message(code: str, detail: Mapping[str, Any]) -> str:
    """In French, for the person reading a status (its ``status``) or a history entry
    (its happening): the codes stay for machines, this is for people."""
    if code == "received":
        return "Demande reçue ; elle attend la régulation médicale."
    if code == "rejected":
        return "Demande refusée à l'accueil : voir les raisons."
    if code == "regulated":
        priority = PRIORITY_FR.get(str(detail.get("priority")), "non précisée")
        return (
            f"Orientée vers un centre de consultation (priorité {priority}) ; "
            f"un créneau est recherché.{_test(detail)}"
        )
    if code == "held_for_regulator":
        return "En attente de la décision d'un médecin régulateur du Centre 15."
    if code in ("escalated", "escalated_by_centre"):
        by = detail.get("by") or (
            "protocol" if detail.get("decided_by") in (None, "protocol") else "regulator"
        )
        if by == "centre":
            return (
                f"Adressée au Centre 15 par le centre {detail.get('centre_id')} : "
                f"le patient s'aggrave.{_because(detail)}"
            )
        if by == "regulator":
            return "Adressée au SAMU / aux urgences par un médecin régulateur du Centre 15."
        return "Signe de gravité : adressée au SAMU / aux urgences ; le Centre 15 est prévenu."
    if code == "home_follow_up":
        return "Suivi à domicile par le médecin traitant."
    if code == "refused":
        return "Refusée par la régulation médicale : voir les raisons."
    if code == "waitlisted":
        return (
            "Aucun créneau avant l'échéance : le patient est en liste d'attente et sera "
            f"servi dès qu'une place se libère.{_test(detail)}"
        )
    if code == "appointment":
        moved = detail.get("previous_centre_id")
        since = f" (déplacé depuis le centre {moved})" if moved else ""
        return (
            f"Rendez-vous le {_when(detail.get('start'))} au {_centre(detail)}{since}."
            f"{_test(detail)}"
        )
    if code == "moved":
        return (
            f"Rendez-vous déplacé du centre {detail.get('previous_centre_id')} vers le "
            f"{_centre(detail)}, le {_when(detail.get('start'))}.{_because(detail)}"
        )
    if code == "appointment_replaced":
        return (
            f"Rendez-vous du {_when(detail.get('start'))} au centre "
            f"{detail.get('centre_id')} annulé : un nouveau rendez-vous le remplace."
        )
    if code == "appointment_cancelled" or (code == "cancelled" and detail.get("appointment_id")):
        return (
            f"Rendez-vous du {_when(detail.get('start'))} au centre "
            f"{detail.get('centre_id')} annulé{_by(detail)}.{_because(detail)}"
        )
    if code in ("withdrawn", "cancelled"):
        return f"Demande annulée{_by(detail)}.{_because(detail)}"
    if code == "seen":
        prescribed = " Test prescrit." if detail.get("test_prescribed") else ""
        return f"Patient vu au centre {detail.get('centre_id')}.{prescribed}{_corrected(detail)}"
    if code == "consultation_cancelled":
        return _consultation_cancelled(detail)
    if code == "no_show":
        return (
            "Le patient ne s'est pas présenté à son rendez-vous au centre "
            f"{detail.get('centre_id')}.{_corrected(detail)}"
        )
    if code in ("corrected_to_seen", "corrected_to_no_show"):
        now = "patient vu" if code == "corrected_to_seen" else "patient absent"
        before = OUTCOME_FR.get(str(detail.get("previous_outcome")), "une autre issue")
        return (
            f"Issue corrigée par le centre {detail.get('centre_id')} : {now} "
            f"(il avait été noté {before}).{_because(detail)}"
        )
    return code
