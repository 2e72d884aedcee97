"""Intake: takes referrals in, keeps identity, passes a pseudonymous referral on.

What the CLI uses of it (``aiguillage referrer``): the operator's registry of referrers,
read and written in intake's database; ``aiguillage purge``: ``purge_steps``."""

from services.intake.domain.referrers import Registration
from services.intake.handlers.retention import purge_steps
from services.intake.store.registry import every_registration
from services.intake.store.registry import register as register_referrer
from services.intake.store.registry import remove as remove_referrer

__all__ = [
    "Registration",
    "every_registration",
    "purge_steps",
    "register_referrer",
    "remove_referrer",
]
