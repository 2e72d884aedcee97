"""The regulation protocol as a validated document.

Thresholds, lists and deadlines change with the health authorities' guidance, so
they live in a versioned JSON document (``services/regulation/protocols/``), not in
code: a new version is loaded without a release, and every decision records the
version that made it. The models refuse unknown keys and inconsistent values at load
time, so that a mistyped document never reaches a patient's decision.

Each threshold's name carries its comparison (``_above`` is strict, ``_at_or_above``
is not) because the boundaries are clinical facts: 22 breaths a minute does not
escalate, 23 does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.events import Priority, ReferrerKind, RiskFactor, SeveritySign

_T = TypeVar("_T")

DEFAULT_DOCUMENT = "v1.json"
PROTOCOLS_PACKAGE = "services.regulation.protocols"

# The criteria a protocol may combine; the engine computes each of them.
TestCriterion = Literal["at_risk", "pregnant", "health_professional"]
PriorityCriterion = Literal["at_risk", "pregnant", "minor_factor"]
VitalName = Literal["spo2", "respiratory_rate", "systolic_bp", "temperature_c"]


def _no_duplicates(items: tuple[_T, ...]) -> tuple[_T, ...]:
    # A duplicate is harmless to the engine but is almost always a typo for another entry.
    if len(set(items)) != len(items):
        raise ValueError(f"duplicate entries in {list(items)}")
    return items


Label = Annotated[str, Field(min_length=1)]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(_Document):
    """Any one of these sends the patient to SAMU / the emergency department."""

    respiratory_rate_above: int = Field(gt=0, description="Breaths per minute; strictly above.")
    spo2_below: float = Field(gt=0, le=100, description="SpO2 in ambient air, %; strictly below.")
    systolic_bp_below: int = Field(gt=0, description="mmHg; strictly below.")
    signs: dict[SeveritySign, Label] = Field(
        description="The signs that escalate, each with the words a reader sees."
    )


class MinorFactors(_Document):
    """Raise the priority; never escalate on their own."""

    fever_at_or_above: float = Field(description="°C, inclusive.")
    hypothermia_at_or_below: float = Field(description="°C, inclusive.")
    fatigue_bedridden: bool = Field(description="Whether bedridden fatigue is a minor factor.")

    @model_validator(mode="after")
    def _fever_above_hypothermia(self) -> MinorFactors:
        if self.hypothermia_at_or_below >= self.fever_at_or_above:
            raise ValueError(
                f"hypothermia_at_or_below ({self.hypothermia_at_or_below}) must be lower than "
                f"fever_at_or_above ({self.fever_at_or_above})"
            )
        return self


class Paediatric(_Document):
    age_below: int = Field(ge=0, le=130, description="Younger patients are outside adult centres.")


class AtRisk(_Document):
    """Persons at risk of a severe form."""

    age_at_or_above: int = Field(gt=0, le=130)
    risk_factors: dict[RiskFactor, Label]
    pregnancy_trimesters: Annotated[
        tuple[Annotated[int, Field(ge=1, le=3)], ...], AfterValidator(_no_duplicates)
    ] = Field(description="Trimesters in which a pregnancy puts the woman at risk.")


class Eligibility(_Document):
    """Who may be prescribed a diagnostic test.

    Being symptomatic is always required (centres do not screen); any one of these suffices.
    """

    any_of: Annotated[tuple[TestCriterion, ...], AfterValidator(_no_duplicates)]


class PriorityRule(_Document):
    priority: Priority
    deadline_hours: float = Field(ge=0, description="From the decision to the consultation.")


class RaisedPriorityRule(PriorityRule):
    when_any_of: Annotated[
        tuple[PriorityCriterion, ...], Field(min_length=1), AfterValidator(_no_duplicates)
    ]


class Priorities(_Document):
    escalate: PriorityRule
    raised: RaisedPriorityRule
    default: PriorityRule

    @model_validator(mode="after")
    def _milder_is_never_sooner(self) -> Priorities:
        ladder = [("escalate", self.escalate), ("raised", self.raised), ("default", self.default)]
        for (sooner_name, sooner), (later_name, later) in pairwise(ladder):
            if sooner.priority.rank > later.priority.rank:
                raise ValueError(
                    f"{later_name} priority {later.priority.value} is more urgent than "
                    f"{sooner_name} priority {sooner.priority.value}"
                )
            if sooner.deadline_hours > later.deadline_hours:
                raise ValueError(
                    f"{later_name} deadline ({later.deadline_hours} h) is sooner than "
                    f"{sooner_name} deadline ({sooner.deadline_hours} h)"
                )
        return self


class Hold(_Document):
    """Leave the decision to a regulator when a patient at risk has none of these vitals."""

    when_at_risk_and_none_of: Annotated[
        tuple[VitalName, ...], Field(min_length=1), AfterValidator(_no_duplicates)
    ]


class HomeFollowUp(_Document):
    """Referrers whose mild patients go back to the GP rather than to a centre."""

    mild_from_referrers: Annotated[tuple[ReferrerKind, ...], AfterValidator(_no_duplicates)]


class Protocol(_Document):
    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    effective_from: date
    description: str = Field(min_length=1)
    severity: Severity
    minor_factors: MinorFactors
    paediatric: Paediatric
    at_risk: AtRisk
    test_eligibility: Eligibility
    priorities: Priorities
    hold: Hold | None = Field(description="null: never hold, always decide.")
    home_follow_up: HomeFollowUp


def load_protocol(source: str | Path | Mapping[str, Any]) -> Protocol:
    """A protocol from a JSON file or an already parsed document (an event's payload).

    Raises ``pydantic.ValidationError`` naming every offending field; malformed JSON is
    reported the same way, so callers have a single error type to handle.
    """
    if isinstance(source, Mapping):
        return Protocol.model_validate(dict(source))
    return Protocol.model_validate_json(Path(source).read_bytes())


def default_protocol() -> Protocol:
    """Version 1, shipped inside the package so that it is there wherever the code is."""
    return Protocol.model_validate_json((files(PROTOCOLS_PACKAGE) / DEFAULT_DOCUMENT).read_bytes())
