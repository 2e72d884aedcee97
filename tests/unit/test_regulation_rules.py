"""Regulation protocol v1, criterion by criterion, threshold by threshold, as tables.

The baseline case is a 45-year-old symptomatic adult referred by a GP with normal
vitals: ORIENT, routine. Each row changes only what it is about.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from services.regulation.domain.override import (
    InvalidOverride,
    attached_outcome,
    regulator_outcome,
)
from services.regulation.domain.protocol import (
    MessageKey,
    Protocol,
    default_protocol,
    load_protocol,
    message_key,
)
from services.regulation.domain.rules import Case, Outcome, decide, orientation_rule
from shared.events import (
    Clinical,
    Decision,
    Priority,
    Purpose,
    ReferrerKind,
    RiskFactor,
    SeveritySign,
)

NOW = datetime(2020, 3, 25, 9, 30, tzinfo=UTC)
V1 = default_protocol()
NORMAL_VITALS: dict[str, float] = {
    "spo2": 97.0,
    "respiratory_rate": 16,
    "systolic_bp": 125,
    "temperature_c": 38.2,
}

Row = dict[str, Any]


def case(
    age: int = 45,
    referrer: ReferrerKind = ReferrerKind.GP,
    purpose: Purpose = Purpose.CONSULTATION,
    vitals: dict[str, float] | None = None,
    measured: dict[str, float] | None = None,
    **clinical: Any,
) -> Case:
    """The baseline case, ``clinical`` fields replaced, ``vitals`` merged over normal ones.

    ``measured`` gives the exact vitals instead, for cases where what is missing matters.
    """
    data: dict[str, Any] = {"symptomatic": True, "symptoms": ["cough", "fever"]}
    data["vitals"] = measured if measured is not None else NORMAL_VITALS | (vitals or {})
    data.update(clinical)
    return Case(
        age=age,
        clinical=Clinical.model_validate(data),
        referrer_kind=referrer,
        purpose=purpose,
    )


def run(c: Case, protocol: Protocol = V1) -> Outcome:
    return decide(c, protocol, NOW)


def codes(outcome: Outcome) -> list[str]:
    return [r.code for r in outcome.reasons]


def v1_document() -> dict[str, Any]:
    text = (files("services.regulation.protocols") / "v1.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def test_the_baseline_is_oriented_routine_within_the_day() -> None:
    outcome = run(case())
    assert outcome.decision is Decision.ORIENT
    assert outcome.priority is Priority.ROUTINE
    assert outcome.deadline == NOW + timedelta(hours=24)
    assert outcome.test_eligible is False
    assert codes(outcome) == ["orient"]
    assert outcome.protocol_version == "1"


# --- thresholds, each on both sides -------------------------------------------------


@pytest.mark.parametrize(
    ("c", "decision", "priority", "fired", "code"),
    [
        pytest.param(case(vitals={"respiratory_rate": 22}), Decision.ORIENT, Priority.ROUTINE,
                     False, "severity.respiratory_rate", id="respiratory-rate-22-stays"),
        pytest.param(case(vitals={"respiratory_rate": 23}), Decision.ESCALATE, Priority.STAT,
                     True, "severity.respiratory_rate", id="respiratory-rate-23-escalates"),
        pytest.param(case(vitals={"spo2": 90}), Decision.ORIENT, Priority.ROUTINE,
                     False, "severity.spo2", id="spo2-90-stays"),
        pytest.param(case(vitals={"spo2": 89.9}), Decision.ESCALATE, Priority.STAT,
                     True, "severity.spo2", id="spo2-89.9-escalates"),
        pytest.param(case(vitals={"systolic_bp": 90}), Decision.ORIENT, Priority.ROUTINE,
                     False, "severity.systolic_bp", id="systolic-90-stays"),
        pytest.param(case(vitals={"systolic_bp": 89}), Decision.ESCALATE, Priority.STAT,
                     True, "severity.systolic_bp", id="systolic-89-escalates"),
        pytest.param(case(vitals={"temperature_c": 39.0}), Decision.ORIENT, Priority.ASAP,
                     True, "minor.fever", id="temperature-39.0-is-minor"),
        pytest.param(case(vitals={"temperature_c": 38.9}), Decision.ORIENT, Priority.ROUTINE,
                     False, "minor.fever", id="temperature-38.9-is-not"),
        pytest.param(case(vitals={"temperature_c": 35.4}), Decision.ORIENT, Priority.ASAP,
                     True, "minor.hypothermia", id="temperature-35.4-is-minor"),
        pytest.param(case(vitals={"temperature_c": 35.5}), Decision.ORIENT, Priority.ROUTINE,
                     False, "minor.hypothermia", id="temperature-35.5-is-not"),
        pytest.param(case(age=70), Decision.ORIENT, Priority.ASAP,
                     True, "risk.age", id="age-70-at-risk"),
        pytest.param(case(age=69), Decision.ORIENT, Priority.ROUTINE,
                     False, "risk.age", id="age-69-not-at-risk"),
        pytest.param(case(age=15), Decision.ORIENT, Priority.ROUTINE,
                     False, "paediatric", id="age-15-adult"),
        pytest.param(case(age=14), Decision.HOME_FOLLOW_UP, None,
                     True, "paediatric", id="age-14-paediatric"),
    ],
)  # fmt: skip
def test_thresholds_on_both_sides(
    c: Case, decision: Decision, priority: Priority | None, fired: bool, code: str
) -> None:
    outcome = run(c)
    assert outcome.decision is decision
    assert outcome.priority is priority
    assert (code in codes(outcome)) is fired


@pytest.mark.parametrize(
    ("c", "words"),
    [
        pytest.param(case(vitals={"respiratory_rate": 23}), ["23/min", "22/min"], id="rr"),
        pytest.param(case(vitals={"spo2": 89.9}), ["89,9 %", "90 %"], id="spo2"),
        pytest.param(case(vitals={"systolic_bp": 89}), ["89 mmHg", "90 mmHg"], id="systolic"),
        pytest.param(case(vitals={"temperature_c": 39.4}), ["39,4 °C", "39 °C"], id="fever"),
        pytest.param(case(vitals={"temperature_c": 35.1}), ["35,1 °C", "35,4 °C"], id="cold"),
        pytest.param(case(age=82), ["82", "70"], id="age"),
        pytest.param(case(age=12), ["12", "15"], id="paediatric"),
    ],
)
def test_messages_give_the_measured_value_and_the_threshold(c: Case, words: list[str]) -> None:
    messages = " ".join(r.message for r in run(c).reasons)
    for word in words:
        assert word in messages


# --- every criterion of v1 ------------------------------------------------------------


@pytest.mark.parametrize("sign", list(SeveritySign), ids=lambda s: s.value)
def test_every_severity_sign_escalates_now(sign: SeveritySign) -> None:
    outcome = run(case(severity_signs=[sign]))
    assert outcome.decision is Decision.ESCALATE
    assert outcome.priority is Priority.STAT
    assert outcome.deadline == NOW
    assert codes(outcome) == ["escalate", f"severity.sign.{sign.value}"]


@pytest.mark.parametrize("factor", list(RiskFactor), ids=lambda f: f.value)
def test_every_risk_factor_puts_at_risk(factor: RiskFactor) -> None:
    outcome = run(case(risk_factors=[factor]))
    assert outcome.decision is Decision.ORIENT
    assert outcome.priority is Priority.ASAP
    assert outcome.deadline == NOW + timedelta(hours=6)
    assert outcome.test_eligible is True
    assert codes(outcome) == ["orient", f"risk.factor.{factor.value}"]


@pytest.mark.parametrize(
    ("trimester", "expected"),
    [
        pytest.param(1, ["orient", "pregnant"], id="trimester-1-pregnant-only"),
        pytest.param(2, ["orient", "pregnant"], id="trimester-2-pregnant-only"),
        pytest.param(3, ["orient", "risk.pregnancy", "pregnant"], id="trimester-3-at-risk"),
    ],
)
def test_any_pregnancy_is_asap_and_eligible_the_third_trimester_is_at_risk(
    trimester: int, expected: list[str]
) -> None:
    outcome = run(case(pregnancy_trimester=trimester))
    assert (outcome.decision, outcome.priority) == (Decision.ORIENT, Priority.ASAP)
    assert outcome.test_eligible is True
    assert codes(outcome) == expected


def test_bedridden_fatigue_is_a_minor_factor() -> None:
    outcome = run(case(fatigue_bedridden=True))
    assert (outcome.decision, outcome.priority) == (Decision.ORIENT, Priority.ASAP)
    assert codes(outcome) == ["orient", "minor.fatigue"]
    assert outcome.test_eligible is False


def test_a_health_professional_is_eligible_but_not_raised() -> None:
    outcome = run(case(health_professional=True))
    assert (outcome.decision, outcome.priority) == (Decision.ORIENT, Priority.ROUTINE)
    assert outcome.test_eligible is True
    assert codes(outcome) == ["orient", "health_professional"]


@pytest.mark.parametrize(
    ("c", "lead"),
    [
        pytest.param(case(symptomatic=False, symptoms=[]), "asymptomatic", id="asymptomatic"),
        pytest.param(case(purpose=Purpose.SCREENING), "screening", id="screening"),
    ],
)
def test_refusals(c: Case, lead: str) -> None:
    outcome = run(c)
    assert outcome.decision is Decision.REFUSE
    assert (outcome.priority, outcome.deadline) == (None, None)
    assert codes(outcome)[0] == lead


@pytest.mark.parametrize(
    ("c", "lead"),
    [
        pytest.param(case(consultation_needed=False), "home.not_needed", id="not-needed"),
        pytest.param(case(referrer=ReferrerKind.CENTRE_15), "home.mild_centre_15", id="c15-mild"),
        pytest.param(case(age=8), "paediatric", id="child"),
    ],
)
def test_home_follow_up(c: Case, lead: str) -> None:
    outcome = run(c)
    assert outcome.decision is Decision.HOME_FOLLOW_UP
    assert (outcome.priority, outcome.deadline) == (None, None)
    assert codes(outcome) == [lead]


# --- what decides the priority ---------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "priority", "hours"),
    [
        pytest.param(case(), Priority.ROUTINE, 24, id="nothing-routine"),
        pytest.param(case(health_professional=True), Priority.ROUTINE, 24, id="hp-routine"),
        pytest.param(case(age=75), Priority.ASAP, 6, id="age-asap"),
        pytest.param(case(risk_factors=["morbid_obesity"]), Priority.ASAP, 6, id="factor-asap"),
        pytest.param(case(pregnancy_trimester=1), Priority.ASAP, 6, id="pregnant-asap"),
        pytest.param(case(vitals={"temperature_c": 39.5}), Priority.ASAP, 6, id="fever-asap"),
        pytest.param(case(fatigue_bedridden=True), Priority.ASAP, 6, id="fatigue-asap"),
        pytest.param(
            case(age=80, fatigue_bedridden=True, vitals={"temperature_c": 40}),
            Priority.ASAP, 6, id="several-raise-once",
        ),
        pytest.param(
            case(age=80, severity_signs=["confusion"]), Priority.STAT, 0, id="severity-stat"
        ),
        pytest.param(
            case(referrer=ReferrerKind.CENTRE_15, age=72), Priority.ASAP, 6, id="c15-at-risk"
        ),
        pytest.param(
            case(referrer=ReferrerKind.CENTRE_15, pregnancy_trimester=2),
            Priority.ASAP, 6, id="c15-pregnant",
        ),
        pytest.param(
            case(referrer=ReferrerKind.CENTRE_15, fatigue_bedridden=True),
            Priority.ASAP, 6, id="c15-minor",
        ),
        pytest.param(case(referrer=ReferrerKind.SOS_MEDECINS), Priority.ROUTINE, 24, id="sos"),
        pytest.param(
            case(referrer=ReferrerKind.EMERGENCY_DEPARTMENT), Priority.ROUTINE, 24, id="ed"
        ),
    ],
)  # fmt: skip
def test_priority_and_deadline(c: Case, priority: Priority, hours: int) -> None:
    outcome = run(c)
    assert outcome.priority is priority
    assert outcome.deadline == NOW + timedelta(hours=hours)


# --- test eligibility ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "decision", "eligible"),
    [
        pytest.param(case(), Decision.ORIENT, False, id="symptomatic-only"),
        pytest.param(case(age=70), Decision.ORIENT, True, id="at-risk-by-age"),
        pytest.param(case(risk_factors=["immunodeficiency"]), Decision.ORIENT, True,
                     id="at-risk-by-factor"),
        pytest.param(case(pregnancy_trimester=1), Decision.ORIENT, True, id="pregnant"),
        pytest.param(case(health_professional=True), Decision.ORIENT, True, id="hp"),
        pytest.param(case(vitals={"temperature_c": 39.5}), Decision.ORIENT, False,
                     id="minor-factor-is-not-a-criterion"),
        pytest.param(case(symptomatic=False, health_professional=True), Decision.REFUSE, False,
                     id="asymptomatic-hp"),
        pytest.param(case(symptomatic=False, age=80), Decision.REFUSE, False,
                     id="asymptomatic-at-risk"),
        pytest.param(case(symptomatic=False, pregnancy_trimester=3), Decision.REFUSE, False,
                     id="asymptomatic-pregnant"),
        pytest.param(case(health_professional=True, severity_signs=["dyspnoea"]),
                     Decision.ESCALATE, True, id="escalated-hp"),
        pytest.param(case(age=10, risk_factors=["chronic_respiratory"]),
                     Decision.HOME_FOLLOW_UP, True, id="child-at-risk"),
        pytest.param(case(age=80, measured={}), Decision.HOLD, True, id="held"),
        pytest.param(case(referrer=ReferrerKind.CENTRE_15, health_professional=True),
                     Decision.HOME_FOLLOW_UP, True, id="c15-mild-hp"),
        pytest.param(case(purpose=Purpose.SCREENING, health_professional=True),
                     Decision.REFUSE, True, id="screening-hp"),
    ],
)  # fmt: skip
def test_test_eligibility_whatever_the_decision(
    c: Case, decision: Decision, eligible: bool
) -> None:
    outcome = run(c)
    assert outcome.decision is decision
    assert outcome.test_eligible is eligible


# --- precedence ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "decision", "lead"),
    [
        # Was "screening-beats-severity" (REFUSE): a clinical safety fault. A referrer
        # who ticked screening for a breathless patient was told centres do not screen,
        # and Centre 15 heard nothing; severity now decides before the purpose.
        pytest.param(case(purpose=Purpose.SCREENING, severity_signs=["dyspnoea"]),
                     Decision.ESCALATE, "escalate", id="severity-beats-screening"),
        pytest.param(case(purpose=Purpose.SCREENING, age=5), Decision.REFUSE, "screening",
                     id="screening-beats-paediatric"),
        pytest.param(case(purpose=Purpose.SCREENING, symptomatic=False), Decision.REFUSE,
                     "screening", id="screening-beats-asymptomatic"),
        pytest.param(case(purpose=Purpose.SCREENING, age=80, measured={}),
                     Decision.REFUSE, "screening", id="screening-beats-hold"),
        pytest.param(case(age=6, vitals={"spo2": 85}), Decision.ESCALATE, "escalate",
                     id="severity-beats-paediatric"),
        pytest.param(case(symptomatic=False, severity_signs=["confusion"]), Decision.ESCALATE,
                     "escalate", id="severity-beats-asymptomatic"),
        pytest.param(case(consultation_needed=False, vitals={"respiratory_rate": 30}),
                     Decision.ESCALATE, "escalate", id="severity-beats-not-needed"),
        pytest.param(case(referrer=ReferrerKind.CENTRE_15, vitals={"systolic_bp": 80}),
                     Decision.ESCALATE, "escalate", id="severity-beats-c15-mild"),
        pytest.param(case(age=3, symptomatic=False), Decision.REFUSE, "asymptomatic",
                     id="asymptomatic-beats-paediatric"),
        pytest.param(case(age=3, consultation_needed=False), Decision.HOME_FOLLOW_UP,
                     "paediatric", id="paediatric-beats-not-needed"),
        pytest.param(case(age=3, risk_factors=["immunodeficiency"], measured={}),
                     Decision.HOME_FOLLOW_UP, "paediatric", id="paediatric-beats-hold"),
        pytest.param(case(age=80, consultation_needed=False, measured={}),
                     Decision.HOME_FOLLOW_UP, "home.not_needed", id="not-needed-beats-hold"),
        pytest.param(case(age=80, referrer=ReferrerKind.CENTRE_15, measured={}),
                     Decision.HOLD, "hold.no_vitals", id="hold-for-c15-too"),
    ],
)  # fmt: skip
def test_precedence(c: Case, decision: Decision, lead: str) -> None:
    outcome = run(c)
    assert outcome.decision is decision
    assert codes(outcome)[0] == lead


def test_every_criterion_that_fired_is_a_reason_in_a_stable_order() -> None:
    outcome = run(
        case(
            age=9,
            symptomatic=False,
            consultation_needed=False,
            severity_signs=["sudden_decline_elderly", "dyspnoea"],
            risk_factors=["morbid_obesity", "chronic_respiratory"],
            health_professional=True,
            fatigue_bedridden=True,
            vitals={"spo2": 88, "temperature_c": 39.2},
        )
    )
    assert outcome.decision is Decision.ESCALATE
    assert codes(outcome) == [
        "escalate",
        "severity.spo2",
        "severity.sign.dyspnoea",
        "severity.sign.sudden_decline_elderly",
        "asymptomatic",
        "paediatric",
        "home.not_needed",
        "risk.factor.chronic_respiratory",
        "risk.factor.morbid_obesity",
        "minor.fever",
        "minor.fatigue",
        "health_professional",
    ]
    assert all(r.message for r in outcome.reasons)
    assert outcome.test_eligible is False  # not symptomatic


# --- a screening request with a severity sign ------------------------------------------


def test_a_screening_request_with_spo2_88_is_escalated_naming_spo2() -> None:
    outcome = run(case(purpose=Purpose.SCREENING, vitals={"spo2": 88}))
    assert outcome.decision is Decision.ESCALATE
    assert (outcome.priority, outcome.deadline) == (Priority.STAT, NOW)
    lead = outcome.reasons[0]
    assert lead.code == "escalate"
    assert "SpO2 à 88 %" in lead.message
    # The finding itself (with the threshold), then the screening request: the audit
    # sees both.
    assert "en dessous de 90 %" in outcome.reasons[1].message
    assert codes(outcome) == ["escalate", "severity.spo2", "screening"]


def test_a_screening_request_with_confusion_at_81_is_escalated_naming_confusion() -> None:
    outcome = run(case(purpose=Purpose.SCREENING, age=81, severity_signs=["confusion"]))
    assert outcome.decision is Decision.ESCALATE
    assert outcome.priority is Priority.STAT
    assert "confusion" in outcome.reasons[0].message
    assert codes(outcome) == ["escalate", "severity.sign.confusion", "screening", "risk.age"]


def test_the_lead_reason_of_an_escalation_names_every_finding() -> None:
    outcome = run(case(severity_signs=["dehydration"], vitals={"respiratory_rate": 30}))
    lead = outcome.reasons[0].message
    assert lead.startswith("Signes de gravité : fréquence respiratoire à 30/min ; déshydratation.")
    # Tersely: each finding's own reason follows, with its threshold, not repeated in it.
    assert [r.code for r in outcome.reasons[1:3]] == [
        "severity.respiratory_rate",
        "severity.sign.dehydration",
    ]
    assert all(finding.message not in lead for finding in outcome.reasons[1:3])


@pytest.mark.parametrize(
    "c",
    [
        pytest.param(case(purpose=Purpose.SCREENING), id="symptomatic"),
        pytest.param(case(purpose=Purpose.SCREENING, symptomatic=False, symptoms=[]),
                     id="asymptomatic"),
        pytest.param(case(purpose=Purpose.SCREENING, age=81), id="at-risk"),
        pytest.param(case(purpose=Purpose.SCREENING, vitals={"spo2": 90}), id="spo2-90"),
    ],
)  # fmt: skip
def test_a_screening_request_without_any_sign_is_still_refused(c: Case) -> None:
    outcome = run(c)
    assert outcome.decision is Decision.REFUSE
    assert codes(outcome)[0] == "screening"
    assert codes(outcome).count("screening") == 1
    assert not any(code.startswith("severity.") for code in codes(outcome))


# --- the hold rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "decision"),
    [
        pytest.param(case(age=80, measured={}), Decision.HOLD, id="at-risk-no-vitals"),
        pytest.param(case(age=80, measured={"temperature_c": 39.5}), Decision.HOLD,
                     id="temperature-alone-is-not-enough"),
        pytest.param(case(pregnancy_trimester=3, measured={}), Decision.HOLD,
                     id="third-trimester-no-vitals"),
        pytest.param(case(risk_factors=["renal_failure_dialysis"], measured={}),
                     Decision.HOLD, id="risk-factor-no-vitals"),
        pytest.param(case(age=80, measured={"spo2": 95}), Decision.ORIENT, id="spo2-is-enough"),
        pytest.param(case(age=80, measured={"respiratory_rate": 18}), Decision.ORIENT,
                     id="respiratory-rate-is-enough"),
        pytest.param(case(age=80, measured={"systolic_bp": 130}), Decision.ORIENT,
                     id="systolic-is-enough"),
        pytest.param(case(pregnancy_trimester=2, measured={}), Decision.ORIENT,
                     id="pregnant-not-at-risk-is-oriented"),
        pytest.param(case(measured={}), Decision.ORIENT, id="not-at-risk-is-oriented"),
    ],
)  # fmt: skip
def test_hold_when_at_risk_without_any_vital(c: Case, decision: Decision) -> None:
    outcome = run(c)
    assert outcome.decision is decision
    if decision is Decision.HOLD:
        assert (outcome.priority, outcome.deadline) == (None, None)
        assert codes(outcome)[0] == "hold.no_vitals"


def test_hold_with_vitals_given_one_by_one() -> None:
    # Each measured vital on its own must lift the hold: none is privileged.
    for name in ("spo2", "respiratory_rate", "systolic_bp"):
        assert (
            run(case(age=80, measured={name: NORMAL_VITALS[name]})).decision is Decision.ORIENT
        ), name


# --- the protocol version and the protocol as data -------------------------------------


@pytest.mark.parametrize(
    "c",
    [
        pytest.param(case(), id="orient"),
        pytest.param(case(severity_signs=["dehydration"]), id="escalate"),
        pytest.param(case(symptomatic=False), id="refuse"),
        pytest.param(case(age=4), id="home"),
        pytest.param(case(age=90, measured={}), id="hold"),
    ],
)
def test_every_decision_records_the_protocol_version(c: Case) -> None:
    assert run(c).protocol_version == "1"


def test_v1_holds_the_thresholds_and_lists_as_data() -> None:
    assert V1.version == "1"
    assert V1.severity.respiratory_rate_above == 22
    assert V1.severity.spo2_below == 90
    assert V1.severity.systolic_bp_below == 90
    assert set(V1.severity.signs) == set(SeveritySign)
    assert set(V1.at_risk.risk_factors) == set(RiskFactor)
    assert V1.at_risk.pregnancy_trimesters == (3,)
    assert V1.paediatric.age_below == 15


def test_a_modified_protocol_changes_the_decision_and_records_its_version(
    tmp_path: Path,
) -> None:
    document = copy.deepcopy(v1_document())
    document["version"] = "2"
    document["effective_from"] = "2020-04-15"
    document["severity"]["spo2_below"] = 92
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    c = case(vitals={"spo2": 91})

    before = run(c)
    after_from_dict = run(c, load_protocol(document))
    after_from_file = run(c, load_protocol(path))

    assert (before.decision, before.protocol_version) == (Decision.ORIENT, "1")
    for after in (after_from_dict, after_from_file):
        assert (after.decision, after.protocol_version) == (Decision.ESCALATE, "2")
        assert "92 %" in after.reasons[1].message


@pytest.mark.parametrize(
    ("change", "c", "v1_decision", "v2_decision"),
    [
        pytest.param({"hold": None}, case(age=80, measured={}), Decision.HOLD,
                     Decision.ORIENT, id="hold-disabled"),
        pytest.param({"home_follow_up": {"mild_from_referrers": []}},
                     case(referrer=ReferrerKind.CENTRE_15), Decision.HOME_FOLLOW_UP,
                     Decision.ORIENT, id="c15-mild-oriented"),
        pytest.param({"paediatric": {"age_below": 18}}, case(age=16), Decision.ORIENT,
                     Decision.HOME_FOLLOW_UP, id="paediatric-18"),
    ],
)  # fmt: skip
def test_rules_are_switched_by_data(
    change: dict[str, Any], c: Case, v1_decision: Decision, v2_decision: Decision
) -> None:
    v2 = load_protocol(v1_document() | change | {"version": "2"})
    assert run(c).decision is v1_decision
    assert run(c, v2).decision is v2_decision


def test_test_criteria_and_raised_priority_are_data() -> None:
    document = v1_document()
    document["version"] = "2"
    document["test_eligibility"]["any_of"] = ["at_risk"]
    document["priorities"]["raised"]["when_any_of"] = ["at_risk"]
    outcome = run(case(pregnancy_trimester=1, health_professional=True), load_protocol(document))
    assert (outcome.priority, outcome.test_eligible) == (Priority.ROUTINE, False)


# --- invalid documents -----------------------------------------------------------------


_DELETE = object()


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "loc", "words"),
    [
        pytest.param("severity.spo2_below", 120, ("severity", "spo2_below"),
                     "less than or equal to 100", id="spo2-over-100"),
        pytest.param("severity.signs.cough", "cough", ("severity", "signs", "cough", "[key]"),
                     "dyspnoea", id="unknown-severity-sign"),
        pytest.param("at_risk.risk_factors.smoking", "smoker", ("at_risk", "risk_factors",
                     "smoking", "[key]"), "chronic_respiratory", id="unknown-risk-factor"),
        pytest.param("severity.respiratory_rate_over", 22, ("severity", "respiratory_rate_over"),
                     "Extra inputs are not permitted", id="unknown-key"),
        pytest.param("version", _DELETE, ("version",), "Field required", id="no-version"),
        pytest.param("minor_factors.hypothermia_at_or_below", 39.5, ("minor_factors",),
                     "must be lower than fever_at_or_above", id="hypothermia-above-fever"),
        pytest.param("priorities.default.deadline_hours", 2, ("priorities",),
                     "default deadline (2.0 h) is sooner than raised", id="deadlines-inverted"),
        pytest.param("priorities.escalate.priority", "routine", ("priorities",),
                     "raised priority asap is more urgent than escalate priority routine",
                     id="priorities-inverted"),
        pytest.param("at_risk.pregnancy_trimesters", [3, 3], ("at_risk", "pregnancy_trimesters"),
                     "duplicate", id="duplicate-trimester"),
        pytest.param("at_risk.pregnancy_trimesters", [4], ("at_risk", "pregnancy_trimesters", 0),
                     "less than or equal to 3", id="trimester-4"),
        pytest.param("test_eligibility.any_of", ["everyone"], ("test_eligibility", "any_of", 0),
                     "'at_risk'", id="unknown-test-criterion"),
        pytest.param("hold.when_at_risk_and_none_of", [], ("hold", "when_at_risk_and_none_of"),
                     "at least 1", id="empty-hold-list"),
        pytest.param("home_follow_up.mild_from_referrers", ["pharmacist"],
                     ("home_follow_up", "mild_from_referrers", 0), "centre_15",
                     id="unknown-referrer"),
        pytest.param("effective_from", "someday", ("effective_from",), "date",
                     id="bad-date"),
        pytest.param("messages.reasons.orient", _DELETE, ("messages",),
                     "no reason message for ['orient']", id="reason-without-message"),
        pytest.param("messages.reasons.paediatric", "Âge {âge} ans", ("messages",),
                     "reasons.paediatric: unknown placeholder(s) {âge} "
                     "(allowed: {age}, {threshold})", id="misspelt-placeholder"),
        pytest.param("messages.reasons.orient", "priorité {priority:>10}", ("messages",),
                     "use a plain named placeholder", id="format-spec"),
        pytest.param("messages.reasons.screening", "Dépistage {", ("messages",),
                     "reasons.screening", id="unbalanced-brace"),
        pytest.param("messages.reasons.orientation", "Orienté.", ("messages", "reasons",
                     "orientation", "[key]"), "'escalate'", id="message-for-no-code"),
        pytest.param("messages.vitals.spo2", _DELETE, ("messages",), "no vital label for "
                     "['spo2']", id="vital-without-label"),
        pytest.param("messages.referrers.gp", _DELETE, ("messages",), "no referrer label for "
                     "['gp']", id="referrer-without-label"),
        pytest.param("messages.priorities.asap", "", ("messages", "priorities", "asap"),
                     "at least 1", id="empty-priority-label"),
    ],
)  # fmt: skip
def test_an_invalid_protocol_is_refused_with_a_clear_error(
    path: str, value: Any, loc: tuple[str | int, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        load_protocol(_set(v1_document(), path, value))
    errors = {tuple(e["loc"]): e["msg"] for e in raised.value.errors()}
    assert loc in errors, errors
    assert words in errors[loc]


def test_malformed_json_is_refused_as_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"version": "3",', encoding="utf-8")
    with pytest.raises(ValidationError, match="Invalid JSON"):
        load_protocol(path)


# --- the reasons' wording, French and data -----------------------------------------------


def _every_code_emitted() -> set[str]:
    """The codes the rules emit, found by running them: every path of ``decide``, every
    sign and factor of v1, and a mild picture from every kind of referrer (under a
    version that sends them all home, since v1 only does for Centre 15)."""
    everything = case(
        age=10,
        purpose=Purpose.SCREENING,
        vitals={"respiratory_rate": 30, "spo2": 85, "systolic_bp": 80, "temperature_c": 39.5},
        severity_signs=list(SeveritySign),
        risk_factors=list(RiskFactor),
        symptomatic=False,
        consultation_needed=False,
        fatigue_bedridden=True,
        pregnancy_trimester=3,
        health_professional=True,
    )
    home_for_all = load_protocol(
        _set(v1_document(), "home_follow_up.mild_from_referrers", [k.value for k in ReferrerKind])
    )
    outcomes = [
        run(everything),
        run(case(age=80, vitals={"temperature_c": 35.0})),  # risk.age, minor.hypothermia
        run(case(age=90, measured={})),  # hold
        run(case(purpose=Purpose.SCREENING)),
        run(case(symptomatic=False)),
        run(case(age=4)),
        run(case(consultation_needed=False)),
        run(case()),  # orient
        *(run(case(referrer=kind), home_for_all) for kind in ReferrerKind),
    ]
    return {r.code for outcome in outcomes for r in outcome.reasons}


def test_every_code_the_rules_emit_has_a_french_message_in_the_protocol() -> None:
    emitted = _every_code_emitted()
    # Every sign, factor and referrer, so that no family is only half covered.
    assert {f"severity.sign.{s.value}" for s in SeveritySign} <= emitted
    assert {f"risk.factor.{f.value}" for f in RiskFactor} <= emitted
    assert {f"home.mild_{k.value}" for k in ReferrerKind} <= emitted
    keys = {message_key(code) for code in emitted}
    # Each code has its template, and no template is left that no code uses.
    assert keys == set(V1.messages.reasons) == set(get_args(MessageKey))


def test_the_messages_are_the_protocols_french_filled_in() -> None:
    outcome = run(case(age=90, measured={}))
    assert codes(outcome) == ["hold.no_vitals", "risk.age"]
    assert outcome.reasons[0].message == (
        "Personne à risque de forme grave sans aucune de ces mesures : SpO2, fréquence "
        "respiratoire, pression artérielle systolique ; un médecin régulateur décide."
    )
    assert outcome.reasons[1].message == "Âge 90 ans, 70 ans ou plus : à risque de forme grave."
    mild = run(case(referrer=ReferrerKind.CENTRE_15))
    assert mild.reasons[0].code == "home.mild_centre_15"
    assert "adressé par le Centre 15 : suivi à domicile" in mild.reasons[0].message
    oriented = run(case(pregnancy_trimester=1))
    assert oriented.reasons[0].message == (
        "Orientation vers un centre de consultation, priorité dès que possible : à voir sous 6 h."
    )
    signs = run(case(severity_signs=["confusion"], risk_factors=["immunodeficiency"]))
    assert [r.message for r in signs.reasons[1:]] == [
        "Signe de gravité : confusion, somnolence ou altération de la conscience.",
        "À risque de forme grave : immunodépression.",
    ]


def test_a_new_version_rewords_the_reasons_codes_unchanged() -> None:
    document = _set(v1_document(), "messages.reasons.orient", "Au centre ({priority}, {hours} h).")
    v2 = load_protocol(document | {"version": "2"})
    before, after = run(case()), run(case(), v2)
    assert codes(after) == codes(before) == ["orient"]
    assert after.reasons[0].message == "Au centre (ordinaire, 24 h)."


def test_a_document_without_messages_gets_version_1s_wording() -> None:
    # A version stored before the wording was data must still load (see protocol.py).
    older = _set(v1_document(), "messages", _DELETE) | {"version": "0"}
    protocol = load_protocol(older)
    assert protocol.messages == V1.messages
    assert run(case(), protocol).reasons[0].message.startswith("Orientation vers un centre")


# --- inputs the engine refuses ---------------------------------------------------------


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(case(), V1, NOW.replace(tzinfo=None))


def test_a_negative_age_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        case(age=-1)


# --- a regulator's decision under the protocol --------------------------------------------

HELD = case(age=75, measured={})  # at risk, no vitals: v1 holds it


@pytest.mark.parametrize(
    ("c", "decision", "priority", "expected_priority", "hours"),
    [
        pytest.param(HELD, Decision.ORIENT, None, Priority.ASAP, 6,
                     id="orient-held-at-risk-gets-the-raised-priority"),
        pytest.param(case(), Decision.ORIENT, None, Priority.ROUTINE, 24,
                     id="orient-baseline-gets-the-default-priority"),
        pytest.param(case(), Decision.ORIENT, Priority.ASAP, Priority.ASAP, 6,
                     id="orient-with-the-regulators-priority"),
        pytest.param(HELD, Decision.ORIENT, Priority.ROUTINE, Priority.ROUTINE, 24,
                     id="orient-at-risk-made-routine-by-the-regulator"),
        pytest.param(case(), Decision.ORIENT, Priority.URGENT, Priority.URGENT, 6,
                     id="urgent-not-in-v1-gets-the-next-more-urgent-deadline"),
        pytest.param(case(), Decision.ESCALATE, None, Priority.STAT, 0,
                     id="escalate-is-stat-now"),
        pytest.param(HELD, Decision.HOME_FOLLOW_UP, None, None, None, id="home-follow-up"),
        pytest.param(case(), Decision.REFUSE, None, None, None, id="refuse"),
        pytest.param(case(), Decision.HOLD, None, None, None, id="hold-again"),
    ],
)  # fmt: skip
def test_a_regulators_decision_takes_the_rest_from_the_protocol(
    c: Case,
    decision: Decision,
    priority: Priority | None,
    expected_priority: Priority | None,
    hours: float | None,
) -> None:
    outcome = regulator_outcome(
        c, V1, decision=decision, priority=priority, regulator_id="DR-x", comment="", now=NOW
    )
    assert outcome.decision is decision
    assert outcome.priority is expected_priority
    assert outcome.deadline == (NOW + timedelta(hours=hours) if hours is not None else None)
    assert outcome.protocol_version == "1"
    assert outcome.test_eligible is run(c).test_eligible


def test_a_regulators_decision_is_recorded_with_the_protocols_view() -> None:
    outcome = regulator_outcome(
        HELD,
        V1,
        decision=Decision.ORIENT,
        priority=None,
        regulator_id="DR-x",
        comment=" SpO2 96 % by phone ",
        now=NOW,
    )
    assert codes(outcome) == ["regulator.orient", "protocol.hold", "risk.age"]
    assert outcome.reasons[0].message == (
        "Décidé par le médecin régulateur DR-x : orienter vers un centre, priorité dès que "
        "possible (sous 6 h). SpO2 96 % by phone"
    )
    assert "un médecin régulateur décide" in outcome.reasons[1].message
    assert outcome.test_eligible is True


def test_the_regulators_decision_follows_the_protocol_version() -> None:
    document = v1_document()
    document["version"] = "2"
    document["priorities"]["raised"]["deadline_hours"] = 4
    v2 = load_protocol(document)
    outcome = regulator_outcome(
        HELD, v2, decision=Decision.ORIENT, priority=None, regulator_id="DR-x", comment="",
        now=NOW,
    )  # fmt: skip
    assert (outcome.protocol_version, outcome.deadline) == ("2", NOW + timedelta(hours=4))


@pytest.mark.parametrize(
    ("decision", "priority", "regulator", "words"),
    [
        pytest.param(Decision.REFUSE, Priority.ASAP, "DR-x", "qu'à une orientation", id="refuse+p"),
        pytest.param(Decision.ESCALATE, Priority.STAT, "DR-x", "qu'à une orientation", id="esc+p"),
        pytest.param(Decision.ORIENT, Priority.STAT, "DR-x", "adresser au SAMU", id="orient-stat"),
        pytest.param(Decision.ORIENT, None, " ", "vide", id="blank-regulator"),
        pytest.param(Decision.ORIENT, None, "x" * 65, "dépasse 64", id="long-regulator"),
    ],
)
def test_a_decision_that_cannot_stand_is_refused(
    decision: Decision, priority: Priority | None, regulator: str, words: str
) -> None:
    with pytest.raises(InvalidOverride, match=words):
        regulator_outcome(
            case(), V1, decision=decision, priority=priority, regulator_id=regulator,
            comment="", now=NOW,
        )  # fmt: skip


def test_the_orientation_rule_is_the_one_decide_uses() -> None:
    for c in (case(), HELD, case(pregnancy_trimester=1), case(vitals={"temperature_c": 39.5})):
        rule = orientation_rule(c, V1)
        oriented = regulator_outcome(
            c, V1, decision=Decision.ORIENT, priority=None, regulator_id="DR-x", comment="",
            now=NOW,
        )  # fmt: skip
        assert oriented.priority is rule.priority
        automatic = run(c)
        if automatic.decision is Decision.ORIENT:
            assert automatic.priority is rule.priority


# --- a decision Centre 15 attached to its referral (issue 36) --------------------------


def attached(c: Case, decision: Decision, priority: Priority | None = None) -> Outcome:
    return attached_outcome(
        c,
        V1,
        decision=decision,
        priority=priority,
        regulator_id="Dr Sophie Bernard",
        comment="Hub Santé, dossier x",
        now=NOW,
    )


def test_centre_15s_orientation_stands_where_the_protocol_sends_home() -> None:
    mild = case(age=32, referrer=ReferrerKind.CENTRE_15, measured={})
    assert run(mild).decision is Decision.HOME_FOLLOW_UP  # what the protocol alone says
    outcome = attached(mild, Decision.ORIENT, Priority.URGENT)
    assert outcome.decision is Decision.ORIENT and outcome.priority is Priority.URGENT
    assert outcome.deadline is not None
    assert codes(outcome)[:2] == ["regulator.orient", "protocol.home_follow_up"]
    assert "Dr Sophie Bernard" in outcome.reasons[0].message


def test_a_severity_sign_the_case_carries_escalates_the_regulators_orientation() -> None:
    severe = case(age=32, referrer=ReferrerKind.CENTRE_15, severity_signs=[SeveritySign.DYSPNOEA])
    outcome = attached(severe, Decision.ORIENT, Priority.URGENT)
    assert outcome.decision is Decision.ESCALATE
    assert outcome.priority is V1.priorities.escalate.priority
    assert codes(outcome)[:3] == [
        "regulator.overruled_by_severity",
        "escalate",
        "severity.sign.dyspnoea",
    ]
    assert "Dr Sophie Bernard a décidé : orienter vers un centre" in outcome.reasons[0].message
    # The escalation's own reason names the sign, as the protocol words it.
    assert V1.severity.signs[SeveritySign.DYSPNOEA] in outcome.reasons[1].message


def test_an_attached_decision_that_cannot_stand_is_held_not_guessed() -> None:
    # P0 (stat) for an orientation: the escalation's priority, refused as an override.
    outcome = attached(case(age=32), Decision.ORIENT, Priority.STAT)
    assert outcome.decision is Decision.HOLD and outcome.priority is None
    assert codes(outcome)[0] == "regulator.invalid"
    assert "Dr Sophie Bernard" in outcome.reasons[0].message
