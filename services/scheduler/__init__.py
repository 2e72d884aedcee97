"""The scheduler service.

What the CLI uses of it: its purge (``aiguillage purge``)."""

from services.scheduler.handlers.retention import purge_steps

__all__ = ["purge_steps"]
