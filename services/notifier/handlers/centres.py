"""Centres (the ``centres`` queue): named in messages, and each given its queue."""

from __future__ import annotations

from services.notifier.handlers.telling import Teller
from services.notifier.store import centres
from shared.consumer import Delivery
from shared.events import CentreActivated


class CentreHandlers(Teller):
    async def on_centre_activated(self, delivery: Delivery) -> None:
        centre = delivery.payload_as(CentreActivated)
        await centres.save_centre(
            delivery.session,
            centre.centre_id,
            name=centre.name,
            address=centre.address,
            commune_insee=centre.commune_insee,
        )
        if self.provision_centre is not None:
            await self.provision_centre(centre.centre_id)
