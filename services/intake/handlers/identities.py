"""The patient's identity sealed at rest, and unsealed for those who may read it
(issue 34). Every identity field is sealed under the current data key
(``shared.sealing``), bound to its row and field; the NIR is looked up by its keyed
hash. ``rotate`` re-seals every row under a new data key, online, in batches.

The data keys are unwrapped once per process (by the KEK of ``key_provider``) and kept
in memory; the database holds them wrapped only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow, keys
from services.intake.store.tables import SEALED_FIELDS
from shared import sealing
from shared.db import Database
from shared.events import utcnow
from shared.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Person:
    """A patient's identity, in clear: in memory only, never logged."""

    first_name: str
    last_name: str
    birth_date: date
    sex: str
    nir: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None

    def field_values(self) -> dict[str, str | None]:
        values = {name: getattr(self, name) for name in SEALED_FIELDS}
        values["birth_date"] = self.birth_date.isoformat()
        return values


def _context(referral_id: str, name: str) -> str:
    return f"identities|{referral_id}|{name}"


@dataclass
class Vault:
    provider: sealing.KeyProvider
    lookup: bytes
    _keys: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> Vault:
        return cls(sealing.key_provider(settings), sealing.lookup_key(settings))

    def nir_hash(self, nir: str) -> str:
        return sealing.lookup_hash(self.lookup, "nir", "".join(nir.split()).upper())

    def keyed(self, purpose: str, value: str) -> str:
        return sealing.lookup_hash(self.lookup, purpose, value)

    async def data_key(self, session: AsyncSession, key_id: str) -> bytes:
        found = self._keys.get(key_id)
        if found is None:
            row = await keys.key(session, key_id)
            if row is None:
                raise sealing.SealBroken(f"no data key {key_id}")
            found = self.provider.unwrap(row.wrapped, key_id)
            self._keys[key_id] = found
        return found

    async def new_key(self, session: AsyncSession) -> str:
        """A fresh data key, stored wrapped; not yet the one that seals."""
        key_id, raw = sealing.new_key_id(), sealing.new_data_key()
        wrapped = self.provider.wrap(raw, key_id)
        await keys.add_key(session, key_id, wrapped, self.provider.kek_id, utcnow())
        self._keys[key_id] = raw
        return key_id

    async def sealing_key(self, session: AsyncSession) -> str:
        """The current data key's id, its row held for the transaction (a rotation
        waits); the first one made when there is none."""
        for _ in range(3):
            current = await keys.current(session)
            if current is not None:
                return current
            # None: the first sealing ever, or (PostgreSQL) a rotation switched the key
            # while this statement waited; a new statement sees the new key.
            if not await keys.every_key(session):
                await keys.make_first(session, await self.new_key(session))
        raise sealing.SealBroken("no current data key")

    async def sealed(
        self, session: AsyncSession, referral_id: str, person: Person
    ) -> dict[str, Any]:
        """The columns of ``person`` sealed under the current key (``sealed_*``,
        ``key_id``, ``nir_hash``)."""
        key_id = await self.sealing_key(session)
        return await self.sealed_under(session, key_id, referral_id, person)

    async def sealed_under(
        self, session: AsyncSession, key_id: str, referral_id: str, person: Person
    ) -> dict[str, Any]:
        data_key = await self.data_key(session, key_id)
        values: dict[str, Any] = {
            f"sealed_{name}": None
            if value is None
            else sealing.seal(data_key, key_id, value, _context(referral_id, name))
            for name, value in person.field_values().items()
        }
        values["key_id"] = key_id
        values["nir_hash"] = None if person.nir is None else self.nir_hash(person.nir)
        return values

    async def field(self, session: AsyncSession, row: AnyRow, name: str) -> str | None:
        """One field of an identity row, unsealed (the plain column of a row written
        before sealing, until ``keys seal`` has sealed it)."""
        sealed = getattr(row, f"sealed_{name}")
        if row.key_id is None or sealed is None:
            plain = getattr(row, name)
            return plain.isoformat() if isinstance(plain, date) else plain
        data_key = await self.data_key(session, sealing.key_of(sealed))
        return sealing.unseal(data_key, sealed, _context(row.referral_id, name))

    async def person(self, session: AsyncSession, row: AnyRow) -> Person:
        """The identity row (every column of ``identities``), unsealed."""
        values = {name: await self.field(session, row, name) for name in SEALED_FIELDS}
        born = values.pop("birth_date")
        assert born is not None and values["first_name"] is not None
        return Person(
            first_name=str(values.pop("first_name")),
            last_name=str(values.pop("last_name")),
            birth_date=date.fromisoformat(born),
            sex=row.sex,
            **values,
        )


async def reseal(database: Database, vault: Vault, *, batch: int = 200) -> int:
    """Seal every identity under the current data key, ``batch`` rows a transaction:
    the rows written before sealing, and those under an older key (a rotation).
    Resumable (a row done is under the current key, and skipped), and never in the
    pipeline's way (a row another transaction holds is skipped, and taken next pass).
    Returns how many rows it sealed."""
    async with database.transaction() as session:
        key_id = await vault.sealing_key(session)
    done = 0
    while True:
        found, after = 0, ""
        while True:
            async with database.transaction() as session:
                rows = await keys.stale(session, key_id, after, batch)
                for row in rows:
                    person = await vault.person(session, row)
                    values = await vault.sealed_under(session, key_id, row.referral_id, person)
                    await keys.reseal(session, row.referral_id, values)
            found += len(rows)
            if len(rows) < batch:
                break
            after = rows[-1].referral_id
        done += found
        async with database.transaction() as session:
            left = sum(n for k, n in (await keys.rows_by_key(session)).items() if k != key_id)
        if not left:
            log.info("identities sealed", rows=done, key_id=key_id)
            return done
        await asyncio.sleep(0.05 if found else 0.5)  # a row held by the pipeline


async def rotate(database: Database, vault: Vault, *, batch: int = 200) -> tuple[str, int]:
    """A new data key seals from now on; every row is re-sealed under it. Returns the
    key's id and how many rows were re-sealed."""
    async with database.transaction() as session:
        key_id = await vault.new_key(session)
        if await keys.current(session) is None:
            await keys.make_first(session, key_id)
        else:
            await keys.switch(session, key_id)
    log.info("identity data key rotated", key_id=key_id)
    return key_id, await reseal(database, vault, batch=batch)
