"""A published protocol version becomes the one that applies."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from services.regulation.domain.protocol import load_protocol
from services.regulation.store.protocols import ProtocolBook, ProtocolConflict
from shared.consumer import Delivery, PermanentError
from shared.events import ProtocolPublished, utcnow

log = structlog.get_logger(__name__)


class ProtocolHandlers:
    """The ``decisions`` door's protocol.published."""

    book: ProtocolBook

    async def on_protocol_published(self, delivery: Delivery) -> None:
        # Parsed by its (type, version), as before the table of routes: a version the
        # catalogue lacks is dead-lettered as invalid at once, not retried.
        event = delivery.envelope.payload()
        if isinstance(event, ProtocolPublished):
            await self._activate(delivery, event)

    async def _activate(self, delivery: Delivery, event: ProtocolPublished) -> None:
        try:
            protocol = load_protocol(event.document)
        except ValidationError as exc:
            raise PermanentError("invalid_protocol", str(exc)) from exc
        if protocol.version != event.protocol_version:
            raise PermanentError(
                "protocol_version_mismatch",
                f"protocol_version {event.protocol_version!r} but the document is version "
                f"{protocol.version!r}",
            )
        try:
            activated = await self.book.activate(
                delivery.session,
                protocol,
                source=delivery.envelope.source,
                event_id=delivery.envelope.id,
                now=utcnow(),
            )
        except ProtocolConflict as exc:
            raise PermanentError("protocol_version_conflict", str(exc)) from exc
        log.info(
            "protocol version applies" if activated else "protocol version already applies",
            protocol_version=protocol.version,
        )
