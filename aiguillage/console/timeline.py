"""A referral's decisions as Centre 15 reads them (issue 30): a timeline, oldest first,
each entry its time, who decided (the protocol, i.e. the service, or a regulator of
Centre 15), what was decided in French, the protocol version, and the raw record kept
for a "détails" toggle only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.labels import DECIDERS, DECISIONS, PRIORITIES, PRIORITY_MEANINGS, by_code, capitalised

_DECISIONS = by_code(DECISIONS, capital=True)
_PRIORITIES = by_code(PRIORITIES)
_MEANINGS = by_code(PRIORITY_MEANINGS)


@dataclass(frozen=True)
class Entry:
    at: str  # ISO time, shown in Paris time by the template
    actor: str
    decided: str
    priority: str | None
    test_eligible: bool
    reasons: tuple[str, ...]
    comment: str
    protocol_version: str
    current: bool
    details: str  # the record as the service gave it, for "détails"


def actor(decided_by: str) -> str:
    """Who decided, in words: the protocol (the service) or a named regulator."""
    if decided_by == "protocol":
        return capitalised(DECIDERS["protocol"])
    return f"{capitalised(DECIDERS['regulator'])} ({decided_by})"


def _priority(code: str | None) -> str | None:
    if not code:
        return None
    return f"priorité {_PRIORITIES.get(code, code)} ({_MEANINGS.get(code, '')})"


def entry(decision: Mapping[str, Any]) -> Entry:
    code = str(decision.get("decision", ""))
    return Entry(
        at=str(decision.get("decided_at", "")),
        actor=actor(str(decision.get("decided_by", ""))),
        decided=_DECISIONS.get(code, code),
        priority=_priority(decision.get("priority")),
        test_eligible=bool(decision.get("test_eligible")),
        reasons=tuple(str(r.get("message", "")) for r in decision.get("reasons") or ()),
        comment=str(decision.get("comment") or ""),
        protocol_version=str(decision.get("protocol_version", "")),
        current=bool(decision.get("current")),
        details=json.dumps(decision, ensure_ascii=False, indent=2, sort_keys=True),
    )


def timeline(trail: Mapping[str, Any]) -> list[Entry]:
    """The trail of regulation's GET /referrals/{id}/decisions, as entries, oldest first."""
    decisions = sorted(trail.get("decisions", []), key=lambda d: str(d.get("decided_at", "")))
    return [entry(d) for d in decisions]
