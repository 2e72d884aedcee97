"""Intake's use cases, one module per concern: ``submissions`` (both doors' referrals),
``cancellations`` (a referral withdrawn, by its referrer, Centre 15 or the patient),
``updates`` (its patient corrected by its referrer),
``outcomes`` (what became of it downstream), and ``history`` (the status they record).
``IntakeHandlers`` is all of them, the object ``app.py``'s routes and the HTTP doors
call."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.handlers.cancellations import Cancellations, PatientCancellation, Withdrawal
from services.intake.handlers.history import replayed
from services.intake.handlers.outcomes import Outcomes
from services.intake.handlers.submissions import Outcome, Submissions, Verdict, by_referrer
from services.intake.handlers.updates import Updates

__all__ = [
    "IntakeHandlers",
    "Outcome",
    "PatientCancellation",
    "Verdict",
    "Withdrawal",
    "by_referrer",
    "replayed",
]


@dataclass
class IntakeHandlers(Submissions, Cancellations, Updates, Outcomes):
    """Every handler of intake's queues and doors (the settings, today's date and the
    spent quotas are the submissions')."""
