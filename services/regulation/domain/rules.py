"""The decision for one referral under a given protocol: a pure function of its inputs.

Precedence, first match decides:

1. a severity sign, or a vital beyond its threshold -> ESCALATE to SAMU / the
   emergency department, priority STAT, deadline now; this beats everything below,
   even a screening request, a child or a patient reported without symptoms, because
   a severe patient must never wait for a data quality question to be settled, and a
   referrer who ticked "screening" for a patient at SpO2 88 % must hear that the
   patient goes to SAMU, not that centres do not screen;
2. purpose is screening -> REFUSE ``screening`` (centres are not screening centres);
3. not symptomatic -> REFUSE ``asymptomatic`` (never oriented to a centre);
4. younger than the paediatric age -> HOME_FOLLOW_UP ``paediatric``. The SPEC sends
   children "back to the GP or Centre 15 with that reason": that is the GP's follow-up,
   not a refusal of care, so it is not REFUSE;
5. the referrer judges no consultation needed -> HOME_FOLLOW_UP ``home.not_needed``;
6. at risk with none of the protocol's hold vitals measured -> HOLD ``hold.no_vitals``
   for a regulator (too little to decide safely);
7. a mild picture (not at risk, not pregnant, no minor factor, no severity sign) from a
   referrer the protocol lists (Centre 15 in v1) -> HOME_FOLLOW_UP ``home.mild_centre_15``;
8. otherwise ORIENT to a centre: the raised priority (ASAP in v1) when at risk, pregnant
   or with a minor severity factor, else the default one (ROUTINE), with its deadline.

``Outcome.reasons`` starts with the reason of the rule that decided, followed by every
other criterion the case meets (severity findings, screening request, asymptomatic,
paediatric, consultation not needed, risk, pregnancy, minor factors, health
professional), in that stable order: an escalated child still tells Centre 15 it is a
child, an escalated screening request still shows it was one, and an audit sees the
whole picture. The lead reason of an escalation names every severity finding, so that
whoever reads only the first reason still learns why the patient goes to SAMU. Test
eligibility is computed whatever the decision.

Each reason's ``code`` is the engine's and stable; its ``message`` is the protocol's
French template for that code (``Protocol.messages``), filled with the case's values,
because Centre 15's page and the referrer's answer show it to people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from services.regulation.domain.protocol import PriorityRule, Protocol, VitalName
from shared.events import Clinical, Decision, Priority, Purpose, Reason, ReferrerKind, SeveritySign
from shared.labels import VITAL_UNITS


@dataclass(frozen=True)
class Case:
    """What regulation needs to know about one referral, and nothing that identifies it."""

    age: int
    clinical: Clinical
    referrer_kind: ReferrerKind
    purpose: Purpose

    def __post_init__(self) -> None:
        if self.age < 0:
            raise ValueError(f"age must not be negative, got {self.age}")


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    priority: Priority | None
    # ORIENT: now + the priority's deadline; ESCALATE: now; None for the other decisions.
    deadline: datetime | None
    test_eligible: bool
    reasons: tuple[Reason, ...]
    protocol_version: str


def _num(value: float) -> str:
    # 39.0 reads "39" and 89.9 reads "89,9": the value as a French clinician writes it.
    return f"{value:g}".replace(".", ",")


def _named(finding: Reason, clinical: Clinical, protocol: Protocol) -> str:
    """A severity finding as the escalation's list names it, tersely: "SpO2 à 88 %",
    "confusion, somnolence ou altération de la conscience". Not its reason's message,
    which says "Signe de gravité : ..." under a "Signes de gravité : " already."""
    sign = finding.code.removeprefix("severity.sign.")
    if sign != finding.code:
        return protocol.severity.signs[SeveritySign(sign)]
    vital = cast(VitalName, finding.code.removeprefix("severity."))
    value = getattr(clinical.vitals, vital)
    return f"{protocol.messages.vitals[vital]} à {_num(value)}{VITAL_UNITS[vital]}"


@dataclass(frozen=True)
class _Findings:
    """Every criterion of the protocol evaluated once, before any precedence applies."""

    severity: tuple[Reason, ...]
    screening: Reason | None
    asymptomatic: Reason | None
    paediatric: Reason | None
    not_needed: Reason | None
    risks: tuple[Reason, ...]
    pregnant: Reason | None
    minor: tuple[Reason, ...]
    health_professional: Reason | None

    def in_order(self) -> tuple[Reason, ...]:
        optional = (self.screening, self.asymptomatic, self.paediatric, self.not_needed)
        return (
            *self.severity,
            *(r for r in optional if r is not None),
            *self.risks,
            *((self.pregnant,) if self.pregnant else ()),
            *self.minor,
            *((self.health_professional,) if self.health_professional else ()),
        )


def _severity(clinical: Clinical, protocol: Protocol) -> tuple[Reason, ...]:
    rules, vitals, say = protocol.severity, clinical.vitals, protocol.messages.reason
    found: list[Reason] = []
    if (
        vitals.respiratory_rate is not None
        and vitals.respiratory_rate > rules.respiratory_rate_above
    ):
        found.append(
            Reason(
                code="severity.respiratory_rate",
                field="clinical.vitals.respiratory_rate",
                message=say(
                    "severity.respiratory_rate",
                    value=_num(vitals.respiratory_rate),
                    threshold=_num(rules.respiratory_rate_above),
                ),
            )
        )
    if vitals.spo2 is not None and vitals.spo2 < rules.spo2_below:
        found.append(
            Reason(
                code="severity.spo2",
                field="clinical.vitals.spo2",
                message=say(
                    "severity.spo2", value=_num(vitals.spo2), threshold=_num(rules.spo2_below)
                ),
            )
        )
    if vitals.systolic_bp is not None and vitals.systolic_bp < rules.systolic_bp_below:
        found.append(
            Reason(
                code="severity.systolic_bp",
                field="clinical.vitals.systolic_bp",
                message=say(
                    "severity.systolic_bp",
                    value=_num(vitals.systolic_bp),
                    threshold=_num(rules.systolic_bp_below),
                ),
            )
        )
    # The protocol's order, not the referrer's, so that equal cases give equal reasons.
    found += [
        Reason(
            code=f"severity.sign.{sign.value}",
            field="clinical.severity_signs",
            message=say(f"severity.sign.{sign.value}", label=label),
        )
        for sign, label in rules.signs.items()
        if sign in clinical.severity_signs
    ]
    return tuple(found)


def _minor(clinical: Clinical, protocol: Protocol) -> tuple[Reason, ...]:
    rules, temperature = protocol.minor_factors, clinical.vitals.temperature_c
    say = protocol.messages.reason
    found: list[Reason] = []
    if temperature is not None and temperature >= rules.fever_at_or_above:
        found.append(
            Reason(
                code="minor.fever",
                field="clinical.vitals.temperature_c",
                message=say(
                    "minor.fever",
                    value=_num(temperature),
                    threshold=_num(rules.fever_at_or_above),
                ),
            )
        )
    if temperature is not None and temperature <= rules.hypothermia_at_or_below:
        found.append(
            Reason(
                code="minor.hypothermia",
                field="clinical.vitals.temperature_c",
                message=say(
                    "minor.hypothermia",
                    value=_num(temperature),
                    threshold=_num(rules.hypothermia_at_or_below),
                ),
            )
        )
    if rules.fatigue_bedridden and clinical.fatigue_bedridden:
        found.append(
            Reason(
                code="minor.fatigue",
                field="clinical.fatigue_bedridden",
                message=say("minor.fatigue"),
            )
        )
    return tuple(found)


def _risks(case: Case, protocol: Protocol) -> tuple[Reason, ...]:
    rules, clinical, say = protocol.at_risk, case.clinical, protocol.messages.reason
    found: list[Reason] = []
    if case.age >= rules.age_at_or_above:
        found.append(
            Reason(
                code="risk.age",
                field="age",
                message=say("risk.age", age=str(case.age), threshold=str(rules.age_at_or_above)),
            )
        )
    found += [
        Reason(
            code=f"risk.factor.{factor.value}",
            field="clinical.risk_factors",
            message=say(f"risk.factor.{factor.value}", label=label),
        )
        for factor, label in rules.risk_factors.items()
        if factor in clinical.risk_factors
    ]
    trimester = clinical.pregnancy_trimester
    if trimester is not None and trimester in rules.pregnancy_trimesters:
        found.append(
            Reason(
                code="risk.pregnancy",
                field="clinical.pregnancy_trimester",
                message=say("risk.pregnancy", trimester=str(trimester)),
            )
        )
    return tuple(found)


def _findings(case: Case, protocol: Protocol) -> _Findings:
    clinical = case.clinical
    limit = protocol.paediatric.age_below
    say = protocol.messages.reason
    return _Findings(
        severity=_severity(clinical, protocol),
        screening=Reason(
            code="screening",
            field="purpose",
            message=say("screening"),
        )
        if case.purpose is Purpose.SCREENING
        else None,
        asymptomatic=None
        if clinical.symptomatic
        else Reason(
            code="asymptomatic",
            field="clinical.symptomatic",
            message=say("asymptomatic"),
        ),
        paediatric=Reason(
            code="paediatric",
            field="age",
            message=say("paediatric", age=str(case.age), threshold=str(limit)),
        )
        if case.age < limit
        else None,
        not_needed=None
        if clinical.consultation_needed
        else Reason(
            code="home.not_needed",
            field="clinical.consultation_needed",
            message=say("home.not_needed"),
        ),
        risks=_risks(case, protocol),
        pregnant=Reason(
            code="pregnant",
            field="clinical.pregnancy_trimester",
            message=say("pregnant", trimester=str(clinical.pregnancy_trimester)),
        )
        if clinical.pregnancy_trimester is not None
        else None,
        minor=_minor(clinical, protocol),
        health_professional=Reason(
            code="health_professional",
            field="clinical.health_professional",
            message=say("health_professional"),
        )
        if clinical.health_professional
        else None,
    )


def _criteria(found: _Findings) -> dict[str, bool]:
    return {
        "at_risk": bool(found.risks),
        "pregnant": found.pregnant is not None,
        "health_professional": found.health_professional is not None,
        "minor_factor": bool(found.minor),
    }


def _orientation_rule(criteria: dict[str, bool], protocol: Protocol) -> PriorityRule:
    raised = protocol.priorities.raised
    if any(criteria[name] for name in raised.when_any_of):
        return raised
    return protocol.priorities.default


def findings(case: Case, protocol: Protocol) -> tuple[Reason, ...]:
    """Every criterion of the protocol the case meets, in the stable order of ``decide``'s
    reasons, without the verdict: what a regulator's decision is recorded with."""
    return _findings(case, protocol).in_order()


def orientation_rule(case: Case, protocol: Protocol) -> PriorityRule:
    """The priority (and deadline) the protocol gives ``case`` if it is oriented to a
    centre, whatever it decides: a regulator who orients a held case without naming a
    priority gets this one."""
    return _orientation_rule(_criteria(_findings(case, protocol)), protocol)


def _escalation(found: _Findings, clinical: Clinical, protocol: Protocol) -> Reason:
    """The lead reason of an escalation: every severity finding, named."""
    words, stat = protocol.messages, protocol.priorities.escalate
    signs = " ; ".join(_named(r, clinical, protocol) for r in found.severity) + "."
    return Reason(
        code="escalate",
        message=words.reason("escalate", signs=signs, priority=words.priorities[stat.priority]),
    )


def _held(found: _Findings, clinical: Clinical, protocol: Protocol) -> Reason | None:
    """At risk with none of the protocol's hold vitals measured: too little to decide
    safely, held for a regulator; None otherwise."""
    hold, words = protocol.hold, protocol.messages
    if (
        hold is not None
        and found.risks
        and all(getattr(clinical.vitals, name) is None for name in hold.when_at_risk_and_none_of)
    ):
        missing = ", ".join(words.vitals[name] for name in hold.when_at_risk_and_none_of)
        return Reason(
            code="hold.no_vitals",
            field="clinical.vitals",
            message=words.reason("hold.no_vitals", vitals=missing),
        )
    return None


def _mild(found: _Findings, case: Case, protocol: Protocol) -> Reason | None:
    """A mild picture from a referrer the protocol lists: followed up at home; None
    otherwise."""
    words = protocol.messages
    mild = not (found.risks or found.pregnant or found.minor)
    if mild and case.referrer_kind in protocol.home_follow_up.mild_from_referrers:
        return Reason(
            code=f"home.mild_{case.referrer_kind.value}",
            field="referrer.kind",
            message=words.reason(
                f"home.mild_{case.referrer_kind.value}",
                referrer=words.referrers[case.referrer_kind],
            ),
        )
    return None


def _orientation(rule: PriorityRule, protocol: Protocol) -> Reason:
    words = protocol.messages
    return Reason(
        code="orient",
        message=words.reason(
            "orient",
            priority=words.priorities[rule.priority],
            hours=_num(rule.deadline_hours),
        ),
    )


def decide(case: Case, protocol: Protocol, now: datetime) -> Outcome:
    """The protocol's decision for ``case``; ``now`` must be timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        # A naive deadline would be read in whatever zone the reader happens to be in.
        raise ValueError("now must be timezone-aware")
    clinical = case.clinical
    found = _findings(case, protocol)
    criteria = _criteria(found)
    test_eligible = clinical.symptomatic and any(
        criteria[name] for name in protocol.test_eligibility.any_of
    )

    def conclude(decision: Decision, lead: Reason, rule: PriorityRule | None = None) -> Outcome:
        return Outcome(
            decision=decision,
            priority=rule.priority if rule is not None else None,
            deadline=now + timedelta(hours=rule.deadline_hours) if rule is not None else None,
            test_eligible=test_eligible,
            reasons=(lead, *(r for r in found.in_order() if r.code != lead.code)),
            protocol_version=protocol.version,
        )

    # Severity first, before the screening request: a severe patient is escalated
    # whatever the referral asked for (see the module docstring).
    if found.severity:
        escalate = protocol.priorities.escalate
        return conclude(Decision.ESCALATE, _escalation(found, clinical, protocol), escalate)
    if found.screening is not None:
        return conclude(Decision.REFUSE, found.screening)
    if found.asymptomatic is not None:
        return conclude(Decision.REFUSE, found.asymptomatic)
    if found.paediatric is not None:
        return conclude(Decision.HOME_FOLLOW_UP, found.paediatric)
    if found.not_needed is not None:
        return conclude(Decision.HOME_FOLLOW_UP, found.not_needed)
    held = _held(found, clinical, protocol)
    if held is not None:
        return conclude(Decision.HOLD, held)
    mild = _mild(found, case, protocol)
    if mild is not None:
        return conclude(Decision.HOME_FOLLOW_UP, mild)
    rule = _orientation_rule(criteria, protocol)
    return conclude(Decision.ORIENT, _orientation(rule, protocol), rule)
