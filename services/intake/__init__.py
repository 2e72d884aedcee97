"""Intake: takes referrals in, keeps identity, passes a pseudonymous referral on.

What the CLI uses of it (``aiguillage referrer``): the operator's registry of referrers,
read and written in intake's database; ``aiguillage purge``: ``purge_steps``;
``aiguillage privacy``: ``patient_record``, ``restrict_referral``;
``aiguillage keys``: the identity's data keys (rotation, sealing)."""

from services.intake.domain.referrers import Registration
from services.intake.handlers.identities import Vault
from services.intake.handlers.identities import reseal as seal_identities
from services.intake.handlers.identities import rotate as rotate_identity_key
from services.intake.handlers.privacy import patient_record
from services.intake.handlers.privacy import restrict as restrict_referral
from services.intake.handlers.retention import purge_steps
from services.intake.store.keys import rows_by_key as identities_by_key
from services.intake.store.registry import every_registration
from services.intake.store.registry import register as register_referrer
from services.intake.store.registry import remove as remove_referrer

__all__ = [
    "Registration",
    "Vault",
    "every_registration",
    "identities_by_key",
    "patient_record",
    "purge_steps",
    "register_referrer",
    "remove_referrer",
    "restrict_referral",
    "rotate_identity_key",
    "seal_identities",
]
