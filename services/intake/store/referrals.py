"""Intake's referrals: each with its current status, and the patient's identity (the
only copy outside the notifier's contacts). (Every status a referral went through is
``history``'s, the refused submissions ``rejections``', the registered referrers and
their quotas ``registry``'s.)

Each statement is built once, here, with its parameters bound per call
(``bindparam``): a message costs the execution, not the construction, and SQLAlchemy's
compiled cache keys on the one statement object. The same statements run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import identities, referrals

_BY_REFERENCE = select(
    referrals.c.id, referrals.c.fingerprint, referrals.c.status, referrals.c.detail
).where(
    referrals.c.referrer_kind == bindparam("referrer_kind"),
    referrals.c.referrer_id == bindparam("referrer_id"),
    referrals.c.reference == bindparam("reference"),
)
_OWNER = select(referrals.c.referrer_kind, referrals.c.referrer_id).where(
    referrals.c.id == bindparam("referral_id")
)
# The row's lock (FOR UPDATE on PostgreSQL; compiled to nothing on SQLite, which has
# one writer anyway) lines up the status events of one referral.
_LOCK = select(referrals.c.id).where(referrals.c.id == bindparam("referral_id")).with_for_update()
_REFERRAL = select(referrals).where(referrals.c.id == bindparam("referral_id"))
_RECEIVED_AT = select(referrals.c.received_at).where(referrals.c.id == bindparam("referral_id"))
_INSERT_REFERRAL = insert(referrals)
_INSERT_IDENTITY = insert(identities)
# The bound names differ from the columns': an UPDATE reserves the column names for SET.
_SET_STATUS = (
    update(referrals)
    .where(referrals.c.id == bindparam("referral_id"))
    .values(
        status=bindparam("new_status"),
        detail=bindparam("new_detail"),
        updated_at=bindparam("new_updated_at"),
    )
)
_IDENTITY = select(identities).where(identities.c.referral_id == bindparam("referral_id"))
_RELOCATE = (
    update(referrals)
    .where(referrals.c.id == bindparam("referral_id"))
    .values(commune_insee=bindparam("new_commune"), departement=bindparam("new_departement"))
)
_ESCALATED = (
    select(referrals, identities)
    .join(identities, identities.c.referral_id == referrals.c.id)
    .where(referrals.c.status == bindparam("status"))
    .order_by(referrals.c.updated_at.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def by_reference(
    session: AsyncSession, referrer_kind: str, referrer_id: str, reference: str
) -> AnyRow | None:
    """The referral this referrer sent under this reference (``id``, ``fingerprint``,
    ``status``, ``detail``), or None."""
    return (
        await session.execute(
            _BY_REFERENCE,
            {"referrer_kind": referrer_kind, "referrer_id": referrer_id, "reference": reference},
        )
    ).first()


async def owner(session: AsyncSession, referral_id: str) -> tuple[str, str] | None:
    """Who referred it (referrer kind, identifier), or None for an unknown referral."""
    row = (await session.execute(_OWNER, {"referral_id": referral_id})).first()
    return None if row is None else (row.referrer_kind, row.referrer_id)


async def lock(session: AsyncSession, referral_id: str) -> bool:
    """Hold the referral's row until the transaction ends; False when there is none."""
    return await session.scalar(_LOCK, {"referral_id": referral_id}) is not None


async def received_at(session: AsyncSession, referral_id: str) -> datetime | None:
    """When the referral was submitted (its row's ``received_at``), or None."""
    found: datetime | None = await session.scalar(_RECEIVED_AT, {"referral_id": referral_id})
    return found


async def referral(session: AsyncSession, referral_id: str) -> AnyRow | None:
    """The referral's row (every column of ``referrals``), or None."""
    return (await session.execute(_REFERRAL, {"referral_id": referral_id})).first()


async def add_referral(
    session: AsyncSession,
    *,
    referral_id: str,
    referrer_kind: str,
    referrer_id: str,
    reference: str,
    fingerprint: str,
    patient_ref: str,
    commune_insee: str,
    departement: str,
    source_message_id: str,
    received_at: datetime,
) -> None:
    """A referral just received: status ``received``, no detail yet."""
    await session.execute(
        _INSERT_REFERRAL,
        {
            "id": referral_id,
            "referrer_kind": referrer_kind,
            "referrer_id": referrer_id,
            "reference": reference,
            "fingerprint": fingerprint,
            "patient_ref": patient_ref,
            "commune_insee": commune_insee,
            "departement": departement,
            "status": "received",
            "detail": {},
            "source_message_id": source_message_id,
            "received_at": received_at,
            "updated_at": received_at,
        },
    )


async def add_identity(
    session: AsyncSession, *, referral_id: str, sex: str, sealed: dict[str, Any]
) -> None:
    """The patient's identity, sealed (``sealed``: the ``sealed_*`` columns, ``key_id``,
    ``nir_hash``; ``handlers.identities`` seals them): nothing in clear."""
    await session.execute(_INSERT_IDENTITY, {"referral_id": referral_id, "sex": sex, **sealed})


async def set_status(
    session: AsyncSession, referral_id: str, status: str, detail: dict[str, Any], at: datetime
) -> None:
    await session.execute(
        _SET_STATUS,
        {
            "referral_id": referral_id,
            "new_status": status,
            "new_detail": detail,
            "new_updated_at": at,
        },
    )


async def relocate(
    session: AsyncSession, referral_id: str, commune_insee: str, departement: str
) -> None:
    await session.execute(
        _RELOCATE,
        {"referral_id": referral_id, "new_commune": commune_insee, "new_departement": departement},
    )


async def identity(session: AsyncSession, referral_id: str) -> AnyRow | None:
    """The patient's identity (every column of ``identities``), or None."""
    return (await session.execute(_IDENTITY, {"referral_id": referral_id})).first()


async def with_status(
    session: AsyncSession, status: str, limit: int, departements: Iterable[str] | None = None
) -> Sequence[AnyRow]:
    """The referrals in this status with their identities, last updated first, at most
    ``limit``, of these ``departements`` only when given (a SAMU's); each row has the
    columns of ``referrals`` then of ``identities``."""
    query = _ESCALATED
    if departements is not None:
        query = query.where(referrals.c.departement.in_(sorted(departements)))
    return (await session.execute(query, {"status": status, "limit": limit})).all()


# The patient's door: the status and the appointment, the row locked until the
# cancellation is recorded.
_STATUS_LOCKED = (
    select(referrals.c.status, referrals.c.detail)
    .where(referrals.c.id == bindparam("referral_id"))
    .with_for_update()
)


async def status_locked(session: AsyncSession, referral_id: str) -> AnyRow | None:
    """The referral's ``status`` and ``detail``, its row held until the transaction
    ends; None for an unknown referral."""
    return (await session.execute(_STATUS_LOCKED, {"referral_id": referral_id})).first()


# A referrer's own referrals ("Mes demandes"), with the patient's names (sealed, or the
# plain columns of a row not sealed yet).
_OWN = (
    select(
        referrals.c.id,
        referrals.c.reference,
        referrals.c.patient_ref,
        referrals.c.status,
        referrals.c.detail,
        referrals.c.received_at,
        referrals.c.updated_at,
        identities.c.referral_id,
        identities.c.key_id,
        identities.c.sealed_first_name,
        identities.c.sealed_last_name,
        identities.c.first_name,
        identities.c.last_name,
    )
    .join(identities, identities.c.referral_id == referrals.c.id)
    .where(
        referrals.c.referrer_kind == bindparam("referrer_kind"),
        referrals.c.referrer_id == bindparam("referrer_id"),
    )
    .order_by(referrals.c.received_at.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def of_referrer(
    session: AsyncSession, referrer_kind: str, referrer_id: str, limit: int
) -> Sequence[AnyRow]:
    """The referrer's referrals, newest first, at most ``limit``, with the sealed names
    (a search by name is the caller's, once unsealed: the database holds no name to
    compare)."""
    parameters = {"referrer_kind": referrer_kind, "referrer_id": referrer_id, "limit": limit}
    return (await session.execute(_OWN, parameters)).all()


_BY_NIR = select(identities.c.referral_id).where(identities.c.nir_hash == bindparam("nir_hash"))


async def by_nir_hash(session: AsyncSession, nir_hash: str) -> list[str]:
    """The referrals of the patient whose NIR has this keyed hash (``handlers.identities``
    computes it): the lookup compares the hash, never the NIR."""
    return list((await session.scalars(_BY_NIR, {"nir_hash": nir_hash})).all())
