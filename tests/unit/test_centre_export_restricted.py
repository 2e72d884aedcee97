"""A centre's day export leaves out the referrals whose patient restricted the
processing (issue 34): the notifier lists them to the centre (``restricted``), its page
shows them, its CSV does not."""

from __future__ import annotations

from typing import Any

from aiguillage.console.centre import DAY_COLUMNS, _day_rows


def _appointment(referral: str, name: str, restricted: bool | None) -> dict[str, Any]:
    listed: dict[str, Any] = {
        "appointment_id": f"a-{referral}",
        "referral_id": referral,
        "patient_ref": f"p-{referral}",
        "patient_name": name,
        "start": "2020-03-30T07:00:00+00:00",
        "end": "2020-03-30T07:20:00+00:00",
        "box": 1,
        "priority": "routine",
        "status": "booked",
        "test_eligible": True,
        "referrer_kind": "gp",
    }
    if restricted is not None:  # a notifier of the release before says nothing
        listed["restricted"] = restricted
    return listed


def test_the_day_export_leaves_out_a_restricted_referral() -> None:
    context = {
        "appointments": [
            _appointment("r-1", "Éloïse Dupont", False),
            _appointment("r-2", "Zéphirine Limitée", True),
            _appointment("r-3", "Anatole Ancien", None),
        ]
    }
    rows = list(_day_rows(context))
    patient = DAY_COLUMNS.index("Patient")
    assert [row[patient] for row in rows] == ["Éloïse Dupont", "Anatole Ancien"]
    assert not any("Zéphirine" in str(cell) for row in rows for cell in row)
