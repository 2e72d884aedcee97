"""Issue 28, tenancy: every actor sees and acts on its own territory only.

One table (``CASES``): a route (a service's HTTP route, a console page, the console's
live stream, a broker door), an actor, a referral of the actor's own territory or of
another's, and what the actor must get: a status, and a refusal's code or whether the
referral is listed. A SAMU (Centre 15) covers its départements (shared.territory):
SAMU 35 reads and decides on Rennes's patients, never on Paris's. Reading another
territory's referral is the 404 of a missing one; acting on it, 403 ``outside_territory``.

An ARS (``ars-53``, Bretagne) covers its region's départements (shared.regions), judged
on the centres as the scheduler stores them: Bretagne's ARS reads and decides on a
Rennes centre, never on a Paris one, whatever the route (the scheduler's API, the
console's pages and forms, the live stream, the broker door); reading another region's
département is a 404, acting on another region's centre 403 ``outside_territory``, and
activating a Paris centre's id again with a Breton commune 403
``centre_in_other_region`` (``test_a_paris_centre_cannot_be_taken_over_from_bretagne``:
the attack of issue 28, every way). Its answers to the centres' requests for
reinforcement (acknowledge, grant, decline; the console's form) are its region's
centres' only, each seen applied; a centre or a SAMU answers none. A centre's token
(``centre-rennes-ars``) reads its own decisions and requests only: another centre's,
403.

Another part of issue 28 adds its actors' rows (the centres) to ``CASES``
(``principal`` makes their tokens; a probe per route, ``@probe``, says what the actor
got); ``PENDING`` names the routes that have none of this part's actors yet, and
``test_every_route_is_in_the_table`` fails when a route of any service (or a Centre 15
or ARS page of the console) is in neither.

The stage: intake, regulation and the scheduler in the test's process on the real broker
(SQLite), the notifier's HTTP app (its routes refuse a SAMU before anything else), the
console in-process, calling the services' apps; referrals of Rennes (35) and Paris (75)
escalated and held by the protocol itself; centres of Bretagne and of Paris activated by
their own region's ARS, each with a reinforcement request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from aiguillage.console.app import create_app
from aiguillage.console.auth import Actor
from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from shared.auth import Role, issue_token
from shared.events import (
    CancelledBy,
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    Decision,
    Envelope,
    EventPayload,
    ReferralCancelled,
    ReferralUpdated,
    ReferrerKind,
    RegulationDecided,
    ReinforcementRequested,
    RiskFactor,
    Vitals,
    new_id,
)
from shared.events.referral import Referrer
from shared.messaging_tables import refusals
from shared.publisher import EventPublisher
from shared.regions import CENTRE_IN_OTHER_REGION
from shared.runtime import ServiceRuntime
from shared.settings import Environment, ServiceName, Settings
from shared.territory import OUTSIDE_TERRITORY
from shared.topology import declare_topology, delete_topology
from tests.console_session import csrf_of, log_in
from tests.helpers import Tap, centre, fresh_namespace, referral, running

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

OWN, OTHER, NONE = "own", "other", "-"
SAMU_35, SAMU_75 = "samu-35", "samu-75"
ARS_53 = "ars-53"  # Bretagne: 22, 29, 35, 56
ARS_11 = "ars-11"  # Île-de-France: Paris's
REGULATOR = "r.le-gall@samu35.fr"
PASSWORD = "correct-horse-battery"
# A patient of each territory: Rennes (35) for SAMU 35 and Bretagne, Paris (75).
INSEE = {OWN: "35238", OTHER: "75056"}
GP = "gp:10001234567"
# The console calls the services on these ports (its transport hands them to the apps).
PORTS = {ServiceName.INTAKE: 18001, ServiceName.REGULATION: 18002, ServiceName.SCHEDULER: 18003}
# A centre of each territory (OWN: Bretagne's, OTHER: Paris's), and the Breton centres
# that Bretagne's rows suspend and close; each activated by its own region's ARS.
CENTRES = {OWN: "rennes-ars", OTHER: "paris-ars"}
SUSPENDED, CLOSED = "brest-ars", "quimper-ars"
PLACES = {CENTRES[OWN]: "35238", CENTRES[OTHER]: "75056", SUSPENDED: "29019", CLOSED: "29232"}
# Where Bretagne's ARS would move Paris's centre: Brest.
BREST = "29019"
# Each region's ARS officer, with a console account.
ARS_PEOPLE = {ARS_53: "b.morvan@ars-bretagne.fr", ARS_11: "a.martin@ars-idf.fr"}


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What an actor got: a status (None on the broker), a refusal's code or the
    outcome's (``applied``), and whether the referral was listed (for lists, pages,
    the live stream; None where that does not apply)."""

    status: int | None
    code: str | None = None
    listed: bool | None = None


@dataclass(frozen=True)
class Case:
    route: str  # "<service> <METHOD> <path>", "console <METHOD> <path>", "broker <type>"
    actor: str  # samu-35, ars-53...
    territory: str  # OWN: a referral (or a centre) of the actor's territory; OTHER: not
    expected: Seen
    what: str = ""  # which event, where a route has several (the live stream)

    @property
    def id(self) -> str:
        return " | ".join(filter(None, (self.route, self.actor, self.territory, self.what)))


def _pair(route: str, actor: str, own: Seen, other: Seen, what: str = "") -> list[Case]:
    return [Case(route, actor, OWN, own, what), Case(route, actor, OTHER, other, what)]


LISTED, NOT_LISTED = Seen(200, listed=True), Seen(200, listed=False)
NOT_FOUND = Seen(404)
REFUSED = Seen(403, OUTSIDE_TERRITORY)
NOT_ITS_ROLE = Seen(403)
TOLD, NOT_TOLD = Seen(None, listed=True), Seen(None, listed=False)
# A centre's routes: its own only (shared.auth.forbid, no code).
NOT_THIS_CENTRE = Seen(403)
# Rennes's centre, as its own token names it (``principal``).
RENNES = f"centre-{CENTRES[OWN]}"
# The scheduler's answers to a request for reinforcement, and the state each leaves.
ANSWERS = {"acknowledge": "acknowledged", "grant": "granted", "decline": "declined"}

CASES: list[Case] = [
    # intake: Centre 15's reads of the patients to call back, with their identity.
    *_pair("intake GET /escalations", SAMU_35, LISTED, NOT_LISTED),
    *_pair("intake GET /referrals/{referral_id}", SAMU_35, Seen(200, listed=True), NOT_FOUND),
    # A SAMU refers any patient (where they live is no one's secret to it), in its name.
    *_pair("intake POST /referrals", SAMU_35, Seen(201), Seen(201)),
    # Its own referrals (OTHER: another SAMU's).
    *_pair("intake GET /referrals", SAMU_35, LISTED, NOT_LISTED),
    *_pair("intake POST /referrals/{referral_id}/withdraw", SAMU_35, Seen(200), NOT_FOUND),
    *_pair("intake DELETE /referrals/{referral_id}", SAMU_35, Seen(200), NOT_FOUND),
    # The FHIR door: the same rules as the JSON one (another's referral is none; a
    # search for it is empty, as FHIR answers a search); a SAMU refers any patient.
    Case("intake GET /fhir/metadata", SAMU_35, NONE, Seen(200)),
    *_pair("intake POST /fhir", SAMU_35, Seen(200), Seen(200)),
    *_pair("intake POST /fhir/ServiceRequest", SAMU_35, Seen(201), Seen(201)),
    *_pair("intake GET /fhir/ServiceRequest/{referral_id}", SAMU_35, Seen(200), NOT_FOUND),
    *_pair("intake GET /fhir/Appointment", SAMU_35, Seen(200), NOT_LISTED),
    *_pair("intake POST /fhir/ServiceRequest/{referral_id}/$cancel", SAMU_35, Seen(200), NOT_FOUND),
    # regulation: the held queue, the trail, the decision.
    *_pair("regulation GET /held", SAMU_35, LISTED, NOT_LISTED),
    *_pair("regulation GET /referrals/{referral_id}/decisions", SAMU_35, Seen(200), NOT_FOUND),
    *_pair("regulation POST /referrals/{referral_id}/decision", SAMU_35, Seen(201), REFUSED),
    # The protocol is the same for every territory.
    Case("regulation GET /protocols", SAMU_35, NONE, Seen(200)),
    # The ARS's and the centres' routes: not a SAMU's (their rows: their part).
    *_pair("scheduler GET /territory/{code}", SAMU_35, NOT_ITS_ROLE, NOT_ITS_ROLE),
    *_pair("scheduler GET /territory/{code}/forecast", SAMU_35, NOT_ITS_ROLE, NOT_ITS_ROLE),
    Case("scheduler GET /territory", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("scheduler GET /reinforcements", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("scheduler GET /territory/days/{day}", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("notifier GET /centres/{centre_id}/appointments", SAMU_35, NONE, NOT_ITS_ROLE),
    # The console's Centre 15 desk and the decision form.
    *_pair("console GET /centre-15", SAMU_35, LISTED, NOT_LISTED),
    *_pair("console GET /centre-15/fragment", SAMU_35, LISTED, NOT_LISTED),
    *_pair("console POST /centre-15/dossiers/{referral_id}/decision", SAMU_35, Seen(303), REFUSED),
    # A referral's timeline: OTHER, Paris's, is sent back to the desk as a missing one is.
    *_pair(
        "console GET /centre-15/dossiers/{referral_id}", SAMU_35, LISTED, Seen(303, listed=False)
    ),
    Case("console GET /centre-15/dossiers/{referral_id}", ARS_53, NONE, NOT_ITS_ROLE),
    # Issue 34: a file outside the queue, its identity once a reason is given; Paris's
    # is sent back to the desk as a missing one is, its identity never shown.
    *_pair(
        "console POST /centre-15/dossiers/{referral_id}/identite",
        SAMU_35,
        LISTED,
        Seen(303, listed=False),
    ),
    # The log of identity reads: the DPO's alone (no territory: every read).
    Case("intake GET /identity-reads", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("notifier GET /identity-reads", ARS_53, NONE, NOT_ITS_ROLE),
    # The live stream: escalations to the SAMU of the patient's département; alerts and
    # reinforcement requests to the ARS of the region.
    *_pair("console GET /evenements", SAMU_35, TOLD, NOT_TOLD, "escalation"),
    *_pair("console GET /evenements", ARS_53, TOLD, NOT_TOLD, "alert"),
    *_pair("console GET /evenements", ARS_53, TOLD, NOT_TOLD, "reinforcement"),
    *_pair("console GET /evenements", ARS_53, TOLD, NOT_TOLD, "raised_again"),
    # The broker door: a SAMU's decision (its own user, or the Hub Santé door acting
    # for it) on another territory's referral is refused and answered.
    *_pair(
        "broker regulation.decided", SAMU_35, Seen(None, "applied"), Seen(None, OUTSIDE_TERRITORY)
    ),
    # A SAMU refers in its own name (OTHER: in another SAMU's), and withdraws its own
    # referrals only (OTHER: another SAMU's).
    *_pair(
        "broker referral.submitted",
        SAMU_35,
        Seen(None, "applied"),
        Seen(None, "sender_inconsistent"),
    ),
    *_pair(
        "broker referral.cancelled",
        SAMU_35,
        Seen(None, "applied"),
        Seen(None, "sender_inconsistent"),
    ),
    # Corrects its own referrals only (issue 36: the patient now in Saint-Malo).
    *_pair(
        "broker referral.updated",
        SAMU_35,
        Seen(None, "applied"),
        Seen(None, "sender_inconsistent"),
    ),
    # The ARS of Bretagne: its region's centres (OWN: a Breton centre; OTHER: Paris's),
    # judged on the centre as the scheduler stores it. Reading another region's
    # département is the 404 of a missing one.
    *_pair("scheduler GET /territory", ARS_53, LISTED, NOT_LISTED),
    *_pair("scheduler GET /territory/{code}", ARS_53, LISTED, NOT_FOUND),
    # Issue 31: a département's saturation forecast; another region's, the 404 of none.
    *_pair("scheduler GET /territory/{code}/forecast", ARS_53, LISTED, NOT_FOUND),
    *_pair("scheduler GET /reinforcements", ARS_53, LISTED, NOT_LISTED),
    # A day's history (issue 30): its region's départements; another's, the 404 of none.
    *_pair("scheduler GET /territory/days/{day}", ARS_53, LISTED, NOT_FOUND),
    # OTHER: Paris's centre id activated again with a Breton commune (issue 28's attack).
    *_pair("scheduler POST /centres", ARS_53, Seen(202), Seen(403, CENTRE_IN_OTHER_REGION)),
    # OTHER: a new centre in a Paris commune.
    *_pair("scheduler POST /centres", ARS_53, Seen(202), REFUSED, "commune"),
    *_pair("scheduler POST /centres/{centre_id}/capacity", ARS_53, Seen(202), REFUSED),
    *_pair("scheduler POST /centres/{centre_id}/suspend", ARS_53, Seen(202), REFUSED),
    *_pair("scheduler POST /centres/{centre_id}/close", ARS_53, Seen(202), REFUSED),
    # The console's territory page, its forms and the audit trail of the region.
    *_pair("console GET /territoire", ARS_53, LISTED, NOT_LISTED),
    *_pair("console GET /territoire/fragment", ARS_53, LISTED, NOT_LISTED),
    *_pair(
        "console POST /territoire/activer", ARS_53, Seen(303), Seen(403, CENTRE_IN_OTHER_REGION)
    ),
    *_pair("console POST /territoire/capacite", ARS_53, Seen(303), REFUSED),
    *_pair("console POST /territoire/suspendre", ARS_53, Seen(303), REFUSED),
    # A reserve centre activated again (issue 30); the day's export: counts of its region.
    *_pair("console POST /territoire/reactiver", ARS_53, Seen(303), REFUSED),
    # Its answer to a centre's request for reinforcement (OWN: Rennes's; OTHER: Paris's).
    *_pair("console POST /territoire/renfort/{reponse}", ARS_53, Seen(303), REFUSED),
    Case("console POST /territoire/renfort/{reponse}", SAMU_35, NONE, NOT_ITS_ROLE),
    *_pair("console GET /territoire/export.csv", ARS_53, LISTED, NOT_LISTED),
    *_pair("console GET /audit", ARS_53, LISTED, NOT_LISTED),
    *_pair("console GET /evenements", ARS_53, TOLD, NOT_TOLD, "capacity"),
    # The broker door: the region's ARS user (or an operator acting for it) on another
    # region's centre is refused, answered on its own key, recorded, never applied.
    *_pair(
        "broker centre.activated",
        ARS_53,
        Seen(None, "applied"),
        Seen(None, CENTRE_IN_OTHER_REGION),
    ),
    *_pair(
        "broker centre.capacity_changed",
        ARS_53,
        Seen(None, "applied"),
        Seen(None, OUTSIDE_TERRITORY),
    ),
    *_pair("broker centre.suspended", ARS_53, Seen(None, "applied"), Seen(None, OUTSIDE_TERRITORY)),
    *_pair("broker centre.closed", ARS_53, Seen(None, "applied"), Seen(None, OUTSIDE_TERRITORY)),
    # A token that names no region (the former "idf", "bzh") acts on nothing.
    Case("scheduler GET /territory", "ars-bzh", NONE, NOT_ITS_ROLE),
    # The ARS answers its region's centres' requests for reinforcement (OWN: a request
    # of Rennes's centre; OTHER: of Paris's, which Paris's ARS alone answers); a centre,
    # even on its own request, and a SAMU answer none.
    *[
        case
        for answer in ANSWERS
        for case in (
            *_pair(
                f"scheduler POST /reinforcements/{{request_id}}/{answer}",
                ARS_53,
                Seen(202),
                REFUSED,
            ),
            Case(
                f"scheduler POST /reinforcements/{{request_id}}/{answer}",
                RENNES,
                NONE,
                NOT_ITS_ROLE,
            ),
            Case(
                f"scheduler POST /reinforcements/{{request_id}}/{answer}",
                SAMU_35,
                NONE,
                NOT_ITS_ROLE,
            ),
        )
    ],
    # A centre's own reads (OWN: Rennes's centre's own; OTHER: Paris's centre's).
    *_pair("scheduler GET /centres/{centre_id}/regulations", RENNES, Seen(200), NOT_THIS_CENTRE),
    *_pair("scheduler GET /centres/{centre_id}/reinforcements", RENNES, LISTED, NOT_THIS_CENTRE),
    Case("scheduler GET /centres/{centre_id}/regulations", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("scheduler GET /centres/{centre_id}/regulations", ARS_53, NONE, NOT_ITS_ROLE),
    Case("scheduler GET /centres/{centre_id}/reinforcements", SAMU_35, NONE, NOT_ITS_ROLE),
    Case("scheduler GET /centres/{centre_id}/reinforcements", ARS_53, NONE, NOT_ITS_ROLE),
]

# Routes listed with no row of this part's actors yet, and why.
PENDING: dict[str, str] = {
    "scheduler GET /patient/appointment": "the patient's link (tests/integration/"
    "test_patient_link_doors.py)",
    "scheduler GET /patient/appointment/options": "the patient's link",
    "scheduler POST /patient/appointment/move": "the patient's link",
    "intake POST /patient/cancellation": "the patient's link",
    "notifier POST /centres/{centre_id}/appointments/{appointment_id}/outcome": "a centre's",
    "notifier POST /centres/{centre_id}/appointments/{appointment_id}/correction": "a centre's",
    "notifier POST /centres/{centre_id}/reinforcements": "a centre's",
}

# Not a tenant's: the process's health and the documents.
# /metrics: Prometheus's scrape, counts with bounded labels and no person's data
# (tests/e2e/test_no_identity_leaks.py), reached only through the NetworkPolicy that
# admits the monitoring namespace (deploy/kubernetes/base/network-policies.yaml).
UNGUARDED = {
    "/health",
    "/ready",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
}


# -- the stage --------------------------------------------------------------------------


class _Services(httpx.AsyncBaseTransport):
    """The console's calls to the services, handed to their apps by port."""

    def __init__(self, apps: dict[int, FastAPI]) -> None:
        self.by_port = {port: httpx.ASGITransport(app=app) for port, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port
        assert port in self.by_port, f"the console called port {port}"
        return await self.by_port[port].handle_async_request(request)


@dataclass
class World:
    settings: Settings
    runtimes: dict[ServiceName, ServiceRuntime]
    console: FastAPI
    browser: httpx.AsyncClient  # the regulator of SAMU 35, logged in to the console
    # Referrals by role: escalated-own, held-other, mine (SAMU 35's), theirs (SAMU 75's)...
    ids: dict[str, str] = field(default_factory=dict)
    # Each region's ARS officer, logged in to the console.
    ars: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def api(self, service: ServiceName, actor: str = SAMU_35) -> httpx.AsyncClient:
        """The service's API as the actor of a row (its token, for that service)."""
        token = issue_token(self.settings, *principal(actor), service)
        transport = httpx.ASGITransport(app=self.runtimes[service].http_app)
        return httpx.AsyncClient(
            transport=transport,
            base_url=f"http://{service.value}",
            headers={"Authorization": f"Bearer {token}"},
        )

    def gp(self) -> httpx.AsyncClient:
        token = issue_token(self.settings, Role.REFERRER, GP, ServiceName.INTAKE)
        transport = httpx.ASGITransport(app=self.runtimes[ServiceName.INTAKE].http_app)
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://intake",
            headers={"Authorization": f"Bearer {token}"},
        )


def principal(actor: str) -> tuple[Role, str]:
    """A row's actor as a token's role and subject: ``samu-35``, ``ars-53`` (the
    region's code), ``centre-<id>``."""
    if actor.startswith("ars-"):
        return Role.ARS, actor.removeprefix("ars-")
    if actor.startswith("centre-"):
        return Role.CENTRE, actor.removeprefix("centre-")
    return Role.CENTRE_15, actor


def _referral(insee: str, *, severe: bool = False, held: bool = False, **patient: Any) -> Any:
    """A referral's JSON: severe (SpO2 88 %: the protocol escalates it), or at risk
    without vitals (the protocol holds it for a regulator)."""
    made = referral(f"t-{uuid.uuid4().hex[:12]}", insee=insee, severe=severe, **patient)
    if held:
        clinical = made.clinical.model_copy(
            update={"risk_factors": (RiskFactor.CHRONIC_RESPIRATORY,), "vitals": Vitals()}
        )
        made = made.model_copy(update={"clinical": clinical})
    return made.model_dump(mode="json")


async def _submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/referrals", json=body)
    assert response.status_code == 201, response.text
    referral_id: str = response.json()["referral_id"]
    return referral_id


async def _status_becomes(world: World, referral_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    async with world.gp() as gp:
        while (await gp.get(f"/referrals/{referral_id}")).json().get("status") != status:
            assert time.monotonic() < deadline, f"{referral_id} never {status}"
            await asyncio.sleep(0.1)


async def _referrals(world: World) -> None:
    """Escalated and held patients of Rennes and Paris (the GP's), and referrals of
    SAMU 35 and SAMU 75 themselves."""
    names = {OWN: "Rennes-Grave", OTHER: "Paris-Grave"}
    async with world.gp() as gp:
        for where, insee in INSEE.items():
            world.ids[f"escalated-{where}"] = await _submit(
                gp, _referral(insee, severe=True, last_name=names[where])
            )
            world.ids[f"held-{where}"] = await _submit(gp, _referral(insee, held=True))
    for samu, role in ((SAMU_35, "mine"), (SAMU_75, "theirs")):
        async with world.api(ServiceName.INTAKE, samu) as client:
            for n in range(5):
                body = _referral(INSEE[OWN])
                body["referrer"] = {"kind": "centre_15", "identifier": samu}
                world.ids[f"{role}-{n}"] = await _submit(client, body)
    for where in INSEE:
        await _status_becomes(world, world.ids[f"escalated-{where}"], "escalated")
        await _status_becomes(world, world.ids[f"held-{where}"], "held_for_regulator")


@contextlib.asynccontextmanager
async def _console(settings: Settings, apps: dict[int, FastAPI]) -> AsyncIterator[FastAPI]:
    ports = {f"{service.value}_http_port": port for service, port in PORTS.items()}
    own = settings.model_copy(update={"data_dir": settings.data_dir / "console", **ports})
    app = create_app(own, listen=False)
    async with app.router.lifespan_context(app):
        state = app.state.console
        await state.http.aclose()
        state.http = httpx.AsyncClient(transport=_Services(apps))
        await app.state.accounts.add(REGULATOR, "R. Le Gall", Role.CENTRE_15, SAMU_35, PASSWORD)
        yield app


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def _centres_active(w: World) -> None:
    """Each centre activated by its own region's ARS (through the scheduler's API), and
    a reinforcement request from Rennes's and from Paris's (through the centres' door)."""
    for centre_id, insee in PLACES.items():
        region = ARS_11 if insee.startswith("75") else ARS_53
        async with w.api(ServiceName.SCHEDULER, region) as api:
            activation = centre(centre_id, insee).model_dump(mode="json")
            response = await api.post("/centres", json=activation)
            assert response.status_code == 202, response.text
            code = f"/territory/{insee[:2]}"

            async def active(
                api: httpx.AsyncClient = api, code: str = code, centre_id: str = centre_id
            ) -> bool:
                found = (await api.get(code)).json()["centres"]
                return any(c["centre_id"] == centre_id for c in found)

            await _until(active, f"{centre_id} not activated")
    s = w.settings
    for where, centre_id in CENTRES.items():
        asked = ReinforcementRequested(
            centre_id=centre_id,
            count=2,
            profession="infirmiers",
            from_date=date.today() + timedelta(days=1),
        )
        async with EventPublisher(s.broker_url, s.namespace, "c", actor=f"centre-{centre_id}") as c:
            await c.publish(asked, correlation_id=centre_id)
        region = ARS_53 if where == OWN else ARS_11
        async with w.api(ServiceName.SCHEDULER, region) as api:

            async def listed(api: httpx.AsyncClient = api, centre_id: str = centre_id) -> bool:
                asks = (await api.get("/reinforcements")).json()["reinforcements"]
                return any(r["centre_id"] == centre_id for r in asks)

            await _until(listed, f"{centre_id}'s request not kept")


async def _ars_stage(w: World, stack: contextlib.AsyncExitStack) -> None:
    """The centres, and each region's ARS officer logged in to the console, who has
    changed the capacity of a centre of their region there (their audit trail)."""
    await _centres_active(w)
    for actor, login in ARS_PEOPLE.items():
        region = principal(actor)[1]
        await w.console.state.accounts.add(login, login, Role.ARS, region, PASSWORD)
        browser = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=w.console), base_url="https://console"
            )
        )
        assert (await log_in(browser, login, PASSWORD)).status_code == 303
        w.ars[actor] = browser
        own = CENTRES[OWN] if actor == ARS_53 else CENTRES[OTHER]
        csrf = csrf_of((await browser.get("/territoire")).text)
        done = await browser.post(
            "/territoire/capacite", data={"csrf": csrf, "centre_id": own, "boxes": "3"}
        )
        assert done.status_code == 303, done.text


@pytest.fixture(scope="module")
async def world(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    namespace = fresh_namespace()
    settings = Settings(
        environment=Environment.DEVELOPMENT,
        broker_url=broker_url,
        namespace=namespace,
        data_dir=tmp_path_factory.mktemp("tenancy") / "data",
        retry_backoff_seconds=0.05,
        outbox_poll_seconds=0.2,
        max_deliveries=3,
        intake_http_port=None,
        regulation_http_port=None,
        scheduler_http_port=None,
        notifier_http_port=None,
    )
    await declare_topology(broker_url, namespace)
    runtimes = {
        ServiceName.INTAKE: build_intake(settings),
        ServiceName.REGULATION: build_regulation(settings),
        ServiceName.SCHEDULER: build_scheduler(settings),
        # Built, not started: its routes refuse a SAMU before reading anything.
        ServiceName.NOTIFIER: build_notifier(settings),
    }
    apps = {port: runtimes[service].http_app for service, port in PORTS.items()}
    try:
        async with (
            running(runtimes[ServiceName.INTAKE]),
            running(runtimes[ServiceName.REGULATION]),
            running(runtimes[ServiceName.SCHEDULER]),
            _console(settings, apps) as console,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=console), base_url="https://console"
            ) as browser,
            contextlib.AsyncExitStack() as stack,
        ):
            assert (await log_in(browser, REGULATOR, PASSWORD)).status_code == 303
            made = World(settings, runtimes, console, browser)
            await _referrals(made)
            await _ars_stage(made, stack)
            yield made
    finally:
        await asyncio.wait_for(delete_topology(broker_url, namespace), 30)


# -- the probes: one per route, what the actor gets -------------------------------------


Probe = Callable[[World, Case], Awaitable[Seen]]
PROBES: dict[str, Probe] = {}


def probe(route: str) -> Callable[[Probe], Probe]:
    def register(function: Probe) -> Probe:
        PROBES[route] = function
        return function

    return register


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error_code") if isinstance(body, dict) else None


@probe("intake GET /escalations")
async def _escalations(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get("/escalations")
    listed = {e["referral_id"] for e in response.json()["escalations"]}
    return Seen(response.status_code, listed=w.ids[f"escalated-{case.territory}"] in listed)


@probe("intake GET /referrals/{referral_id}")
async def _read(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get(f"/referrals/{w.ids[f'escalated-{case.territory}']}")
    if response.status_code != 200:
        return Seen(response.status_code, _code(response))
    # Listed: with the identity a regulator needs to call the patient back.
    return Seen(200, listed="identity" in response.json())


@probe("intake POST /referrals")
async def _refer(w: World, case: Case) -> Seen:
    body = _referral(INSEE[case.territory])
    body["referrer"] = {"kind": "centre_15", "identifier": case.actor}
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.post("/referrals", json=body)
    return Seen(response.status_code, _code(response))


@probe("intake GET /referrals")
async def _own_list(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get("/referrals")
    listed = {r["referral_id"] for r in response.json()["referrals"]}
    wanted = w.ids["mine-0" if case.territory == OWN else "theirs-0"]
    return Seen(response.status_code, listed=wanted in listed)


async def _withdraw(w: World, case: Case, method: str, path: str, n: int) -> Seen:
    referral_id = w.ids[f"mine-{n}" if case.territory == OWN else f"theirs-{n}"]
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.request(
            method, path.format(referral_id=referral_id), json={"reason": "referral_error"}
        )
    return Seen(response.status_code, _code(response))


@probe("intake POST /referrals/{referral_id}/withdraw")
async def _withdraw_post(w: World, case: Case) -> Seen:
    return await _withdraw(w, case, "POST", "/referrals/{referral_id}/withdraw", 1)


@probe("intake DELETE /referrals/{referral_id}")
async def _withdraw_delete(w: World, case: Case) -> Seen:
    return await _withdraw(w, case, "DELETE", "/referrals/{referral_id}", 2)


FHIR_BUNDLE = Path(__file__).resolve().parents[2] / "docs/examples/fhir-transaction.json"
FHIR_JSON = {"content-type": "application/fhir+json"}


def _fhir_bundle(insee: str) -> Any:
    """The docs' transaction Bundle, its patient living in ``insee``, a new referral."""
    bundle = json.loads(FHIR_BUNDLE.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["address"][0]["extension"][0]["valueCode"] = insee
            resource["address"][0].pop("city", None)
        elif resource["resourceType"] == "ServiceRequest":
            # Its own reference: the same one with another patient is a conflict (409).
            resource["identifier"][0]["value"] = f"t-{uuid.uuid4().hex[:12]}"
    return bundle


@probe("intake GET /fhir/metadata")
async def _fhir_metadata(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get("/fhir/metadata")
    return Seen(response.status_code, _code(response))


async def _fhir_submit(w: World, case: Case, path: str) -> Seen:
    bundle = _fhir_bundle(INSEE[case.territory])
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.post(path, content=json.dumps(bundle), headers=FHIR_JSON)
    return Seen(response.status_code, _code(response))


@probe("intake POST /fhir")
async def _fhir_transaction(w: World, case: Case) -> Seen:
    return await _fhir_submit(w, case, "/fhir")


@probe("intake POST /fhir/ServiceRequest")
async def _fhir_create(w: World, case: Case) -> Seen:
    return await _fhir_submit(w, case, "/fhir/ServiceRequest")


@probe("intake GET /fhir/ServiceRequest/{referral_id}")
async def _fhir_read(w: World, case: Case) -> Seen:
    referral_id = w.ids["mine-0" if case.territory == OWN else "theirs-0"]
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get(f"/fhir/ServiceRequest/{referral_id}")
    if response.status_code == 200:
        assert response.json()["id"] == referral_id
    return Seen(response.status_code, _code(response))


@probe("intake GET /fhir/Appointment")
async def _fhir_search(w: World, case: Case) -> Seen:
    referral_id = w.ids["mine-0" if case.territory == OWN else "theirs-0"]
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get("/fhir/Appointment", params={"based-on": referral_id})
    if case.territory == OWN:  # its own: a searchset, booked or not yet
        assert response.json()["type"] == "searchset"
        return Seen(response.status_code, _code(response))
    return Seen(response.status_code, listed=bool(response.json().get("entry")))


@probe("intake POST /fhir/ServiceRequest/{referral_id}/$cancel")
async def _fhir_cancel(w: World, case: Case) -> Seen:
    referral_id = w.ids["mine-4" if case.territory == OWN else "theirs-4"]
    reason = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueCode": "referral_error"}],
    }
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.post(
            f"/fhir/ServiceRequest/{referral_id}/$cancel",
            content=json.dumps(reason),
            headers=FHIR_JSON,
        )
    return Seen(response.status_code, _code(response))


@probe("regulation GET /held")
async def _held(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.REGULATION, case.actor) as api:
        response = await api.get("/held")
    listed = {h["referral_id"] for h in response.json()["held"]}
    return Seen(response.status_code, listed=w.ids[f"held-{case.territory}"] in listed)


@probe("regulation GET /referrals/{referral_id}/decisions")
async def _trail(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.REGULATION, case.actor) as api:
        response = await api.get(f"/referrals/{w.ids[f'held-{case.territory}']}/decisions")
    return Seen(response.status_code, _code(response))


# A regulator confirms the hold: the referral stays held, so every row may run in any
# order and any number of times.
HOLD = {"decision": "hold", "comment": "rappel prévu"}


@probe("regulation POST /referrals/{referral_id}/decision")
async def _decide(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.REGULATION, case.actor) as api:
        response = await api.post(
            f"/referrals/{w.ids[f'held-{case.territory}']}/decision", json=HOLD
        )
    return Seen(response.status_code, _code(response))


@probe("regulation GET /protocols")
async def _protocols(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.REGULATION, case.actor) as api:
        response = await api.get("/protocols")
    return Seen(response.status_code, _code(response))


def _get(service: ServiceName, path: Callable[[Case], str]) -> Probe:
    async def run(w: World, case: Case) -> Seen:
        async with w.api(service, case.actor) as api:
            response = await api.get(path(case))
        return Seen(response.status_code, _code(response))

    return run


PROBES["notifier GET /centres/{centre_id}/appointments"] = _get(
    ServiceName.NOTIFIER, lambda case: "/centres/rennes-a/appointments"
)


async def _desk(w: World, case: Case, path: str) -> Seen:
    response = await w.browser.get(path)
    page = response.text
    escalated = "Rennes-Grave" if case.territory == OWN else "Paris-Grave"
    held = w.ids[f"held-{case.territory}"]
    both, neither = escalated in page and held in page, escalated not in page and held not in page
    assert both or neither, f"{path}: one of the escalation and the held referral only"
    return Seen(response.status_code, listed=both)


@probe("console GET /centre-15")
async def _desk_page(w: World, case: Case) -> Seen:
    return await _desk(w, case, "/centre-15")


@probe("console GET /centre-15/fragment")
async def _desk_fragment(w: World, case: Case) -> Seen:
    return await _desk(w, case, "/centre-15/fragment")


@probe("console POST /centre-15/dossiers/{referral_id}/decision")
async def _desk_decides(w: World, case: Case) -> Seen:
    csrf = csrf_of((await w.browser.get("/centre-15")).text)
    referral_id = w.ids[f"held-{case.territory}"]
    response = await w.browser.post(
        f"/centre-15/dossiers/{referral_id}/decision",
        data={"csrf": csrf, "decision": "hold", "commentaire": "rappel prévu"},
        follow_redirects=False,
    )
    # The refusal's page says it in French; its code is the service's.
    said = "ne relève pas du territoire" in response.text
    return Seen(response.status_code, OUTSIDE_TERRITORY if said else None)


@probe("console POST /centre-15/dossiers/{referral_id}/identite")
async def _desk_identity_with_reason(w: World, case: Case) -> Seen:
    csrf = csrf_of((await w.browser.get("/centre-15")).text)
    referral_id = w.ids[f"held-{case.territory}"]
    response = await w.browser.post(
        f"/centre-15/dossiers/{referral_id}/identite",
        data={"csrf": csrf, "motif": "rappel à la demande du patient"},
        follow_redirects=False,
    )
    return Seen(response.status_code, listed='class="identite"' in response.text)


@probe("intake GET /identity-reads")
async def _identity_reads(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.INTAKE, case.actor) as api:
        response = await api.get("/identity-reads")
    return Seen(response.status_code)


@probe("notifier GET /identity-reads")
async def _notifier_identity_reads(w: World, case: Case) -> Seen:
    async with w.api(ServiceName.NOTIFIER, case.actor) as api:
        response = await api.get("/identity-reads")
    return Seen(response.status_code)


def _envelope(event_type: str, **data: Any) -> Envelope:
    return Envelope(type=event_type, source="test", correlation_id=new_id(), data=data)


def _live_events(case: Case) -> tuple[Actor, list[Envelope], str]:
    """The actor as the console makes it, what the bus carries, and the line that tells
    the actor of it."""
    dep = INSEE[case.territory][:2]
    if case.actor == SAMU_35:
        actor = Actor(Role.CENTRE_15, f"{SAMU_35}:{REGULATOR}", REGULATOR, "R. Le Gall", SAMU_35)
        escalated = _envelope(
            "referral.regulated",
            decision="escalate",
            decided_by="protocol",
            commune_insee=INSEE[case.territory],
            departement=dep,
            age=61 if case.territory == OWN else 62,
        )
        return actor, [escalated], f"{escalated.data['age']} ans"
    actor = Actor(Role.ARS, "53", "a.martin@ars.bzh", "A. Martin", "53")
    if case.what == "capacity":
        # A centre's capacity changed: its département is its activation's commune's.
        centre_id = f"centre-{dep}-{uuid.uuid4().hex[:6]}"
        activated = _envelope(
            "centre.activated", centre_id=centre_id, commune_insee=INSEE[case.territory]
        )
        changed = _envelope("centre.capacity_changed", centre_id=centre_id, boxes=5)
        return actor, [activated, changed], f"Centre {centre_id} capacit"  # JSON escapes é
    if case.what == "alert":
        alert = _envelope("capacity.alert", departement=dep, kind="waiting_list", waiting=7)
        return actor, [alert], f"dans le {dep}"
    centre_id = f"centre-{dep}-{uuid.uuid4().hex[:6]}"
    activated = _envelope(
        "centre.activated", centre_id=centre_id, commune_insee=INSEE[case.territory]
    )
    if case.what == "raised_again":
        # Keyed and judged by its département, as the alerts are.
        again = _envelope(
            "reinforcement.raised_again",
            request_id=new_id(),
            centre_id=centre_id,
            departement=dep,
            count=2,
            profession="IDE",
            requested_at="2026-03-29T08:00:00+00:00",
        )
        return actor, [again], f"{centre_id} (2 IDE) relanc"  # JSON escapes é
    asked = _envelope("reinforcement.requested", centre_id=centre_id, count=2, profession="IDE")
    return actor, [activated, asked], f"{centre_id} demande 2 IDE"


@probe("console GET /evenements")
async def _live(w: World, case: Case) -> Seen:
    """What the actor's stream carries (the stream the route serves, read from the hub:
    the route adds only the session's checks)."""
    hub = w.console.state.console.hub
    actor, envelopes, line = _live_events(case)
    stream = hub.stream(actor, heartbeat=0.3)
    try:
        assert (await anext(stream)).startswith("retry:")  # subscribed from here
        for envelope in envelopes:
            hub.feed(envelope)
        heard = []
        while not (chunk := await anext(stream)).startswith(": keep-alive"):
            heard.append(chunk)
    finally:
        await stream.aclose()
    # Listed: told what happened (a line for its journal). A change without a line only
    # has the page read its part again from the services, which hold it to its own.
    told = [c for c in heard if c.startswith("event: change") and '"line": ""' not in c]
    assert not told or any(line in chunk for chunk in told), told
    return Seen(None, listed=bool(told))


async def _on_the_broker(
    w: World, payload: EventPayload, correlation_id: str, caused: str, actor: str = SAMU_35
) -> str | None:
    """The actor's message on the ingress (SAMU 35's, ``ars-53``...), as the operator's
    user acting for it (the Hub Santé door's way; the actor's own user is held so by
    shared.senders too): what became of it (``applied``: ``caused``, the event it caused
    on the bus; an answer's type; a refusal's code)."""
    s = w.settings
    async with (
        Tap(s.broker_url, s.namespace, f"reply.{actor}.#", caused) as tap,
        EventPublisher(s.broker_url, s.namespace, "lrm", actor=actor) as lrm,
    ):
        sent = await lrm.publish(payload, correlation_id=correlation_id)

        def outcome(envelopes: list[Envelope]) -> str | None:
            for e in envelopes:
                if e.data.get("source_message_id") == sent.id:
                    return str(e.data.get("error_code") or e.type)
                if e.causation_id == sent.id:
                    return "applied"
            return None

        await tap.wait_for(lambda es: outcome(es) is not None, timeout=20)
    return outcome(tap.envelopes)


@probe("broker referral.submitted")
async def _door_refers(w: World, case: Case) -> Seen:
    made = referral(f"t-{uuid.uuid4().hex[:12]}", insee=INSEE[OWN])
    samu = SAMU_35 if case.territory == OWN else SAMU_75
    referrer = Referrer(kind=ReferrerKind.CENTRE_15, identifier=samu, reply_to=SAMU_35)
    submitted = made.model_copy(update={"referrer": referrer})
    return Seen(None, await _on_the_broker(w, submitted, submitted.reference, "referral.received"))


@probe("broker referral.cancelled")
async def _door_cancels(w: World, case: Case) -> Seen:
    referral_id = w.ids["mine-3" if case.territory == OWN else "theirs-3"]
    cancelled = ReferralCancelled(
        referral_id=referral_id, cancelled_by=CancelledBy.REFERRER, reason="erreur"
    )
    return Seen(None, await _on_the_broker(w, cancelled, referral_id, "referral.cancelled"))


@probe("broker referral.updated")
async def _door_updates(w: World, case: Case) -> Seen:
    referral_id = w.ids["mine-0" if case.territory == OWN else "theirs-0"]
    updated = ReferralUpdated(referral_id=referral_id, commune_insee="35288")
    return Seen(None, await _on_the_broker(w, updated, referral_id, "patient.relocated"))


@probe("broker regulation.decided")
async def _door_decides(w: World, case: Case) -> Seen:
    referral_id = w.ids[f"held-{case.territory}"]
    decided = RegulationDecided(
        referral_id=referral_id, regulator_id="DR-lrm", decision=Decision.HOLD, comment="LRM"
    )
    return Seen(None, await _on_the_broker(w, decided, referral_id, "referral.regulated.*"))


# -- the ARS's routes: Bretagne's ARS on a Breton centre (OWN) and on Paris's (OTHER) ----


def _dep(case: Case) -> str:
    return INSEE[case.territory][:2]


async def _scheduler_read(w: World, case: Case, path: str) -> tuple[Seen, Any]:
    async with w.api(ServiceName.SCHEDULER, case.actor) as api:
        response = await api.get(path)
    if response.status_code != 200:
        return Seen(response.status_code, _code(response)), None
    return Seen(200), response.json()


@probe("scheduler GET /territory")
async def _territory(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, "/territory")
    if body is None:
        return seen
    return Seen(200, listed=any(d["departement"] == _dep(case) for d in body["departements"]))


@probe("scheduler GET /territory/{code}")
async def _one_departement(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, f"/territory/{_dep(case)}")
    if body is None:
        return seen
    return Seen(200, listed=any(c["centre_id"] == CENTRES[case.territory] for c in body["centres"]))


@probe("scheduler GET /territory/{code}/forecast")
async def _forecast(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, f"/territory/{_dep(case)}/forecast")
    if body is None:
        return seen
    return Seen(200, listed=body["departement"] == _dep(case) and len(body["blocks"]) == 24)


@probe("scheduler GET /territory/days/{day}")
async def _one_day(w: World, case: Case) -> Seen:
    query = "" if case.territory == NONE else f"?departement={_dep(case)}"
    seen, body = await _scheduler_read(w, case, f"/territory/days/{date.today()}{query}")
    if body is None:
        return seen
    return Seen(200, listed=any(d["departement"] == _dep(case) for d in body["departements"]))


@probe("scheduler GET /reinforcements")
async def _reinforcements(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, "/reinforcements")
    if body is None:
        return seen
    asks = {r["centre_id"] for r in body["reinforcements"]}
    return Seen(200, listed=CENTRES[case.territory] in asks)


def _activation(case: Case) -> CentreActivated:
    """OWN: a Breton centre activated again where it is (or a new one in Rennes);
    OTHER: Paris's centre's id with a Breton commune (or a new one in Paris)."""
    if case.what == "commune":
        return centre(f"ars-new-{uuid.uuid4().hex[:8]}", INSEE[case.territory])
    if case.territory == OWN:
        return centre(CENTRES[OWN], PLACES[CENTRES[OWN]])
    return centre(CENTRES[OTHER], BREST)


def _target(case: Case, own: str) -> str:
    return own if case.territory == OWN else CENTRES[OTHER]


async def _decides(w: World, case: Case, path: str, body: dict[str, Any]) -> Seen:
    async with w.api(ServiceName.SCHEDULER, case.actor) as api:
        response = await api.post(path, json=body)
    return Seen(response.status_code, _code(response))


@probe("scheduler POST /centres")
async def _activates(w: World, case: Case) -> Seen:
    return await _decides(w, case, "/centres", _activation(case).model_dump(mode="json"))


@probe("scheduler POST /centres/{centre_id}/capacity")
async def _ramps(w: World, case: Case) -> Seen:
    path = f"/centres/{_target(case, CENTRES[OWN])}/capacity"
    return await _decides(w, case, path, {"boxes": 3, "from_date": date.today().isoformat()})


@probe("scheduler POST /centres/{centre_id}/suspend")
async def _suspends(w: World, case: Case) -> Seen:
    path = f"/centres/{_target(case, SUSPENDED)}/suspend"
    return await _decides(w, case, path, {"reason": "pas de personnel"})


@probe("scheduler POST /centres/{centre_id}/close")
async def _closes(w: World, case: Case) -> Seen:
    path = f"/centres/{_target(case, CLOSED)}/close"
    return await _decides(w, case, path, {"reason": "fin de la vague"})


async def _territory_page(w: World, case: Case, path: str) -> Seen:
    response = await w.ars[case.actor].get(path)
    return Seen(
        response.status_code, listed=f'data-centre="{CENTRES[case.territory]}"' in response.text
    )


@probe("console GET /territoire")
async def _territory_console(w: World, case: Case) -> Seen:
    return await _territory_page(w, case, "/territoire")


@probe("console GET /territoire/fragment")
async def _territory_fragment(w: World, case: Case) -> Seen:
    return await _territory_page(w, case, "/territoire/fragment")


# The console's refusal pages say it in French; the code is the scheduler's.
ARS_REFUSALS = {
    "celui d'un centre d'une autre région": CENTRE_IN_OTHER_REGION,
    "n'est pas un centre de votre région": OUTSIDE_TERRITORY,
}


async def _console_decides(w: World, case: Case, path: str, form: dict[str, str]) -> Seen:
    browser = w.ars[case.actor]
    csrf = csrf_of((await browser.get("/territoire")).text)
    response = await browser.post(path, data={"csrf": csrf, **form})
    page = response.text.replace("&#39;", "'")
    said = [code for words, code in ARS_REFUSALS.items() if words in page]
    return Seen(response.status_code, said[0] if said else None)


@probe("console POST /territoire/activer")
async def _console_activates(w: World, case: Case) -> Seen:
    activation = _activation(case)
    form = {"centre_id": activation.centre_id, "nom": "Centre", "commune": activation.commune_insee}
    return await _console_decides(w, case, "/territoire/activer", form)


@probe("console POST /territoire/capacite")
async def _console_ramps(w: World, case: Case) -> Seen:
    form = {"centre_id": _target(case, CENTRES[OWN]), "boxes": "3"}
    return await _console_decides(w, case, "/territoire/capacite", form)


@probe("console POST /territoire/suspendre")
async def _console_suspends(w: World, case: Case) -> Seen:
    form = {"centre_id": _target(case, SUSPENDED), "motif": "pas de personnel"}
    return await _console_decides(w, case, "/territoire/suspendre", form)


@probe("console POST /territoire/reactiver")
async def _console_reactivates(w: World, case: Case) -> Seen:
    """OWN: a Breton centre activated again as stored; OTHER: Paris's, named with its
    département."""
    form = {"centre_id": CENTRES[case.territory], "departement": _dep(case)}
    return await _console_decides(w, case, "/territoire/reactiver", form)


@probe("console GET /territoire/export.csv")
async def _console_export(w: World, case: Case) -> Seen:
    response = await w.ars[case.actor].get("/territoire/export.csv")
    return Seen(response.status_code, listed=f";{_dep(case)};" in response.text)


@probe("console GET /audit")
async def _audit(w: World, case: Case) -> Seen:
    """OWN: Bretagne's own action on its centre; OTHER: Paris's ARS's on Paris's."""
    response = await w.ars[case.actor].get("/audit")
    return Seen(response.status_code, listed=CENTRES[case.territory] in response.text)


def _ars_decision(case: Case) -> EventPayload:
    """What a broker row sends: OWN on a Breton centre, OTHER on Paris's."""
    kind = case.route.removeprefix("broker ")
    if kind == "centre.activated":
        return _activation(case)
    if kind == "centre.capacity_changed":
        target = _target(case, CENTRES[OWN])
        return CentreCapacityChanged(centre_id=target, boxes=3, from_date=date.today())
    if kind == "centre.suspended":
        return CentreSuspended(centre_id=_target(case, SUSPENDED), reason="pas de personnel")
    return CentreClosed(centre_id=_target(case, CLOSED), reason="fin de la vague")


async def _door_centre(w: World, case: Case) -> Seen:
    decision = _ars_decision(case)
    centre_id = str(getattr(decision, "centre_id", ""))
    return Seen(None, await _on_the_broker(w, decision, centre_id, "centre.*", case.actor))


for _kind in ("activated", "capacity_changed", "suspended", "closed"):
    PROBES[f"broker centre.{_kind}"] = _door_centre


# -- the answers to a centre's request for reinforcement, and a centre's own reads -----


async def _requested(w: World, territory: str) -> str:
    """A request for reinforcement of the territory's centre, kept by the scheduler: a
    new one of Rennes's (OWN, so that each answer is seen applied), the stage's of
    Paris's (OTHER: refused before anything). Its id is the event's."""
    if territory == OTHER:
        async with w.api(ServiceName.SCHEDULER, ARS_11) as api:
            asks = (await api.get("/reinforcements")).json()["reinforcements"]
        return next(str(r["request_id"]) for r in asks if r["centre_id"] == CENTRES[OTHER])
    s, centre_id = w.settings, CENTRES[OWN]
    asked = ReinforcementRequested(
        centre_id=centre_id, count=1, profession="IDE", from_date=date.today()
    )
    async with EventPublisher(s.broker_url, s.namespace, "c", actor=f"centre-{centre_id}") as c:
        sent = await c.publish(asked, correlation_id=centre_id)
    await _until(lambda: _state_of(w, sent.id, "requested"), f"{sent.id} not kept")
    return sent.id


async def _state_of(w: World, request_id: str, state: str) -> bool:
    """Whether Bretagne's ARS reads the request in that state."""
    async with w.api(ServiceName.SCHEDULER, ARS_53) as api:
        asks = (await api.get("/reinforcements")).json()["reinforcements"]
    return any(r["request_id"] == request_id and r["state"] == state for r in asks)


async def _scheduler_answers(w: World, case: Case) -> Seen:
    """OWN: a new request of Rennes's, answered and seen in its new state (the door
    took it); OTHER: Paris's. A centre and a SAMU try Rennes's."""
    answer = case.route.rsplit("/", 1)[1]
    request_id = await _requested(w, OWN if case.territory == NONE else case.territory)
    body = {"boxes": 2, "reason": "pas de renfort disponible", "note": "vu"}
    async with w.api(ServiceName.SCHEDULER, case.actor) as api:
        response = await api.post(f"/reinforcements/{request_id}/{answer}", json=body)
    if response.status_code == 202:
        await _until(
            lambda: _state_of(w, request_id, ANSWERS[answer]), f"{request_id} not {answer}"
        )
    return Seen(response.status_code, _code(response))


for _answer in ANSWERS:
    PROBES[f"scheduler POST /reinforcements/{{request_id}}/{_answer}"] = _scheduler_answers


@probe("console POST /territoire/renfort/{reponse}")
async def _console_answers(w: World, case: Case) -> Seen:
    """Bretagne's ARS grants from its page (OWN: a new request of Rennes's, seen
    granted; OTHER: Paris's); a SAMU's regulator posts the same form. The form names
    Paris's centre: a page's word, which must not put Paris's centre in Bretagne's audit
    trail (it names the request's centre as the scheduler stores it)."""
    request_id = await _requested(w, OWN if case.territory == NONE else case.territory)
    form = {"demande": request_id, "centre_id": CENTRES[OTHER], "boxes": "2"}
    if case.actor == SAMU_35:
        csrf = csrf_of((await w.browser.get("/centre-15")).text)
        response = await w.browser.post("/territoire/renfort/accorder", data={"csrf": csrf, **form})
        return Seen(response.status_code, _code(response))
    seen = await _console_decides(w, case, "/territoire/renfort/accorder", form)
    if seen.status == 303:
        await _until(lambda: _state_of(w, request_id, "granted"), f"{request_id} not granted")
        trail = await w.console.state.accounts.audit_of_region(principal(case.actor)[1])
        [entry] = [e for e in trail if request_id in e.detail]
        assert entry.centre_id == CENTRES[OWN], entry
        assert CENTRES[OTHER] not in {e.centre_id for e in trail}
    return seen


def _centre_path(case: Case, what: str) -> str:
    """A centre's route on Rennes's centre (OWN, and for the others' roles) or Paris's."""
    return f"/centres/{CENTRES[OTHER if case.territory == OTHER else OWN]}/{what}"


@probe("scheduler GET /centres/{centre_id}/regulations")
async def _centre_regulations(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, _centre_path(case, "regulations"))
    if body is not None:
        assert body["centre_id"] == CENTRES[OWN], body
    return seen


@probe("scheduler GET /centres/{centre_id}/reinforcements")
async def _centre_requests(w: World, case: Case) -> Seen:
    seen, body = await _scheduler_read(w, case, _centre_path(case, "reinforcements"))
    if body is None:
        return seen
    # Its own requests only: the stage's (and any a row made), none of another centre.
    centres = {r["centre_id"] for r in body["reinforcements"]}
    assert centres <= {CENTRES[OWN]}, centres
    return Seen(200, listed=CENTRES[OWN] in centres)


@probe("console GET /centre-15/dossiers/{referral_id}")
async def _desk_timeline(w: World, case: Case) -> Seen:
    """OWN: the held referral's timeline (the protocol's hold); OTHER: Paris's held
    referral, which must come back as one that does not exist does (same words)."""
    browser = w.ars[case.actor] if case.actor == ARS_53 else w.browser
    referral_id = w.ids[f"held-{OTHER if case.territory == OTHER else OWN}"]
    response = await browser.get(f"/centre-15/dossiers/{referral_id}")
    if response.status_code == 303:
        missing = f"{referral_id}x"  # the same first characters, the page's title
        unknown = await browser.get(f"/centre-15/dossiers/{missing}")
        said = unknown.headers["location"].replace(quote(missing, safe=""), "")
        assert response.headers["location"].replace(quote(referral_id, safe=""), "") == said
    if response.status_code not in (200, 303):
        return Seen(response.status_code, _code(response))
    return Seen(response.status_code, listed='data-current="oui"' in response.text)


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_tenancy(world: World, case: Case) -> None:
    assert case.route in PROBES, f"no probe for {case.route}"
    seen = await PROBES[case.route](world, case)
    assert seen == case.expected, f"{case.id}: {seen}"


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from _walk(included.routes)
        elif getattr(route, "methods", None):
            yield route


def _routes(name: str, app: FastAPI) -> set[str]:
    found = {
        f"{name} {method} {route.path}"
        for route in _walk(app.routes)
        for method in route.methods - {"HEAD"}
        if route.path not in UNGUARDED
    }
    # And what the OpenAPI document says, in case a route hides from the walk.
    for path, operations in app.openapi()["paths"].items():
        if path not in UNGUARDED:
            found |= {f"{name} {method.upper()} {path}" for method in operations}
    return found


def test_every_route_is_in_the_table(tmp_path: Path) -> None:
    """Each HTTP route of every service, and each Centre 15 and ARS page of the console,
    has a row, or is pending with a reason: a new route cannot escape the table."""
    settings = Settings(data_dir=tmp_path, intake_http_port=None)
    builders = {
        ServiceName.INTAKE: build_intake,
        ServiceName.REGULATION: build_regulation,
        ServiceName.SCHEDULER: build_scheduler,
        ServiceName.NOTIFIER: build_notifier,
    }
    routes: set[str] = set()
    for service, build in builders.items():
        routes |= _routes(service.value, build(settings).http_app)
    console = {
        f"console {method} {route.path}"
        for route in _walk(create_app(settings, listen=False).routes)
        for method in route.methods - {"HEAD"}
        if route.path.startswith(("/centre-15", "/territoire", "/audit"))
        or route.path == "/evenements"
    }
    assert len(console) == 15, console
    listed = {case.route for case in CASES} | set(PENDING)
    missing = sorted((routes | console) - listed)
    assert not missing, f"routes in no row of the tenancy table: {missing}"
    gone = sorted(r for r in listed - routes - console if not r.startswith("broker "))
    assert not gone, f"rows for routes that no longer exist: {gone}"
    # Every row of a route has both territories where it has any.
    assert all(case.route in PROBES for case in CASES)


def test_the_table_is_a_real_one() -> None:
    """Each actor's route is tried on both territories (or on none: its own role's)."""
    for route, actor in {(case.route, case.actor) for case in CASES}:
        rows = {case.territory for case in CASES if (case.route, case.actor) == (route, actor)}
        assert rows in ({OWN, OTHER}, {NONE}), (route, actor, rows)
    refused = [c for c in CASES if c.expected in (NOT_FOUND, REFUSED) or c.expected.listed is False]
    assert refused and all(c.territory == OTHER for c in refused)


async def test_a_paris_centre_cannot_be_taken_over_from_bretagne(world: World) -> None:
    """Issue 28's attack, every way: Bretagne's ARS activates Paris's centre's id with a
    Breton commune (the scheduler's API, the console, its broker user), and so does an
    operator (the national path: a centre keeps its département for life). Each is
    refused ``centre_in_other_region``, the broker's recorded with who sent it; Paris's
    centre is as it was (name, commune, boxes, status), Paris's audit trail and
    Bretagne's say nothing of it."""
    w, paris = world, CENTRES[OTHER]
    audits = world.console.state.accounts

    async def as_paris() -> dict[str, Any]:
        async with w.api(ServiceName.SCHEDULER, ARS_11) as api:
            found = (await api.get("/territory/75")).json()["centres"]
        [entry] = [c for c in found if c["centre_id"] == paris]
        return {k: entry[k] for k in ("name", "commune_insee", "departement", "boxes", "status")}

    before = await as_paris()
    paris_trail = [(e.at, e.action, e.centre_id) for e in await audits.audit_of_region("11")]
    moved = centre(paris, BREST).model_copy(update={"name": "Centre de Brest", "boxes": 1})
    attack = Case("broker centre.activated", ARS_53, OTHER, Seen(None))
    assert await _decides(w, attack, "/centres", moved.model_dump(mode="json")) == Seen(
        403, CENTRE_IN_OTHER_REGION
    )
    form = {"centre_id": paris, "nom": "Centre de Brest", "commune": BREST, "boxes": "1"}
    assert await _console_decides(w, attack, "/territoire/activer", form) == Seen(
        403, CENTRE_IN_OTHER_REGION
    )
    s = w.settings
    sent = []
    for actor in (ARS_53, None):  # the region's ARS, then an operator in its own name
        async with (
            Tap(s.broker_url, s.namespace, "reply.ars-53.#", "centre.*") as tap,
            EventPublisher(s.broker_url, s.namespace, "ars", actor=actor) as ars,
        ):
            sent.append(await ars.publish(moved, correlation_id=paris))
            if actor is not None:
                [told] = await tap.wait_for(
                    lambda es: any(e.type == "request.refused" for e in es), timeout=20
                )
                assert told.data["error_code"] == CENTRE_IN_OTHER_REGION
                assert told.data["source_message_id"] == sent[-1].id
    recorded: dict[str, Any] = {}

    async def refused() -> bool:
        async with w.runtimes[ServiceName.SCHEDULER].database.transaction() as session:
            rows = (await session.execute(refusals.select())).all()
        recorded.update({r.message_id: r for r in rows if r.message_id in {e.id for e in sent}})
        return len(recorded) == len(sent)

    await _until(refused, "the door's refusals are not recorded")
    assert {(r.sender, r.error_code) for r in recorded.values()} == {
        (ARS_53, CENTRE_IN_OTHER_REGION),
        ("guest", CENTRE_IN_OTHER_REGION),
    }
    assert await as_paris() == before
    after = [(e.at, e.action, e.centre_id) for e in await audits.audit_of_region("11")]
    assert after == paris_trail
    assert paris not in {e.centre_id for e in await audits.audit_of_region("53")}
