"""What every actor's pages share: the services' client, the session, the page.

The app (aiguillage/console/app.py) puts one of each on ``app.state``: the services'
client (``console``, with the live stream's hub), the accounts' store (``accounts``),
the templates (``templates``), the proxies trusted for the client's address
(``proxies``); the routes reach them through the dependencies below or from the
request. Nothing here imports an actor's module: they import this one.
"""

from __future__ import annotations

import hmac
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from aiguillage.console.auth import ROLE_LABELS, SESSION_COOKIE, Actor, actor_of_account
from aiguillage.console.live import EventHub
from aiguillage.console.people import AccountStore, Session
from shared.auth import Role
from shared.geo import commune
from shared.http import Proxies, service_port
from shared.labels import (
    ALERT_KINDS,
    APPOINTMENT_STATUSES,
    CENTRE_KINDS,
    CENTRE_STATUSES,
    DECIDERS,
    DECISIONS,
    PRIORITIES,
    PRIORITY_MEANINGS,
    REFERRAL_STATES,
    REFERRER_KINDS,
    REINFORCEMENT_RAISED_AGAIN,
    by_code,
)
from shared.settings import Settings

HERE = Path(__file__).parent
PARIS = ZoneInfo("Europe/Paris")

# The words of the codes: shared/labels.py, as everywhere a person reads them.
KIND_LABELS = by_code(CENTRE_KINDS, capital=True)
STATUS_LABELS = {**CENTRE_STATUSES, **APPOINTMENT_STATUSES}
DECISION_LABELS = by_code(DECISIONS, capital=True)
PRIORITY_LABELS = by_code(PRIORITIES)
PRIORITY_MEANING_LABELS = by_code(PRIORITY_MEANINGS)
REFERRER_LABELS = by_code(REFERRER_KINDS)
# The referrer's page heads an answer with these (the others: intake's message alone).
OUTCOME_LABELS = {
    state: REFERRAL_STATES[state]
    for state in (
        "appointment",
        "refused",
        "escalated",
        "home_follow_up",
        "held_for_regulator",
        "waitlisted",
        "cancelled",
        "no_show",
    )
}
ALERT_LABELS = by_code(ALERT_KINDS)
# No inline script or style anywhere: what the page runs is the console's own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class ServiceError(Exception):
    """A service refused or could not be reached; the message is shown to the actor."""

    def __init__(self, message: str, detail: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail  # the service's own words
        self.code = code  # its stable code, when it gives one (outside_territory)


class Refused(Exception):
    """An action the person may not take; the message (French) says why, with a 403."""


@dataclass
class Console:
    settings: Settings
    hub: EventHub
    http: httpx.AsyncClient | None = None

    def base_url(self, service: str) -> str:
        if self.settings.services_host:  # each service on its own host (Kubernetes)
            host = self.settings.services_host.replace("{service}", service)
        else:
            host = self.settings.http_host
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{host}:{service_port(self.settings, service)}"

    async def call(
        self,
        actor: Actor,
        method: str,
        service: str,
        path: str,
        body: Any = None,
        *,
        reason: str | None = None,
        **params: Any,
    ) -> Any:
        """``reason``: why the person reads an identity outside their queue (issue 34),
        written down by intake with the read."""
        assert self.http is not None
        try:
            response = await self.http.request(
                method,
                self.base_url(service) + path,
                json=body,
                params={k: v for k, v in params.items() if v is not None},
                headers=service_headers(actor, self.settings, service, reason),
            )
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"le service {service} ne répond pas ({exc.__class__.__name__})"
            ) from exc
        if response.status_code >= 400:
            code = None
            try:
                detail = _said(response.json(), response.text)
                code = response.json().get("error_code")
            except ValueError:
                detail = response.text
            raise ServiceError(
                f"{service} a refusé ({response.status_code}) : {detail}", str(detail), code
            )
        return response.json()


# The page the person is on (set by ``actor_of``): intake writes it down with each read
# of an identity (issue 34), beside the person's login.
PAGE: ContextVar[str | None] = ContextVar("console_page", default=None)


def service_headers(
    actor: Actor, settings: Settings, service: str, reason: str | None = None
) -> dict[str, str]:
    """The bearer token, and who reads from which page (intake writes them down with
    each read of an identity)."""
    headers = {"Authorization": f"Bearer {actor.token(settings, service)}"}
    if actor.login:
        headers["X-Aiguillage-Account"] = actor.login
    page = PAGE.get()
    if page:
        headers["X-Aiguillage-Page"] = page
    if reason:
        # A header's value is one line of Latin-1: the reason travels percent-encoded.
        headers["X-Aiguillage-Reason"] = quote(" ".join(reason.split())[:1000], safe=" ")
    return headers


def _said(body: Any, text: str) -> str:
    """What a service's refusal says: its ``detail``, or the messages of its reasons (a
    body with a stable code: ``{"error_code", "reasons": [{"code", "message"}]}``)."""
    if not isinstance(body, dict):
        return text
    reasons = body.get("reasons")
    if "detail" not in body and isinstance(reasons, list):
        said = " ".join(str(r.get("message", "")) for r in reasons if isinstance(r, dict))
        return said or text
    return str(body.get("detail", text))


# -- what the routes reach on app.state (FastAPI dependencies) ---------------------------


def the_console(request: Request) -> Console:
    return cast(Console, request.app.state.console)


def the_accounts(request: Request) -> AccountStore:
    return cast(AccountStore, request.app.state.accounts)


def the_proxies(request: Request) -> Proxies:
    return cast(Proxies, request.app.state.proxies)


ConsoleDep = Annotated[Console, Depends(the_console)]
AccountsDep = Annotated[AccountStore, Depends(the_accounts)]
ProxiesDep = Annotated[Proxies, Depends(the_proxies)]


# -- the page ----------------------------------------------------------------------------


def local_time(value: str | None, fmt: str = "%H:%M") -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(PARIS).strftime(fmt)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}".replace("%", " %")


def occupancy_class(value: float | None) -> str:
    if value is None:
        return "occ-none"
    if value < 0.5:
        return "occ-low"
    if value < 0.8:
        return "occ-mid"
    if value < 0.95:
        return "occ-high"
    return "occ-full"


def commune_name(insee: str) -> str:
    found = commune(insee)
    return found.name if found else insee


def templates() -> Jinja2Templates:
    made = Jinja2Templates(directory=str(HERE / "templates"))
    env = made.env
    env.filters["heure"] = local_time
    env.filters["pourcent"] = percent
    env.filters["occ"] = occupancy_class
    env.filters["commune"] = commune_name
    env.globals.update(
        KIND_LABELS=KIND_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        DECISION_LABELS=DECISION_LABELS,
        PRIORITY_LABELS=PRIORITY_LABELS,
        PRIORITY_MEANINGS=PRIORITY_MEANING_LABELS,
        DECIDERS=DECIDERS,
        ALERT_LABELS=ALERT_LABELS,
        OUTCOME_LABELS=OUTCOME_LABELS,
        REFERRER_LABELS=REFERRER_LABELS,
        RAISED_AGAIN=REINFORCEMENT_RAISED_AGAIN,
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS.items()},
    )
    return made


def page(request: Request, name: str, actor: Actor | None, **context: Any) -> HTMLResponse:
    found: Session | None = getattr(request.state, "session", None)
    made: Jinja2Templates = request.app.state.templates
    return made.TemplateResponse(
        request,
        name,
        {
            "actor": actor,
            "csrf": found.csrf if found is not None else "",
            "ok": request.query_params.get("ok"),
            "erreur": request.query_params.get("erreur"),
            "today": datetime.now(PARIS).date().isoformat(),
            **context,
        },
    )


async def refused_page(request: Request, exc: Exception) -> Response:
    """A Refused, as the page that says why (403)."""
    made: Jinja2Templates = request.app.state.templates
    return HTMLResponse(made.get_template("refus.html").render(message=str(exc)), status_code=403)


def back(path: str, message: str, ok: bool = True) -> RedirectResponse:
    """Back to ``path``, the outcome said at the top of the page (base.html)."""
    flag = "ok" if ok else "erreur"
    return RedirectResponse(f"{path}?{flag}={quote(message)}", status_code=303)


async def form_of(request: Request) -> dict[str, str]:
    # URL-encoded forms only (no uploads): parsed here rather than pull in a multipart
    # parser.
    body = (await request.body()).decode()
    return {k: v[0].strip() for k, v in parse_qs(body, keep_blank_values=True).items()}


# -- the session -------------------------------------------------------------------------


async def actor_of(request: Request, role: Role | None = None, touch: bool = True) -> Actor:
    """The person the session cookie names, as the actor they act for; a POST must
    carry the session's CSRF token. Only the person's own requests keep the session
    from going idle: not the live stream, nor the parts of a page that the page's
    script reads again on its own (``X-Fragment``, console.js)."""
    touch = touch and "x-fragment" not in request.headers
    found = await the_accounts(request).session(request.cookies.get(SESSION_COOKIE), touch=touch)
    if found is None:
        raise HTTPException(303, headers={"Location": "/connexion"})
    request.state.session = found
    if request.method == "POST":
        given = (await form_of(request)).get("csrf", "")
        if not hmac.compare_digest(given.encode(), found.csrf.encode()):
            raise Refused("Formulaire expiré ou falsifié : rechargez la page et recommencez.")
    actor = actor_of_account(found.account)
    PAGE.set(request.url.path)
    if role is not None and actor.role is not role:
        raise Refused("Cette page n'est pas celle de votre rôle.")
    return actor


async def record(
    request: Request,
    action: str,
    detail: str,
    *,
    centre_id: str | None = None,
    referral_id: str | None = None,
    event_id: str | None = None,
) -> None:
    # After the action: the trail says what was done, not what was attempted.
    found: Session = request.state.session
    await the_accounts(request).record(
        found.account,
        action,
        region=found.account.region,
        centre_id=centre_id,
        referral_id=referral_id,
        detail=detail,
        event_id=event_id,
    )
