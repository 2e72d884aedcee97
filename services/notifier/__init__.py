"""The notifier service: tells each centre of its patients, each referrer of its
referral's outcome, each patient of the appointment, Centre 15 of escalations
(README.md).

What the CLI uses of it: its purge (``aiguillage purge``), its part of a
patient's data (``aiguillage privacy``), the contacts' data keys (``aiguillage keys
--service notifier``: rotation, sealing)."""

from services.notifier.handlers.privacy import patient_part
from services.notifier.handlers.retention import purge_steps
from services.notifier.handlers.sealing import ContactVault
from services.notifier.handlers.sealing import reseal as seal_contacts
from services.notifier.handlers.sealing import rotate as rotate_contact_key
from services.notifier.store.keys import rows_by_key as contacts_by_key

__all__ = [
    "ContactVault",
    "contacts_by_key",
    "patient_part",
    "purge_steps",
    "rotate_contact_key",
    "seal_contacts",
]
