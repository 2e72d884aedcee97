"""The notifier's part of a patient's request of access (issue 34): the contact it
keeps, every notification sent about their referrals (to them, their referrer, the
centre), the centres' appointments; by pseudonym."""

from __future__ import annotations

from typing import Any

from services.notifier.store import privacy
from shared.db import Database, as_utc


def _time(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


async def patient_part(database: Database, patient_refs: list[str]) -> dict[str, Any]:
    async with database.transaction() as session:
        contacts = await privacy.contacts_of(session, patient_refs)
        booked = await privacy.appointments_of(session, patient_refs)
        ids = sorted({c.referral_id for c in contacts} | {a.referral_id for a in booked})
        sent = await privacy.notifications_on(session, ids)
    return {
        "contacts": [
            {
                "referral_id": c.referral_id,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "phone": c.phone,
                "email": c.email,
                "sms_consent": c.sms_consent,
            }
            for c in contacts
        ],
        "notifications": [
            {
                "referral_id": n.referral_id,
                "recipient_kind": n.recipient_kind,
                "channel": n.channel,
                "template": n.template,
                "subject": n.subject,
                "body": n.body,
                "status": n.status,
                "created_at": _time(n.created_at),
                "sent_at": _time(n.sent_at),
            }
            for n in sent
        ],
        "centre_appointments": [
            {
                "referral_id": a.referral_id,
                "centre_id": a.centre_id,
                "start": _time(a.start),
                "end": _time(a.end),
                "status": a.status,
            }
            for a in booked
        ],
    }
