"""The decision for one referral, from the protocol in force.

Precedence, first match wins (each rule that fired is kept as a reason):

1. a screening request: REFUSE (centres are not screening centres);
2. a severity sign, or a vital beyond its threshold: ESCALATE to SAMU / the emergency
   department, priority STAT, whatever else (even a child, even "asymptomatic");
3. no symptom: REFUSE (a person without symptoms is never oriented to a centre);
4. a child under the paediatric age: HOME_FOLLOW_UP (the adult centres are not for
   them: back to the GP or Centre 15);
5. the referrer says no consultation is needed: HOME_FOLLOW_UP;
6. at risk and no vital sign at all: HOLD for a regulator (not safe to decide);
7. Centre 15 refers a mild picture (not at risk, not pregnant, no minor factor):
   HOME_FOLLOW_UP by the GP;
8. otherwise ORIENT to a centre: ASAP when at risk, pregnant or with a minor
   severity factor, else ROUTINE, with the protocol's deadline.

Test eligibility is computed for every referral: symptomatic and (at risk, or
pregnant, or a health professional), as the protocol enables each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.regulation.domain.protocol import PriorityRule, Protocol
from shared.events import Clinical, Decision, Priority, Purpose, Reason, ReferrerKind


@dataclass(frozen=True)
class Case:
    age: int
    clinical: Clinical
    referrer_kind: ReferrerKind
    purpose: Purpose


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    priority: Priority | None
    deadline: datetime | None
    test_eligible: bool
    reasons: tuple[Reason, ...]
    protocol_version: str


def severity_reasons(clinical: Clinical, protocol: Protocol) -> list[Reason]:
    rules, vitals = protocol.severity, clinical.vitals
    found = [
        Reason(code=f"severity.sign.{sign.value}", message=f"Severity sign: {sign.value}.")
        for sign in clinical.severity_signs
        if sign in rules.signs
    ]
    if (
        vitals.respiratory_rate is not None
        and vitals.respiratory_rate > rules.respiratory_rate_above
    ):
        found.append(
            Reason(
                code="severity.respiratory_rate",
                message=f"Respiratory rate {vitals.respiratory_rate}/min is above "
                f"{rules.respiratory_rate_above}/min.",
            )
        )
    if vitals.spo2 is not None and vitals.spo2 < rules.spo2_below:
        found.append(
            Reason(
                code="severity.spo2",
                message=f"SpO2 {vitals.spo2} % in ambient air is below {rules.spo2_below} %.",
            )
        )
    if vitals.systolic_bp is not None and vitals.systolic_bp < rules.systolic_bp_below:
        found.append(
            Reason(
                code="severity.systolic_bp",
                message=f"Systolic pressure {vitals.systolic_bp} mmHg is below "
                f"{rules.systolic_bp_below} mmHg.",
            )
        )
    return found


def minor_reasons(clinical: Clinical, protocol: Protocol) -> list[Reason]:
    rules, temperature = protocol.minor_factors, clinical.vitals.temperature_c
    found = []
    if temperature is not None and temperature >= rules.fever_at_or_above:
        found.append(
            Reason(
                code="minor.fever",
                message=f"Temperature {temperature} °C is at "
                f"or above {rules.fever_at_or_above} °C.",
            )
        )
    if temperature is not None and temperature <= rules.hypothermia_at_or_below:
        found.append(
            Reason(
                code="minor.hypothermia",
                message=f"Temperature {temperature} °C "
                f"is at or below {rules.hypothermia_at_or_below} °C.",
            )
        )
    if rules.fatigue_bedridden and clinical.fatigue_bedridden:
        found.append(
            Reason(
                code="minor.fatigue",
                message="Fatigue keeps the patient resting more than half the day.",
            )
        )
    return found


def risk_reasons(case: Case, protocol: Protocol) -> list[Reason]:
    rules, clinical = protocol.at_risk, case.clinical
    found = []
    if case.age >= rules.age_at_or_above:
        found.append(
            Reason(code="risk.age", message=f"Age {case.age} is {rules.age_at_or_above} or over.")
        )
    found += [
        Reason(code=f"risk.factor.{factor.value}", message=f"Risk factor: {factor.value}.")
        for factor in clinical.risk_factors
        if factor in rules.risk_factors
    ]
    trimester = clinical.pregnancy_trimester
    if trimester is not None and trimester >= rules.pregnancy_trimester_at_or_above:
        found.append(Reason(code="risk.pregnancy", message=f"Pregnancy, trimester {trimester}."))
    return found


def decide(case: Case, protocol: Protocol, now: datetime) -> Outcome:
    clinical = case.clinical
    severe = severity_reasons(clinical, protocol)
    minor = minor_reasons(clinical, protocol)
    risks = risk_reasons(case, protocol)
    pregnant = clinical.pregnancy_trimester is not None
    eligible_by = protocol.test_eligibility
    test_eligible = clinical.symptomatic and (
        (eligible_by.at_risk and bool(risks))
        or (eligible_by.pregnant and pregnant)
        or (eligible_by.health_professional and clinical.health_professional)
    )

    def outcome(
        decision: Decision, reasons: list[Reason], rule: PriorityRule | None = None
    ) -> Outcome:
        return Outcome(
            decision=decision,
            priority=rule.priority if rule else None,
            deadline=now + timedelta(hours=rule.deadline_hours) if rule else None,
            test_eligible=test_eligible,
            reasons=tuple(reasons),
            protocol_version=protocol.version,
        )

    if case.purpose is Purpose.SCREENING:
        return outcome(
            Decision.REFUSE,
            [Reason(code="screening", message="Centres are not screening centres.")],
        )
    if severe:
        return outcome(Decision.ESCALATE, severe, protocol.priorities.escalate)
    if not clinical.symptomatic:
        return outcome(
            Decision.REFUSE,
            [
                Reason(
                    code="asymptomatic",
                    message="No symptoms: a person without symptoms is not oriented to a centre.",
                )
            ],
        )
    if case.age < protocol.paediatric_age_below:
        return outcome(
            Decision.HOME_FOLLOW_UP,
            [
                Reason(
                    code="paediatric",
                    message=f"Age {case.age} is under {protocol.paediatric_age_below}: outside the "
                    "adult centres' scope; back to the GP or Centre 15.",
                )
            ],
        )
    if not clinical.consultation_needed:
        return outcome(
            Decision.HOME_FOLLOW_UP,
            [
                Reason(
                    code="home.not_needed",
                    message="The referrer judges a consultation unnecessary: "
                    "home follow-up by the GP.",
                )
            ],
        )
    vitals = clinical.vitals
    no_vitals = (
        vitals.spo2 is None and vitals.respiratory_rate is None and (vitals.systolic_bp is None)
    )
    if risks and no_vitals and protocol.hold_when_at_risk_without_vitals:
        return outcome(
            Decision.HOLD,
            [
                *risks,
                Reason(
                    code="hold.no_vitals",
                    message="At risk with no vital sign: a regulator decides.",
                ),
            ],
        )
    raised = bool(risks) or pregnant or bool(minor)
    if (
        case.referrer_kind is ReferrerKind.CENTRE_15
        and not raised
        and protocol.home_follow_up_for_mild_centre_15
    ):
        return outcome(
            Decision.HOME_FOLLOW_UP,
            [
                Reason(
                    code="home.mild_centre_15",
                    message="Mild picture referred by Centre 15: home follow-up by the GP.",
                )
            ],
        )
    reasons = [*risks, *minor]
    if pregnant and not any(r.code == "risk.pregnancy" for r in risks):
        reasons.append(Reason(code="pregnant", message="Pregnant: seen within hours."))
    if clinical.health_professional:
        reasons.append(Reason(code="health_professional", message="Health professional."))
    rule = protocol.priorities.raised if raised else protocol.priorities.default
    reasons.append(
        Reason(
            code="orient",
            message=f"Oriented to a consultation centre, priority {rule.priority.value}.",
        )
    )
    return outcome(Decision.ORIENT, reasons, rule)
