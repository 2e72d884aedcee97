"""Intake's part of a patient's request of access (issue 34, `aiguillage privacy
export`): their identity, their referrals and every status each went through, and who
read their identity. Found by NIR (its keyed hash) or by one referral; every referral
of the same pseudonym comes with it. The export is itself a read, written down.

``restrict``: the patient's restriction of processing (article 18), told to the
notifier by ``referral.restricted``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.handlers.identities import Vault
from services.intake.store import history, privacy, reads, referrals, restrictions
from shared.db import Database, as_utc
from shared.events import ReferralRestricted, utcnow
from shared.outbox import add_to_outbox

EXPORT_ROUTE = "aiguillage privacy export"
EXPORT_REASON = "demande d'accès du patient (RGPD, article 15)"


async def patient_record(
    database: Database,
    vault: Vault,
    *,
    nir: str | None = None,
    referral_id: str | None = None,
    reader: str = "operator",
) -> dict[str, Any] | None:
    """Everything intake holds on the patient; None when it knows no such patient."""
    async with database.transaction() as session:
        found = (
            await referrals.by_nir_hash(session, vault.nir_hash(nir))
            if nir is not None
            else [referral_id]
            if referral_id is not None
            else []
        )
        rows = [row for i in found if (row := await referrals.referral(session, i)) is not None]
        if not rows:
            return None
        patient_refs = sorted({row.patient_ref for row in rows})
        ids = await privacy.referrals_of_patients(session, patient_refs)
        out = [await _referral(session, vault, i) for i in ids]
        await reads.add(
            session,
            [
                {
                    "at": utcnow(),
                    "referral_id": entry["referral_id"],
                    "patient_ref": entry["patient_ref"],
                    "reader_role": "operator",
                    "reader": reader,
                    "account": None,
                    "route": EXPORT_ROUTE,
                    "page": None,
                    "reason": EXPORT_REASON,
                }
                for entry in out
            ],
        )
    return {"patient_refs": patient_refs, "referrals": out}


async def restrict(database: Database, referral_id: str, by: str) -> bool | None:
    """Restrict the referral's processing (GDPR article 18): recorded, and
    ``referral.restricted`` staged in the outbox for the notifier (intake's relay
    publishes it). None: no such referral; False: restricted already."""
    async with database.transaction() as session:
        row = await referrals.referral(session, referral_id)
        if row is None:
            return None
        now = utcnow()
        if not await restrictions.restrict(session, referral_id, now, by):
            return False
        await add_to_outbox(
            session,
            ReferralRestricted(
                referral_id=referral_id, patient_ref=row.patient_ref, restricted_at=now
            ),
            source="intake",
            correlation_id=referral_id,
        )
    return True


async def _referral(session: AsyncSession, vault: Vault, referral_id: str) -> dict[str, Any]:
    row = await referrals.referral(session, referral_id)
    assert row is not None
    restricted = await restrictions.restriction(session, referral_id)
    identity = await referrals.identity(session, referral_id)
    person = None if identity is None else asdict(await vault.person(session, identity))
    if person is not None:
        person["birth_date"] = person["birth_date"].isoformat()
    return {
        "referral_id": row.id,
        "patient_ref": row.patient_ref,
        "identity": person,  # None: purged past its retention
        "referrer": {"kind": row.referrer_kind, "id": row.referrer_id},
        "reference": row.reference,
        "commune_insee": row.commune_insee,
        "departement": row.departement,
        "status": row.status,
        "detail": row.detail,
        "received_at": as_utc(row.received_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
        "restricted_at": None
        if restricted is None
        else as_utc(restricted.restricted_at).isoformat(),
        "history": [
            {"status": h.status, "detail": h.detail, "at": as_utc(h.at).isoformat()}
            for h in await history.history_by_time(session, referral_id)
        ],
        "accesses": [
            {
                "at": as_utc(r.at).isoformat(),
                "reader_role": r.reader_role,
                "reader": r.reader,
                "account": r.account,
                "route": r.route,
                "page": r.page,
                "reason": r.reason,
            }
            for r in await reads.newest(session, referral_id=referral_id)
        ],
    }
