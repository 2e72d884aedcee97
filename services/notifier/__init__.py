"""The notifier service: tells each centre of its patients, each referrer of its
referral's outcome, each patient of the appointment, Centre 15 of escalations
(README.md).

What the CLI uses of it: its purge (``aiguillage purge``), its part of a
patient's data (``aiguillage privacy``)."""

from services.notifier.handlers.privacy import patient_part
from services.notifier.handlers.retention import purge_steps

__all__ = ["patient_part", "purge_steps"]
