"""The notifier's part of a patient's request of access (issue 34): the contact it
keeps, every notification sent about their referrals (to them, their referrer, the
centre), the centres' appointments; by pseudonym."""

from __future__ import annotations

from typing import Any

from services.notifier.handlers.sealing import ContactVault
from services.notifier.store import privacy, reads
from shared.db import Database, as_utc
from shared.settings import Settings


def _time(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


async def patient_part(
    database: Database, patient_refs: list[str], vault: ContactVault | None = None
) -> dict[str, Any]:
    """``vault``: what unseals the contacts (the settings' KEK when not given)."""
    vault = vault or ContactVault.of(Settings())
    async with database.transaction() as session:
        contacts = await privacy.contacts_of(session, patient_refs)
        clear = [await vault.contact(session, c) for c in contacts]
        booked = await privacy.appointments_of(session, patient_refs)
        ids = sorted({c.referral_id for c in contacts} | {a.referral_id for a in booked})
        sent = await privacy.notifications_on(session, ids)
        accesses = await reads.newest(session, patient_refs=patient_refs, limit=5000)
    return {
        "contacts": [
            {"referral_id": c.referral_id, **opened, "sms_consent": c.sms_consent}
            for c, opened in zip(contacts, clear, strict=True)
        ],
        # Who read their name from the notifier (a centre's day list), when, from where.
        "identity_reads": [
            {
                "at": _time(e.at),
                "referral_id": e.referral_id,
                "reader_role": e.reader_role,
                "reader": e.reader,
                "account": e.account,
                "route": e.route,
                "page": e.page,
            }
            for e in accesses
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
