"""The regulation protocol, validated at load time. A new version is a new document,
loaded without a release; every decision records the version that made it."""

from __future__ import annotations

import json
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Priority, RiskFactor, SeveritySign


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(_Strict):
    respiratory_rate_above: int = Field(gt=0)
    spo2_below: float = Field(gt=0, le=100)
    systolic_bp_below: int = Field(gt=0)
    signs: tuple[SeveritySign, ...]


class MinorFactors(_Strict):
    fever_at_or_above: float
    hypothermia_at_or_below: float
    fatigue_bedridden: bool


class AtRisk(_Strict):
    age_at_or_above: int = Field(gt=0)
    risk_factors: tuple[RiskFactor, ...]
    pregnancy_trimester_at_or_above: int = Field(ge=1, le=4)  # 4: pregnancy alone never


class TestEligibility(_Strict):
    at_risk: bool
    pregnant: bool
    health_professional: bool


class PriorityRule(_Strict):
    priority: Priority
    deadline_hours: float = Field(ge=0)


class Priorities(_Strict):
    escalate: PriorityRule
    raised: PriorityRule
    default: PriorityRule


class Protocol(_Strict):
    version: str = Field(min_length=1, max_length=32)
    effective_from: date
    description: str = ""
    severity: Severity
    minor_factors: MinorFactors
    paediatric_age_below: int = Field(ge=0)
    at_risk: AtRisk
    test_eligibility: TestEligibility
    priorities: Priorities
    hold_when_at_risk_without_vitals: bool
    home_follow_up_for_mild_centre_15: bool


def load_protocol(source: str | Path | dict[str, Any]) -> Protocol:
    if isinstance(source, dict):
        return Protocol.model_validate(source)
    return Protocol.model_validate(json.loads(Path(source).read_text(encoding="utf-8")))


def default_protocol() -> Protocol:
    text = (files("services.regulation.protocols") / "v1.json").read_text(encoding="utf-8")
    return Protocol.model_validate_json(text)
