"""The scheduler's handlers: one class, ``SchedulerHandlers``, assembled from one
module per concern; ``app.py``'s ``ROUTES`` says which of its methods takes each event.

- ``centres``: the ARS's decisions about centres (activated, capacity changed,
  suspended, closed);
- ``referrals``: referrals regulated (booked, or waiting) and withdrawn;
- ``relocations``: a booked patient now elsewhere, moved nearer if it is worth it;
- ``consultations``: what centres report (outcomes and their corrections,
  escalations, requests for reinforcement);
- ``reinforcements``: the ARS's answers to the centres' requests for reinforcement,
  and the requests left unanswered raised again to it;
- ``patient_requests``: another slot a patient asks for by their link;
- ``booking``: the booking engine they all call (a batch's joint plan, the candidate
  search, the ranking, the booking itself), no consumer;
- ``waiting``: the waiting list and the ARS's alerts; ``messages``: the events staged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.scheduler.handlers.booking import (
    JOINT_BATCH,
    PLAN,
    Booked,
    Nearby,
    Patient,
    SchedulerConfig,
)
from services.scheduler.handlers.centres import CentreHandlers
from services.scheduler.handlers.consultations import ConsultationHandlers
from services.scheduler.handlers.forecasts import DueForecasts
from services.scheduler.handlers.patient_requests import Offer, PatientRequests
from services.scheduler.handlers.referrals import ReferralHandlers
from services.scheduler.handlers.reinforcements import ReinforcementHandlers
from services.scheduler.handlers.relocations import Relocations
from shared.events import utcnow

__all__ = [
    "JOINT_BATCH",
    "PLAN",
    "Booked",
    "Nearby",
    "Offer",
    "Patient",
    "SchedulerConfig",
    "SchedulerHandlers",
]


class SchedulerHandlers(
    CentreHandlers,
    ReferralHandlers,
    ConsultationHandlers,
    ReinforcementHandlers,
    PatientRequests,
    Relocations,
):
    def __init__(
        self,
        config: SchedulerConfig | None = None,
        provision_centre: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.provision_centre = provision_centre
        # What the centres' outcomes are judged by (handlers/consultations.py): this
        # service's own clock, never a time the message carries; tests set it.
        self.clock = clock
        # The départements a capacity change marked for a forecast (forecasts.py).
        self.forecasts_due = DueForecasts()
        self._checked = {}
