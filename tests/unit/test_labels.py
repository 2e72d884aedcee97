"""The French words of every code a person reads, in one place (shared/labels.py): a
code without its label fails here, the protocol's own copy says the same words, and no
label is repeated in its own value (issue 27: "Signes de gravité : Signe de gravité …")."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from enum import StrEnum

import pytest

import shared.events
from services.intake.domain.status import State, message
from services.notifier.domain.templates import referrer_outcome
from services.regulation.domain.protocol import default_protocol
from services.regulation.domain.rules import Outcome
from shared import labels
from shared.events import CancelledBy, Priority, ReferrerKind, SeveritySign, WithdrawalReason
from tests.unit.test_regulation_rules import case, run


def _event_enums() -> list[type[StrEnum]]:
    """Every StrEnum of shared/events: the codes the events carry."""
    found: dict[str, type[StrEnum]] = {}
    for module in pkgutil.iter_modules(shared.events.__path__):
        loaded = importlib.import_module(f"shared.events.{module.name}")
        for _, kind in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(kind, StrEnum) and kind.__module__.startswith("shared.events."):
                found[kind.__qualname__] = kind
    return list(found.values())


def _labelled(code: StrEnum) -> bool:
    try:
        return bool(labels.label(code).strip())
    except KeyError:
        return False


def test_every_code_of_the_events_has_a_label() -> None:
    enums = _event_enums()
    assert {Priority, SeveritySign, CancelledBy, WithdrawalReason} <= set(enums)
    missing = [
        f"{kind.__name__}.{code.name}" for kind in enums for code in kind if not _labelled(code)
    ]
    assert missing == []


def test_every_referral_state_has_a_label() -> None:
    for state in State:
        assert state.value in labels.REFERRAL_STATES, state
        assert labels.referral_state(state.status) != state.status, state


def test_the_labels_and_their_forms() -> None:
    assert labels.label(Priority.ASAP) == "dès que possible"
    assert labels.meaning(Priority.ASAP) == "dans les heures"
    assert labels.label(WithdrawalReason.HOSPITALISED) == "le patient a été hospitalisé"
    assert labels.label(CancelledBy.REFERRER) == "le médecin adresseur"
    # A form's choice capitalised, its proper nouns kept: not str.capitalize.
    kinds = labels.by_code(labels.REFERRER_KINDS, capital=True)
    assert kinds["sos_medecins"] == "SOS Médecins" and kinds["gp"] == "Médecin traitant"
    assert labels.by_code(labels.PRIORITIES)["stat"] == "immédiate"


def test_the_protocol_shipped_says_the_same_words() -> None:
    # A protocol version may reword its reasons (its messages are data); the version
    # shipped says what the rest of the system says.
    v1 = default_protocol()
    assert dict(v1.severity.signs) == dict(labels.SEVERITY_SIGNS)
    assert dict(v1.at_risk.risk_factors) == dict(labels.RISK_FACTORS)
    assert dict(v1.messages.priorities) == dict(labels.PRIORITIES)


def _singular(text: str) -> str:
    return " ".join(word.removesuffix("s") for word in text.lower().split())


def repeats_its_label(text: str) -> bool:
    """The words before a " : " said again after it, singular or plural: "Signes de
    gravité : Signe de gravité : …"."""
    head, colon, rest = text.partition(" : ")
    return bool(colon) and _singular(head) in _singular(rest)


SEVERE = [
    *(case(severity_signs=[sign]) for sign in SeveritySign),
    case(vitals={"spo2": 88}),
    case(vitals={"respiratory_rate": 30}),
    case(vitals={"systolic_bp": 85}),
    case(severity_signs=list(SeveritySign), vitals={"spo2": 88, "systolic_bp": 85}),
]


def _what_the_referrer_reads(outcome: Outcome) -> list[str]:
    """The reasons (Centre 15's page, the console's referrer page lists them), the
    notifier's answer, intake's status message."""
    reasons = [{"code": r.code, "message": r.message} for r in outcome.reasons]
    return [
        *(r.message for r in outcome.reasons),
        referrer_outcome("escalated", {"reason_details": reasons}),
        message("escalated", {"decided_by": "protocol"}),
    ]


def test_no_label_is_repeated_in_its_own_value() -> None:
    assert repeats_its_label("Signes de gravité : Signe de gravité : confusion.")
    for severe in SEVERE:
        outcome = run(severe)
        for text in _what_the_referrer_reads(outcome):
            assert not repeats_its_label(text), text


def test_the_escalation_names_its_findings_tersely() -> None:
    outcome = run(case(severity_signs=["confusion"], vitals={"spo2": 88}))
    assert outcome.reasons[0].message == (
        "Signes de gravité : SpO2 à 88 % ; confusion, somnolence ou altération de la "
        "conscience. Orientation immédiate vers le SAMU / les urgences (priorité "
        "immédiate), jamais vers un centre de consultation."
    )


@pytest.mark.parametrize("kind", list(ReferrerKind))
def test_the_console_says_the_labels(kind: ReferrerKind) -> None:
    from aiguillage.console.common import REFERRER_LABELS
    from aiguillage.console.referral_form import KIND_LABELS

    assert REFERRER_LABELS[kind.value] == labels.label(kind)
    assert KIND_LABELS[kind.value] == labels.capitalised(labels.label(kind))


def test_every_action_the_console_audits_has_a_label() -> None:
    """The audit trail's actions (aiguillage/console: ``record`` and the centres'
    actions, the ARS's decisions by their event), each read in French on its page."""
    import re
    from pathlib import Path

    import aiguillage.console
    from shared.events import CentreActivated, CentreCapacityChanged, CentreClosed, CentreSuspended

    source = "\n".join(
        p.read_text(encoding="utf-8") for p in Path(aiguillage.console.__file__).parent.glob("*.py")
    )
    call = r'(?:record|centre_action)\(\s*request,\s*(?:\w+,\s*)?"([a-z_]+\.[a-z_]+)"'
    recorded = set(re.findall(call, source))
    assert {"referral.submitted", "referral.withdrawn", "consultation.outcome"} <= recorded
    recorded |= {
        c.event_type
        for c in (CentreActivated, CentreCapacityChanged, CentreSuspended, CentreClosed)
    }
    assert sorted(recorded - set(labels.AUDIT_ACTIONS)) == []
    assert labels.AUDIT_ACTIONS["referral.withdrawn"] == "retrait d'une demande"
