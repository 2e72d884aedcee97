"""Centre 15's timeline of a referral (issue 30): regulation's trail in French, oldest
first, who decided, the protocol version, the raw record kept for « détails » only."""

from __future__ import annotations

import json

from aiguillage.console.timeline import timeline

TRAIL = {
    "referral_id": "r-1",
    "current_decision_id": "d-2",
    "decisions": [
        {
            "decision_id": "d-2",
            "decision": "orient",
            "priority": "urgent",
            "test_eligible": True,
            "reasons": [{"code": "regulator.orient", "message": "décision du régulateur"}],
            "protocol_version": "1",
            "decided_by": "r.le-gall@samu35.fr",
            "decided_at": "2026-12-07T10:05:00+00:00",
            "comment": "Vu au téléphone",
            "current": True,
        },
        {
            "decision_id": "d-1",
            "decision": "hold",
            "priority": None,
            "test_eligible": False,
            "reasons": [{"code": "hold.no_vitals", "message": "constantes manquantes"}],
            "protocol_version": "1",
            "decided_by": "protocol",
            "decided_at": "2026-12-07T10:00:00+00:00",
            "comment": "",
            "current": False,
        },
    ],
}


def test_the_trail_reads_in_french_oldest_first() -> None:
    held, decided = timeline(TRAIL)
    assert held.actor == "Le protocole (décision automatique)"
    assert held.decided == "Garder en attente d'un médecin régulateur"
    assert held.priority is None and held.reasons == ("constantes manquantes",)
    assert decided.actor == "Un médecin régulateur du Centre 15 (r.le-gall@samu35.fr)"
    assert decided.decided == "Orienter vers un centre"
    assert decided.priority == "priorité urgente (dans la journée)"
    assert decided.current and not held.current
    assert decided.comment == "Vu au téléphone" and decided.protocol_version == "1"
    # The record itself, whole, for the « détails » toggle.
    assert json.loads(decided.details) == TRAIL["decisions"][0]


def test_an_empty_trail_is_an_empty_timeline() -> None:
    assert timeline({"decisions": []}) == []
