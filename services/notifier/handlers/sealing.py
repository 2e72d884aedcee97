"""The patients' contacts sealed at rest (issue 34), as intake seals the identities:
each of the names, phone and e-mail sealed with AES-256-GCM under the notifier's current
data key (``shared.sealing``), bound to its referral and field; ``rotate`` re-seals
every contact under a new data key, online, in batches.

The notifier's data keys are its own, in its own database (``contact_keys``), wrapped by
the KEK of this process's settings (``AIGUILLAGE_IDENTITY_KEK`` / ``_KEK_FILE``: the
same settings as intake's, each service given its own value in production). They are
unwrapped once per process and kept in memory; the database holds them wrapped only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow, keys
from services.notifier.store.tables import SEALED_FIELDS
from shared import sealing
from shared.db import Database
from shared.events import utcnow
from shared.settings import Settings

log = structlog.get_logger(__name__)


def _context(referral_id: str, name: str) -> str:
    return f"contacts|{referral_id}|{name}"


@dataclass
class ContactVault:
    provider: sealing.KeyProvider
    # The key of the keyed hashes that stand for an address (the daily quota's).
    lookup: bytes
    _keys: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> ContactVault:
        return cls(sealing.key_provider(settings), sealing.lookup_key(settings))

    def address_key(self, address: str) -> str:
        """A patient's address (``phone:+33…``, ``email:…``) as the quota counts it: a
        keyed hash, which no dictionary of phone numbers reverses."""
        return sealing.lookup_hash(self.lookup, "contact-address", address)

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
        await keys.add_key(
            session, key_id, self.provider.wrap(raw, key_id), self.provider.kek_id, utcnow()
        )
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
            if not await keys.any_key(session):
                await keys.make_first(session, await self.new_key(session))
        raise sealing.SealBroken("no current data key")

    async def sealed(
        self,
        session: AsyncSession,
        referral_id: str,
        values: dict[str, str | None],
        key_id: str | None = None,
    ) -> dict[str, Any]:
        """The ``sealed_<field>`` columns of ``values`` (by field) and ``key_id``, under
        ``key_id`` or else the current key."""
        key_id = key_id or await self.sealing_key(session)
        data_key = await self.data_key(session, key_id)
        columns: dict[str, Any] = {
            f"sealed_{name}": None
            if value is None
            else sealing.seal(data_key, key_id, value, _context(referral_id, name))
            for name, value in values.items()
        }
        columns["key_id"] = key_id
        return columns

    async def field(self, session: AsyncSession, row: AnyRow, name: str) -> str | None:
        """One field of a contact row, unsealed (the plain column of a row written
        before sealing, until ``keys seal`` has sealed it)."""
        sealed = getattr(row, f"sealed_{name}")
        if row.key_id is None or sealed is None:
            plain: str | None = getattr(row, name)
            return plain
        data_key = await self.data_key(session, sealing.key_of(sealed))
        return sealing.unseal(data_key, sealed, _context(row.referral_id, name))

    async def contact(self, session: AsyncSession, row: AnyRow) -> dict[str, str | None]:
        """The row's names, phone and e-mail, unsealed, by field."""
        return {name: await self.field(session, row, name) for name in SEALED_FIELDS}


async def reseal(database: Database, vault: ContactVault, *, batch: int = 200) -> int:
    """Seal every contact under the current data key, ``batch`` rows a transaction: the
    rows written in clear before sealing, and those under an older key (a rotation).
    Resumable (a row done is under the current key, and skipped), never in the
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
                    clear = await vault.contact(session, row)
                    values = await vault.sealed(session, row.referral_id, clear, key_id)
                    await keys.reseal(session, row.referral_id, values)
            found += len(rows)
            if len(rows) < batch:
                break
            after = rows[-1].referral_id
        done += found
        async with database.transaction() as session:
            left = sum(n for k, n in (await keys.rows_by_key(session)).items() if k != key_id)
        if not left:
            log.info("contacts sealed", rows=done, key_id=key_id)
            return done
        await asyncio.sleep(0.05 if found else 0.5)  # a row held by the pipeline


async def rotate(database: Database, vault: ContactVault, *, batch: int = 200) -> tuple[str, int]:
    """A new data key seals from now on; every contact is re-sealed under it. Returns
    the key's id and how many rows were re-sealed."""
    async with database.transaction() as session:
        key_id = await vault.new_key(session)
        if await keys.current(session) is None:
            await keys.make_first(session, key_id)
        else:
            await keys.switch(session, key_id)
    log.info("contact data key rotated", key_id=key_id)
    return key_id, await reseal(database, vault, batch=batch)
