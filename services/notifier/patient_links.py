"""The patient's link the notifier puts in each appointment notice.

Signed here, where the notice is written, with ``AIGUILLAGE_PATIENT_LINK_KEY``; valid
until the appointment's end (shared/patient_link.py). A moved appointment gets a new
notice with a new link; the old one stops working with the old appointment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.patient_link import issue_link, link_url
from shared.settings import Settings


def patient_link_for(settings: Settings) -> Callable[[str, str, datetime], str]:
    def link(appointment_id: str, referral_id: str, end: datetime) -> str:
        token = issue_link(settings.patient_link_key, appointment_id, referral_id, end)
        return link_url(settings.patient_link_base_url, token)

    return link
