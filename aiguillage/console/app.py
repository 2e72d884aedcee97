"""The console's web app: log-in, the ARS's territory, a centre's day, Centre 15's desk,
the referrers' pages and the patient's.

The console keeps only its people (accounts, sessions, log-in failures, the audit
trail: aiguillage.console.people). It reads the services' HTTP APIs with the bearer
token of the actor the logged-in person acts for (issued here, since the console holds
the deployment's secret), so each service still decides what may be seen and done: the
ARS's decisions go to the scheduler's API (the ARS's door, which judges them on the
centres as it stores them). It publishes nothing on the broker. Every action is recorded
in the audit trail in the person's name, and an ARS person acts on their own region only.

This module only assembles: what the routes share goes on ``app.state``
(aiguillage/console/common.py), then each actor's router (one module each: accounts,
ars, centre, centre15, referrer, patient).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from aiguillage.console import accounts, ars, centre, centre15, dpo, patient, referrer
from aiguillage.console.common import (
    HERE,
    SECURITY_HEADERS,
    Console,
    Refused,
    refused_page,
    templates,
)
from aiguillage.console.live import EventHub
from aiguillage.console.people import AccountStore
from shared.http import BodyLimit, Proxies, SecurityHeaders
from shared.settings import Settings
from shared.territory import Territories
from shared.topology import declare_topology

# In the order their routes were added before the routers (none of their paths overlap).
ROUTERS = (accounts, ars, centre, centre15, referrer, patient, dpo)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    console: Console = app.state.console
    store: AccountStore = app.state.accounts
    console.http = httpx.AsyncClient(timeout=10.0)
    await store.migrate()
    if app.state.listen:
        settings = console.settings
        await declare_topology(settings.broker_nodes, settings.namespace)
        await console.hub.start()
    try:
        yield
    finally:
        await console.http.aclose()
        await console.hub.stop()
        await store.close()


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(settings: Settings, *, listen: bool = True) -> FastAPI:
    # Each SAMU's live stream is held to its départements (shared.territory).
    hub = EventHub(settings.broker_url, settings.namespace, territories=Territories.of(settings))
    app = FastAPI(title="Aiguillage — console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.console = Console(settings, hub)
    app.state.accounts = AccountStore.for_settings(settings)
    app.state.templates = templates()
    app.state.proxies = Proxies(settings.trusted_proxies)
    app.state.listen = listen
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # A door like the services' APIs: no body larger than the bound is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Pages show identities and carry the session: no cache keeps them (the static
    # files may be kept); HSTS once served over TLS.
    app.add_middleware(SecurityHeaders, proxies=app.state.proxies, cacheable=("/static/",))
    app.middleware("http")(security_headers)
    app.add_exception_handler(Refused, refused_page)
    for actor in ROUTERS:
        app.include_router(actor.router)
    return app
