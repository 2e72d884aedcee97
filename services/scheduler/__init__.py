"""The scheduler service.

What the CLI uses of it: its purge (``aiguillage purge``), its part of a
patient's data (``aiguillage privacy``)."""

from services.scheduler.handlers.privacy import patient_part
from services.scheduler.handlers.retention import purge_steps

__all__ = ["patient_part", "purge_steps"]
