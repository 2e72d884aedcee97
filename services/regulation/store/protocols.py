"""The protocol versions regulation knows, and which one applies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.protocol import Protocol, load_protocol
from services.regulation.store.tables import protocol_activations, protocols
from shared.db import Database, as_utc
from shared.events import utcnow

# The statements every referral runs are built once, here, with their parameters bound
# per call: a message costs the execution, not the construction.
_ACTIVE_VERSION = (
    select(protocol_activations.c.version).order_by(protocol_activations.c.seq.desc()).limit(1)
)
_DOCUMENT = select(protocols.c.document).where(protocols.c.version == bindparam("version"))
_INSERT_PROTOCOL = insert(protocols)
_INSERT_ACTIVATION = insert(protocol_activations)
_ACTIVATIONS = select(func.count()).select_from(protocol_activations)
_HISTORY = (
    select(protocol_activations, protocols.c.document)
    .join(protocols, protocols.c.version == protocol_activations.c.version)
    .order_by(protocol_activations.c.seq)
)


class ProtocolConflict(ValueError):
    """A stored version published again with other content."""


class ProtocolBook:
    """The protocol versions regulation knows, and the one that applies now.

    The active version is read from the database in the caller's transaction, so
    replicas never disagree and a restart keeps it; only the parsed documents are kept
    in memory, by version, which is safe because a stored version never changes.
    """

    def __init__(self, fallback: Protocol) -> None:
        self.fallback = fallback
        self._parsed: dict[str, Protocol] = {fallback.version: fallback}

    async def active(self, session: AsyncSession) -> Protocol:
        version = await session.scalar(_ACTIVE_VERSION)
        if version is None:
            return self.fallback
        parsed = self._parsed.get(version)
        if parsed is None:
            document = await session.scalar(_DOCUMENT, {"version": version})
            if document is None:
                raise LookupError(f"protocol version {version} is active but not stored")
            parsed = self._parsed[version] = load_protocol(document)
        return parsed

    async def activate(
        self,
        session: AsyncSession,
        protocol: Protocol,
        *,
        source: str,
        event_id: str | None,
        now: datetime,
    ) -> bool:
        """Store ``protocol`` (once per version) and make it the one that applies.

        Publishing a stored version again activates it again (going back to it);
        with other content it raises ``ProtocolConflict``. False when it already applies.
        """
        document = protocol.model_dump(mode="json")
        stored = await session.scalar(_DOCUMENT, {"version": protocol.version})
        if stored is None:
            await session.execute(
                _INSERT_PROTOCOL,
                {"version": protocol.version, "document": document, "loaded_at": now},
            )
        elif load_protocol(stored) != protocol:
            raise ProtocolConflict(
                f"protocol version {protocol.version} is already stored with other content; "
                "a new document needs a new version"
            )
        current = await self.active(session)
        if current.version == protocol.version and stored is not None:
            return False
        await session.execute(
            _INSERT_ACTIVATION,
            {
                "version": protocol.version,
                "activated_at": now,
                "source": source,
                "event_id": event_id,
            },
        )
        self._parsed[protocol.version] = protocol
        return True

    async def ensure_default(self, database: Database) -> Protocol:
        """At start: the fallback (v1) stored and active if nothing is; the active one."""
        try:
            async with database.transaction() as session:
                count = await session.scalar(_ACTIVATIONS)
                if not count:
                    await self.activate(
                        session, self.fallback, source="regulation", event_id=None, now=utcnow()
                    )
        except IntegrityError:
            pass  # another replica stored it first, which is what was wanted
        async with database.transaction() as session:
            return await self.active(session)

    async def history(self, session: AsyncSession) -> list[dict[str, Any]]:
        rows = (await session.execute(_HISTORY)).all()
        return [
            {
                "version": r.version,
                "activated_at": as_utc(r.activated_at).isoformat(),
                "source": r.source,
                "event_id": r.event_id,
                "effective_from": r.document.get("effective_from"),
                "description": r.document.get("description"),
            }
            for r in rows
        ]
