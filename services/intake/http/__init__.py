"""Intake's HTTP doors: referrals submitted and read, Centre 15's escalations
(``referrals``), a referrer's own list (``own_referrals``), its withdrawals
(``withdrawal``), the FHIR R4 door (``fhir``), and the patient's cancellation by
their link (``patient``). ``install`` puts them on an app, with what they need in its
state (``door``)."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.handlers import IntakeHandlers
from services.intake.http import fhir, own_referrals, patient, reads, referrals, withdrawal
from services.intake.http.door import Door
from shared.auth import authenticator
from shared.db import Database
from shared.outbox import OutboxRelay
from shared.settings import ServiceName, Settings
from shared.territory import Territories


def install(
    app: FastAPI,
    handlers: IntakeHandlers,
    database: Database,
    relay: OutboxRelay,
    settings: Settings,
) -> None:
    """Intake's routes on ``app``, each reading the door from ``app.state.intake``."""
    app.state.intake = Door(
        handlers=handlers,
        database=database,
        relay=relay,
        territories=Territories.of(settings),
        link_key=settings.patient_link_key,
        authenticate=authenticator(settings, ServiceName.INTAKE),
    )
    app.include_router(referrals.router)
    # Issue 17: a referrer's own list, and the patient's cancellation by their link.
    app.include_router(own_referrals.router)
    app.include_router(patient.router)
    # Issue 27: a referrer withdraws its own referral, with a reason from the list.
    app.include_router(withdrawal.router)
    # Issue 36: the same referrals as FHIR R4 resources, for referrers' software.
    app.include_router(fhir.router)
    # Issue 34: who read which patient's identity, for the data-protection officer.
    app.include_router(reads.router)
    referrals.document_referral_schema(app)
