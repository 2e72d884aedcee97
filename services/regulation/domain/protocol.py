"""The regulation protocol as a validated document.

Thresholds, lists and deadlines change with the health authorities' guidance, so
they live in a versioned JSON document (``services/regulation/protocols/``), not in
code: a new version is loaded without a release, and every decision records the
version that made it. The models refuse unknown keys and inconsistent values at load
time, so that a mistyped document never reaches a patient's decision.

Each threshold's name carries its comparison (``_above`` is strict, ``_at_or_above``
is not) because the boundaries are clinical facts: 22 breaths a minute does not
escalate, 23 does.

The reasons' wording is data too (``messages``): French templates, one per reason
code (or family of codes), versioned with the thresholds they quote, so that a new
version rewords what Centre 15 and the referrers read without a release. The codes
stay the engine's: machines act on them, people read the messages.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from datetime import date
from functools import cache
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast, get_args

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


# The templates a protocol words its reasons with. A key is a reason code, or the
# family of codes the engine builds from the protocol's lists (``severity.sign.<sign>``,
# ``risk.factor.<factor>``, ``home.mild_<referrer>``), which share one template.
MessageKey = Literal[
    "escalate",
    "severity.respiratory_rate",
    "severity.spo2",
    "severity.systolic_bp",
    "severity.sign",
    "screening",
    "asymptomatic",
    "paediatric",
    "home.not_needed",
    "hold.no_vitals",
    "home.mild",
    "orient",
    "risk.age",
    "risk.factor",
    "risk.pregnancy",
    "pregnant",
    "minor.fever",
    "minor.hypothermia",
    "minor.fatigue",
    "health_professional",
]

# The named placeholders each template may use: what the engine fills in. Checked at
# load, so that a misspelt ``{valeur}`` is refused with the document rather than
# failing on a patient's decision.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "escalate": frozenset({"signs", "priority"}),
    "severity.respiratory_rate": frozenset({"value", "threshold"}),
    "severity.spo2": frozenset({"value", "threshold"}),
    "severity.systolic_bp": frozenset({"value", "threshold"}),
    "severity.sign": frozenset({"label"}),
    "screening": frozenset(),
    "asymptomatic": frozenset(),
    "paediatric": frozenset({"age", "threshold"}),
    "home.not_needed": frozenset(),
    "hold.no_vitals": frozenset({"vitals"}),
    "home.mild": frozenset({"referrer"}),
    "orient": frozenset({"priority", "hours"}),
    "risk.age": frozenset({"age", "threshold"}),
    "risk.factor": frozenset({"label"}),
    "risk.pregnancy": frozenset({"trimester"}),
    "pregnant": frozenset({"trimester"}),
    "minor.fever": frozenset({"value", "threshold"}),
    "minor.hypothermia": frozenset({"value", "threshold"}),
    "minor.fatigue": frozenset(),
    "health_professional": frozenset(),
}
assert set(PLACEHOLDERS) == set(get_args(MessageKey))

_FAMILIES = (("severity.sign.", "severity.sign"), ("risk.factor.", "risk.factor"))


def message_key(code: str) -> MessageKey:
    """The template a reason code is worded with: itself, or its family's."""
    for prefix, key in _FAMILIES:
        if code.startswith(prefix):
            return cast(MessageKey, key)
    return cast(MessageKey, "home.mild" if code.startswith("home.mild_") else code)


def _complete(labels: dict[_T, str], every: tuple[_T, ...], what: str) -> dict[_T, str]:
    # A label missing is a reason the engine could not word, found on a patient.
    missing = [str(getattr(item, "value", item)) for item in every if item not in labels]
    if missing:
        raise ValueError(f"no {what} for {missing}")
    return labels


def _placeholders(template: str) -> set[str]:
    names: set[str] = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        # Values arrive already written (numbers as a French reader writes them), so a
        # format spec or a conversion could only break the rendering.
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}}: use a plain named placeholder, such as {{value}}")
        names.add(name)
    return names


class Messages(_Document):
    """The French wording of the reasons, and the words they name things with."""

    reasons: dict[MessageKey, Label] = Field(
        description="One template per reason code or family, with named placeholders."
    )
    vitals: dict[VitalName, Label] = Field(description="How a reason names each vital.")
    referrers: dict[ReferrerKind, Label] = Field(description="How a reason names a referrer.")
    priorities: dict[Priority, Label] = Field(description="How a reason names a priority.")

    @model_validator(mode="after")
    def _every_reason_worded(self) -> Messages:
        _complete(dict(self.reasons), get_args(MessageKey), "reason message")
        _complete(dict(self.vitals), get_args(VitalName), "vital label")
        _complete(dict(self.referrers), tuple(ReferrerKind), "referrer label")
        _complete(dict(self.priorities), tuple(Priority), "priority label")
        for key, template in self.reasons.items():
            try:
                unknown = _placeholders(template) - PLACEHOLDERS[key]
            except ValueError as exc:  # str.format's own syntax errors ("{" alone) too
                raise ValueError(f"reasons.{key}: {exc}") from exc
            if unknown:
                allowed = ", ".join(f"{{{n}}}" for n in sorted(PLACEHOLDERS[key])) or "none"
                raise ValueError(
                    f"reasons.{key}: unknown placeholder(s) "
                    f"{', '.join(f'{{{n}}}' for n in sorted(unknown))} (allowed: {allowed})"
                )
        return self

    def reason(self, code: str, **values: str) -> str:
        """The message for ``code``, its template filled with ``values``."""
        return self.reasons[message_key(code)].format(**values)


@cache
def _v1_messages() -> dict[str, Any]:
    document = json.loads((files(PROTOCOLS_PACKAGE) / DEFAULT_DOCUMENT).read_bytes())
    messages: dict[str, Any] = document["messages"]
    return messages


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
    messages: Messages = Field(
        description="The reasons' French wording; a document without it gets version 1's."
    )

    @model_validator(mode="before")
    @classmethod
    def _v1_wording_when_none(cls, data: Any) -> Any:
        # Documents written before the wording was data (the v1 stored in an existing
        # database, a v2 loaded then) must still load, or regulation could not read the
        # version that applies: they get version 1's wording. A ``messages`` given but
        # incomplete is refused instead: its author meant to word every reason.
        if isinstance(data, dict) and "messages" not in data:
            return {**data, "messages": _v1_messages()}
        return data


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
