"""A regulator's decision: what it becomes under the active protocol.

A Centre 15 regulator confirms the protocol's decision, changes it, or releases a
decision the protocol held for them. The regulator chooses the decision and, for an
orientation, may choose the priority; the protocol still supplies everything else,
so that a human decision reads like an automatic one downstream:

- ORIENT: the regulator's priority or, when none is given, the one the protocol gives
  this case (``orientation_rule``); the deadline is that of the protocol's orientation
  rule with this priority (see ``deadline_rule``). A priority as urgent as the
  protocol's escalation is refused: that patient is escalated, not oriented.
- ESCALATE: the protocol's escalation priority and deadline.
- HOME_FOLLOW_UP, REFUSE, HOLD: no priority, no deadline; a priority is refused
  rather than silently dropped, since it says the regulator meant something else.

Test eligibility is recomputed under the protocol. The reasons start with the
regulator's own, then what the protocol alone would have decided, then every
criterion the case meets: the audit shows the human decision next to the machine's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.regulation.domain.protocol import PriorityRule, Protocol
from services.regulation.domain.rules import Case, Outcome, decide, findings, orientation_rule
from shared.events import Decision, Priority, Reason
from shared.labels import DECISIONS, PRIORITIES

# The width of ``decisions.decided_by``.
MAX_REGULATOR_ID = 64

# A regulator and Centre 15's page read these reasons: French words, the codes
# (``regulator.<decision>``, ``protocol.<decision>``) stay for machines.
DECISION_FR = DECISIONS  # shared/labels.py
PRIORITY_FR = PRIORITIES


class InvalidOverride(ValueError):
    """A regulator's decision that cannot stand as given (and never will: do not retry)."""


def deadline_rule(protocol: Protocol, priority: Priority) -> PriorityRule:
    """The orientation rule for ``priority``: the protocol's own when it has one.

    Otherwise (``urgent`` under v1, whose orientations are ``asap`` and ``routine``) the
    deadline of the least urgent orientation rule that is still at least as urgent as
    the priority, so that the regulator's choice is never given more time than a
    protocol priority of that urgency would get; a priority more urgent than every
    orientation rule gets the most urgent one's deadline.
    """
    rules = (protocol.priorities.raised, protocol.priorities.default)
    for rule in rules:
        if rule.priority is priority:
            return PriorityRule(priority=rule.priority, deadline_hours=rule.deadline_hours)
    sooner = [rule for rule in rules if rule.priority.rank <= priority.rank]
    base = max(sooner, key=lambda r: r.priority.rank) if sooner else protocol.priorities.raised
    return PriorityRule(priority=priority, deadline_hours=base.deadline_hours)


def check_override(
    protocol: Protocol, decision: Decision, priority: Priority | None, regulator_id: str
) -> None:
    """Raise ``InvalidOverride`` when the decision cannot stand as given."""
    if not regulator_id.strip():
        raise InvalidOverride("l'identifiant du médecin régulateur est vide")
    if len(regulator_id) > MAX_REGULATOR_ID:
        raise InvalidOverride(
            f"l'identifiant du médecin régulateur dépasse {MAX_REGULATOR_ID} caractères"
        )
    if priority is None:
        return
    if decision is not Decision.ORIENT:
        raise InvalidOverride(
            "une priorité ne s'applique qu'à une orientation, pas à la décision "
            f"« {DECISION_FR[decision]} »"
        )
    escalation = protocol.priorities.escalate.priority
    if priority.rank <= escalation.rank:
        raise InvalidOverride(
            f"la priorité « {PRIORITY_FR[priority]} » est celle de l'escalade (protocole "
            f"{protocol.version}) : décidez d'adresser au SAMU plutôt que d'orienter"
        )


def regulator_outcome(
    case: Case,
    protocol: Protocol,
    *,
    decision: Decision,
    priority: Priority | None,
    regulator_id: str,
    comment: str,
    now: datetime,
) -> Outcome:
    """The outcome of a regulator's decision on ``case`` under ``protocol``."""
    check_override(protocol, decision, priority, regulator_id)
    automatic = decide(case, protocol, now)  # refuses a naive ``now``
    rule: PriorityRule | None
    if decision is Decision.ORIENT:
        rule = (
            orientation_rule(case, protocol)
            if priority is None
            else deadline_rule(protocol, priority)
        )
    elif decision is Decision.ESCALATE:
        rule = protocol.priorities.escalate
    else:
        rule = None
    what = DECISION_FR[decision]
    if rule is not None:
        hours = f"{rule.deadline_hours:g}".replace(".", ",")
        what += f", priorité {PRIORITY_FR[rule.priority]} (sous {hours} h)"
    note = comment.strip()
    lead = Reason(
        code=f"regulator.{decision.value}",
        message=f"Décidé par le médecin régulateur {regulator_id} : {what}."
        + (f" {note}" if note else ""),
    )
    verdict = automatic.reasons[0]
    protocol_view = Reason(
        code=f"protocol.{automatic.decision.value}",
        message=f"Le protocole (version {protocol.version}) seul déciderait : "
        f"{DECISION_FR[automatic.decision]}. {verdict.message}",
        field=verdict.field,
    )
    return Outcome(
        decision=decision,
        priority=rule.priority if rule is not None else None,
        deadline=now + timedelta(hours=rule.deadline_hours) if rule is not None else None,
        test_eligible=automatic.test_eligible,
        reasons=(lead, protocol_view, *findings(case, protocol)),
        protocol_version=protocol.version,
    )


def attached_outcome(
    case: Case,
    protocol: Protocol,
    *,
    decision: Decision,
    priority: Priority | None,
    regulator_id: str,
    comment: str,
    now: datetime,
) -> Outcome:
    """The outcome of a decision Centre 15 attached to its referral (``referral.received``
    carries it): the regulator's, as ``regulator_outcome`` makes it, never the protocol's
    own orientation. Two exceptions, both for the patient's safety:

    - a severity sign (or vital) the case itself carries escalates, whatever the
      regulator chose: the lead reason says what the regulator decided and that the
      case's severity overrode it, the protocol's escalation reason names every sign;
    - a decision that cannot stand as given (``InvalidOverride``: a priority as urgent
      as an escalation for an orientation) is held for a regulator, with the reason,
      rather than guessed at or dropped.
    """
    automatic = decide(case, protocol, now)
    if automatic.decision is Decision.ESCALATE and decision is not Decision.ESCALATE:
        lead = Reason(
            code="regulator.overruled_by_severity",
            message=f"Le médecin régulateur {regulator_id} a décidé : {DECISION_FR[decision]}. "
            "Le dossier porte un signe de gravité : le patient est adressé au SAMU / aux "
            "urgences.",
        )
        return Outcome(
            decision=Decision.ESCALATE,
            priority=automatic.priority,
            deadline=automatic.deadline,
            test_eligible=automatic.test_eligible,
            reasons=(lead, *automatic.reasons),
            protocol_version=protocol.version,
        )
    try:
        return regulator_outcome(
            case,
            protocol,
            decision=decision,
            priority=priority,
            regulator_id=regulator_id,
            comment=comment,
            now=now,
        )
    except InvalidOverride as exc:
        return Outcome(
            decision=Decision.HOLD,
            priority=None,
            deadline=None,
            test_eligible=automatic.test_eligible,
            reasons=(
                Reason(
                    code="regulator.invalid",
                    message=f"Décision du médecin régulateur {regulator_id[:64]} "
                    f"inapplicable : {exc}. Dossier en attente d'un régulateur.",
                ),
                *findings(case, protocol),
            ),
            protocol_version=protocol.version,
        )
