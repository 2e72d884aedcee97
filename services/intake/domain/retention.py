"""What intake purges past its retention (issue 34), and what of a referral stays.

A referral's identity and its clinical details are due once the referral has been in a
final state (rejected, withdrawn, seen, no-show) for the retention the settings give;
what stays is the pseudonymous record: its state, its times, its centre and priority.
Pure: the clock is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from services.intake.domain.status import FINAL, State

# The states after which nothing follows (a centre's correction keeps it final).
FINAL_STATES: tuple[str, ...] = tuple(sorted(s.value for s in FINAL))
# What the referrals' table says of them: a withdrawal reads "cancelled", as an
# appointment's cancellation does (not final), so a "cancelled" referral's history
# tells which it is (``status.replay``).
CANDIDATE_STATUSES: tuple[str, ...] = tuple(sorted({s.status for s in FINAL}))

# What a status's detail keeps once its clinical details are purged: the record of
# what happened when and where, never a reason, a comment or a test.
KEPT_DETAIL = frozenset(
    {
        "decision",
        "priority",
        "deadline",
        "test_eligible",
        "protocol_version",
        "by",
        "appointment_id",
        "centre_id",
        "start",
        "end",
        "box",
        "previous_appointment_id",
        "previous_centre_id",
        "previous_start",
        "replaced_by",
        "reason_code",
        "outcome",
        "previous_outcome",
    }
)


def needs_history(status: str) -> bool:
    """Whether a referral's status alone does not say if it is final."""
    return status == State.CANCELLED.value


def is_due(state: State, final_since: datetime, now: datetime, keep: timedelta) -> bool:
    """Whether a referral in ``state`` since ``final_since`` is past ``keep`` at ``now``."""
    return state in FINAL and final_since <= now - keep


def pseudonymous_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A status's detail with its clinical details taken out."""
    return {key: value for key, value in detail.items() if key in KEPT_DETAIL}
