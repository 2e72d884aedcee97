"""The console's web app: log-in, the ARS's territory, a centre's day, Centre 15's desk.

The console keeps only its people (accounts, sessions, log-in failures, the audit
trail: aiguillage.console.accounts). It reads the services' HTTP APIs with the bearer
token of the actor the logged-in person acts for (issued here, since the console holds
the deployment's secret), so each service still decides what may be seen and done: the
ARS's decisions go to the scheduler's API (the ARS's door, which judges them on the
centres as it stores them). It publishes nothing on the broker. Every action is recorded
in the audit trail in the person's name, and an ARS person acts on their own region only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from aiguillage.console.accounts import (
    ABSOLUTE,
    ACTOR_ID,
    AccountStore,
    AuditEntry,
    Session,
    Throttled,
    region_codes,
    region_departements,
)
from aiguillage.console.auth import (
    LOGIN_CSRF_COOKIE,
    ROLE_LABELS,
    SESSION_COOKIE,
    Actor,
    actor_of_account,
)
from aiguillage.console.centre_day import with_offers
from aiguillage.console.live import EventHub
from aiguillage.console.referrer import add_referrer_routes
from aiguillage.console.svgmap import region_maps
from aiguillage.hours import parse_hours
from shared.auth import Role
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreKind,
    CentreSuspended,
    EventPayload,
)
from shared.geo import commune
from shared.http import BodyLimit, Proxies, SecurityHeaders, service_port
from shared.labels import (
    ALERT_KINDS,
    APPOINTMENT_STATUSES,
    AUDIT_ACTIONS,
    CENTRE_KINDS,
    CENTRE_STATUSES,
    CONSULTATION_OUTCOMES,
    DECISIONS,
    PRIORITIES,
    REFERRAL_STATES,
    REFERRER_KINDS,
    by_code,
)
from shared.regions import CENTRE_IN_OTHER_DEPARTEMENT, CENTRE_IN_OTHER_REGION
from shared.settings import Settings
from shared.territory import OUTSIDE_TERRITORY, Territories
from shared.topology import declare_topology

HERE = Path(__file__).parent
# The scheduler's refusals of an ARS's decision on a centre not of its region (as stored).
REGION_REFUSALS = frozenset(
    {OUTSIDE_TERRITORY, CENTRE_IN_OTHER_REGION, CENTRE_IN_OTHER_DEPARTEMENT}
)
PARIS = ZoneInfo("Europe/Paris")

# The words of the codes: shared/labels.py, as everywhere a person reads them.
KIND_LABELS = by_code(CENTRE_KINDS, capital=True)
STATUS_LABELS = {**CENTRE_STATUSES, **APPOINTMENT_STATUSES}
DECISION_LABELS = by_code(DECISIONS, capital=True)
PRIORITY_LABELS = by_code(PRIORITIES)
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
ACTION_LABELS = dict(AUDIT_ACTIONS)
# No inline script or style anywhere: what the page runs is the console's own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
HOME = {
    Role.ARS: "/territoire",
    Role.CENTRE: "/centre",
    Role.CENTRE_15: "/centre-15",
    Role.REFERRER: "/adresser",
}


# The live stream's last message when the session ends: the page says so (console.js)
# rather than try to reconnect.
EXPIRED = "event: expired\ndata: {}\n\n"


class ServiceError(Exception):
    """A service refused or could not be reached; the message is shown to the actor."""

    def __init__(self, message: str, detail: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail  # the service's own words
        self.code = code  # its stable code, when it gives one (outside_territory)


@dataclass
class Console:
    settings: Settings
    hub: EventHub
    http: httpx.AsyncClient | None = None

    def base_url(self, service: str) -> str:
        host = self.settings.http_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{host}:{service_port(self.settings, service)}"

    async def call(
        self, actor: Actor, method: str, service: str, path: str, body: Any = None, **params: Any
    ) -> Any:
        assert self.http is not None
        try:
            response = await self.http.request(
                method,
                self.base_url(service) + path,
                json=body,
                params={k: v for k, v in params.items() if v is not None},
                headers={"Authorization": f"Bearer {actor.token(self.settings, service)}"},
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


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["heure"] = local_time
    env.filters["pourcent"] = percent
    env.filters["occ"] = occupancy_class
    env.filters["commune"] = commune_name
    env.globals.update(
        KIND_LABELS=KIND_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        DECISION_LABELS=DECISION_LABELS,
        PRIORITY_LABELS=PRIORITY_LABELS,
        ALERT_LABELS=ALERT_LABELS,
        OUTCOME_LABELS=OUTCOME_LABELS,
        REFERRER_LABELS=REFERRER_LABELS,
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS.items()},
    )
    return templates


async def _form(request: Request) -> dict[str, str]:
    # URL-encoded forms only (no uploads): parsed here rather than pull in a multipart
    # parser.
    body = (await request.body()).decode()
    return {k: v[0].strip() for k, v in parse_qs(body, keep_blank_values=True).items()}


class Refused(Exception):
    """An action the person may not take; the message (French) says why, with a 403."""


def _back(path: str, message: str, ok: bool = True) -> RedirectResponse:
    flag = "ok" if ok else "erreur"
    return RedirectResponse(f"{path}?{flag}={quote(message)}", status_code=303)


def create_app(settings: Settings, *, listen: bool = True) -> FastAPI:
    # Each SAMU's live stream is held to its départements (shared.territory).
    hub = EventHub(settings.broker_url, settings.namespace, territories=Territories.of(settings))
    console = Console(settings, hub)
    templates = _templates()
    store = AccountStore.for_settings(settings)
    secure = settings.console_secure_cookies
    proxies = Proxies(settings.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        console.http = httpx.AsyncClient(timeout=10.0)
        await store.migrate()
        if listen:
            await declare_topology(settings.broker_nodes, settings.namespace)
            await hub.start()
        try:
            yield
        finally:
            await console.http.aclose()
            await hub.stop()
            await store.close()

    app = FastAPI(title="Aiguillage — console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.console = console
    app.state.accounts = store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # A door like the services' APIs: no body larger than the bound is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Pages show identities and carry the session: no cache keeps them (the static
    # files may be kept); HSTS once served over TLS.
    app.add_middleware(SecurityHeaders, proxies=proxies, cacheable=("/static/",))

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return HTMLResponse(
            templates.get_template("refus.html").render(message=str(exc)), status_code=403
        )

    async def actor_of(request: Request, role: Role | None = None, touch: bool = True) -> Actor:
        """The person the session cookie names, as the actor they act for; a POST must
        carry the session's CSRF token. Only the person's own requests keep the session
        from going idle: not the live stream, nor the parts of a page that the page's
        script reads again on its own (``X-Fragment``, console.js)."""
        touch = touch and "x-fragment" not in request.headers
        found = await store.session(request.cookies.get(SESSION_COOKIE), touch=touch)
        if found is None:
            raise HTTPException(303, headers={"Location": "/connexion"})
        request.state.session = found
        if request.method == "POST":
            given = (await _form(request)).get("csrf", "")
            if not hmac.compare_digest(given.encode(), found.csrf.encode()):
                raise Refused("Formulaire expiré ou falsifié : rechargez la page et recommencez.")
        actor = actor_of_account(found.account)
        if role is not None and actor.role is not role:
            raise Refused("Cette page n'est pas celle de votre rôle.")
        return actor

    def page(request: Request, name: str, actor: Actor | None, **context: Any) -> HTMLResponse:
        found: Session | None = getattr(request.state, "session", None)
        return templates.TemplateResponse(
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

    @app.get("/sante", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure
        )

    @app.get("/")
    async def home(request: Request) -> Response:
        found = await store.session(request.cookies.get(SESSION_COOKIE))
        target = HOME.get(found.account.role, "/connexion") if found else "/connexion"
        return RedirectResponse(target, status_code=303)

    def login_form(
        request: Request, erreur: str | None = None, login: str = "", status: int = 200
    ) -> HTMLResponse:
        # Double-submit token: no session yet, so the form's token is also a cookie,
        # and a log-in posted from elsewhere (log-in CSRF) carries neither.
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = page(request, "login.html", None, login=login, login_csrf=token, erreur=erreur)
        response.status_code = status
        set_cookie(response, LOGIN_CSRF_COOKIE, token, 3600)
        return response

    @app.get("/connexion")
    async def login_page(request: Request) -> HTMLResponse:
        return login_form(request)

    @app.post("/connexion")
    async def login(request: Request) -> Response:
        form = await _form(request)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(
            form.get("csrf", "").encode(), expected.encode()
        ):
            raise Refused("Formulaire expiré : rechargez la page de connexion et recommencez.")
        login_name = form.get("identifiant", "").strip().lower()
        address = proxies.client_address(request.scope)
        try:
            found = await store.log_in(login_name, form.get("mot_de_passe", ""), address)
        except Throttled as refused:
            wait = refused.retry_after
            response = login_form(
                request,
                f"Trop d'essais infructueux : réessayez dans {_in_french(wait)}.",
                login_name,
                429,
            )
            response.headers["Retry-After"] = str(wait)
            return response
        if found is None:
            return login_form(request, "Identifiant ou mot de passe inconnu.", login_name)
        if found.account.role not in HOME:
            # A role without pages (none today): refused rather than sent nowhere.
            await store.log_out(found.token)
            return login_form(
                request, "Votre compte n'a pas encore de page dans la console.", login_name
            )
        done = RedirectResponse(HOME[found.account.role], status_code=303)
        set_cookie(done, SESSION_COOKIE, found.token, int(ABSOLUTE.total_seconds()))
        done.delete_cookie(LOGIN_CSRF_COOKIE)
        return done

    @app.post("/deconnexion")
    async def logout(request: Request) -> Response:
        await actor_of(request)  # the CSRF token too: no logging people out from elsewhere
        await store.log_out(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/connexion", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def while_valid(token: str, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        # The stream outlives the request that opened it: it ends with the session
        # (log-out, account disabled, expiry, idle), checked at each message or
        # keep-alive without touching it: an open page is not a person's action.
        async for chunk in stream:
            if await store.session(token, touch=False) is None:
                yield EXPIRED
                return
            yield chunk

    @app.get("/evenements")
    async def events(request: Request) -> StreamingResponse:
        actor = await actor_of(request, touch=False)
        return StreamingResponse(
            while_valid(request.cookies.get(SESSION_COOKIE, ""), hub.stream(actor)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- the ARS ---------------------------------------------------------------------

    async def region_view(actor: Actor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The départements and centres of the person's region (the scheduler shows an
        ARS its own region only; the console keeps to the region the account names)."""
        mine = region_departements(actor.acts_for)
        overview = await console.call(actor, "GET", "scheduler", "/territory")
        deps = [d for d in overview["departements"] if d["departement"] in mine]
        details = await asyncio.gather(
            *(
                console.call(actor, "GET", "scheduler", f"/territory/{d['departement']}")
                for d in deps
            )
        )
        return deps, [c for detail in details for c in detail["centres"]]

    async def territory_context(actor: Actor) -> dict[str, Any]:
        mine = region_departements(actor.acts_for)
        try:
            deps, centres = await region_view(actor)
            # Kept by the scheduler: a request sent while no console was open is there.
            asked = await console.call(actor, "GET", "scheduler", "/reinforcements?limit=50")
        except ServiceError as exc:
            return {"service_error": str(exc), "departements": [], "centres": [], "maps": []}
        return {
            "departements": deps,
            "centres": centres,
            "maps": region_maps(centres),
            "reinforcements": [r for r in asked["reinforcements"] if r["departement"] in mine],
            "region_name": region_codes().get(actor.acts_for, actor.acts_for),
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    def check_commune(actor: Actor, payload: EventPayload) -> None:
        """A commune outside the person's region is refused here, naming it; the centre
        itself is judged by the scheduler, on the centre as it stores it (below)."""
        region = region_codes().get(actor.acts_for, actor.acts_for)
        if isinstance(payload, CentreActivated):
            place = commune(payload.commune_insee)
            if place is None or place.departement not in region_departements(actor.acts_for):
                raise Refused(
                    f"La commune {payload.commune_insee} n'est pas dans votre région "
                    f"({region}) : vous ne pouvez pas y activer de centre."
                )

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
        await store.record(
            found.account,
            action,
            region=found.account.region,
            centre_id=centre_id,
            referral_id=referral_id,
            detail=detail,
            event_id=event_id,
        )

    @app.get("/territoire")
    async def territory(request: Request) -> HTMLResponse:
        actor = await actor_of(request, Role.ARS)
        return page(
            request,
            "territory.html",
            actor,
            kinds=KIND_LABELS,
            **await territory_context(actor),
        )

    @app.get("/territoire/fragment")
    async def territory_fragment(request: Request) -> HTMLResponse:
        actor = await actor_of(request, Role.ARS)
        return page(request, "_territory.html", actor, **await territory_context(actor))

    async def ars_decision(
        request: Request, build: Callable[[dict[str, str]], EventPayload], done: str
    ) -> Response:
        actor = await actor_of(request, Role.ARS)
        form = await _form(request)
        try:
            payload = build(form)
        except (ValidationError, ValueError) as exc:
            return _back("/territoire", f"Formulaire incomplet ou invalide : {_short(exc)}", False)
        centre_id = str(getattr(payload, "centre_id", ""))
        check_commune(actor, payload)
        path, body = _decision_call(payload)
        try:
            # Through the ARS's door, the scheduler's API, with the region's token: the
            # scheduler judges it on the centre as it stores it (a Paris id activated
            # with a Breton commune is Paris's, and refused), as for any ARS.
            answer = await console.call(actor, "POST", "scheduler", path, body)
        except ServiceError as exc:
            if exc.code in REGION_REFUSALS:
                raise Refused(exc.detail) from exc  # 403, said in French
            return _back("/territoire", str(exc), False)
        event_id = str(answer["event_id"])
        await record(
            request,
            payload.event_type,
            payload.model_dump_json(exclude_none=True),
            centre_id=centre_id,
            event_id=event_id,
        )
        return _back("/territoire", done.format(centre=centre_id))

    def _activation(form: dict[str, str]) -> EventPayload:
        if commune(form.get("commune", "")) is None:
            raise ValueError(f"aucune commune de code INSEE {form.get('commune')!r}")
        return CentreActivated(
            centre_id=form.get("centre_id", ""),
            name=form.get("nom", ""),
            kind=CentreKind(form.get("type", CentreKind.TEMPORARY_DEDICATED.value)),
            commune_insee=form["commune"],
            address=form.get("adresse") or None,
            opening_hours=parse_hours(form.get("horaires") or "all 08:00-20:00"),
            boxes=int(form.get("boxes") or 2),
            consultation_minutes=int(form.get("minutes") or 20),
            first_day=date.fromisoformat(form.get("premier_jour") or date.today().isoformat()),
        )

    def _capacity(form: dict[str, str]) -> EventPayload:
        return CentreCapacityChanged(
            centre_id=form.get("centre_id", ""),
            boxes=int(form["boxes"]) if form.get("boxes") else None,
            consultation_minutes=int(form["minutes"]) if form.get("minutes") else None,
            opening_hours=parse_hours(form["horaires"]) if form.get("horaires") else None,
            from_date=date.fromisoformat(form.get("a_partir_du") or date.today().isoformat()),
        )

    def _suspension(form: dict[str, str]) -> EventPayload:
        if not ACTOR_ID.match(form.get("centre_id", "")):
            raise ValueError("identifiant de centre invalide")
        return CentreSuspended(
            centre_id=form["centre_id"], reason=form.get("motif") or "suspendu par l'ARS"
        )

    @app.post("/territoire/activer")
    async def activate(request: Request) -> Response:
        return await ars_decision(request, _activation, "Activation du centre {centre} publiée.")

    @app.post("/territoire/capacite")
    async def capacity(request: Request) -> Response:
        return await ars_decision(request, _capacity, "Changement de capacité de {centre} publié.")

    @app.post("/territoire/suspendre")
    async def suspend(request: Request) -> Response:
        return await ars_decision(request, _suspension, "Suspension de {centre} publiée.")

    # -- a centre --------------------------------------------------------------------

    async def centre_context(actor: Actor, day: str | None) -> dict[str, Any]:
        try:
            listing = await console.call(
                actor, "GET", "notifier", f"/centres/{actor.subject}/appointments", day=day
            )
        except ServiceError as exc:
            return {"service_error": str(exc), "appointments": [], "day": day}
        # What may be recorded now, and when that changes (the page is read again then).
        appointments, next_change = with_offers(listing["appointments"], datetime.now(UTC))
        return {
            "appointments": appointments,
            "next_change": next_change,
            "issues": CONSULTATION_OUTCOMES,
            "day": listing["day"],
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    @app.get("/centre")
    async def centre_page(request: Request, jour: str | None = None) -> HTMLResponse:
        actor = await actor_of(request, Role.CENTRE)
        return page(request, "centre.html", actor, **await centre_context(actor, jour))

    @app.get("/centre/fragment")
    async def centre_fragment(request: Request, jour: str | None = None) -> HTMLResponse:
        actor = await actor_of(request, Role.CENTRE)
        return page(request, "_appointments.html", actor, **await centre_context(actor, jour))

    async def centre_action(
        request: Request,
        action: Callable[[Actor, dict[str, str]], Awaitable[str]],
        what: str,
        appointment_id: str | None = None,
    ) -> Response:
        actor = await actor_of(request, Role.CENTRE)
        form = await _form(request)
        back = "/centre" + (f"?jour={form['jour']}&" if form.get("jour") else "?")
        try:
            message, ok = await action(actor, form), True
        except ServiceError as exc:
            # A refusal with a stable code (an outcome out of its time) is said in the
            # service's own French words, not as an HTTP error.
            message, ok = (exc.detail if exc.code else str(exc)), False
        except ValueError as exc:
            message, ok = str(exc), False
        if ok:
            detail = {k: v for k, v in form.items() if k != "csrf"}
            if appointment_id is not None:
                detail["appointment_id"] = appointment_id
            await record(request, what, json.dumps(detail), centre_id=actor.subject)
        return RedirectResponse(
            f"{back}{'ok' if ok else 'erreur'}={quote(message)}", status_code=303
        )

    @app.post("/centre/rendez-vous/{appointment_id}/issue")
    async def outcome(request: Request, appointment_id: str) -> Response:
        async def report(actor: Actor, form: dict[str, str]) -> str:
            await console.call(
                actor,
                "POST",
                "notifier",
                f"/centres/{actor.subject}/appointments/{appointment_id}/outcome",
                {"outcome": form.get("issue"), "reason": form.get("motif", "")},
            )
            return "Issue de la consultation enregistrée."

        return await centre_action(request, report, "consultation.outcome", appointment_id)

    @app.post("/centre/rendez-vous/{appointment_id}/correction")
    async def correction(request: Request, appointment_id: str) -> Response:
        async def correct(actor: Actor, form: dict[str, str]) -> str:
            await console.call(
                actor,
                "POST",
                "notifier",
                f"/centres/{actor.subject}/appointments/{appointment_id}/correction",
                {"outcome": form.get("issue"), "reason": form.get("motif", "")},
            )
            return "Correction de l'issue envoyée."

        return await centre_action(request, correct, "consultation.correction", appointment_id)

    @app.post("/centre/renforts")
    async def reinforcements(request: Request) -> Response:
        async def ask(actor: Actor, form: dict[str, str]) -> str:
            await console.call(
                actor,
                "POST",
                "notifier",
                f"/centres/{actor.subject}/reinforcements",
                {
                    "count": int(form.get("nombre") or 0),
                    "profession": form.get("profession", ""),
                    "from_date": form.get("a_partir_du") or date.today().isoformat(),
                    "note": form.get("note", ""),
                },
            )
            return "Demande de renfort envoyée à l'ARS."

        return await centre_action(request, ask, "reinforcement.requested")

    # -- Centre 15 -------------------------------------------------------------------

    async def desk_context(actor: Actor) -> dict[str, Any]:
        try:
            held = (await console.call(actor, "GET", "regulation", "/held"))["held"]
            # Kept by intake: escalated while no console was open, still listed.
            escalated = (await console.call(actor, "GET", "intake", "/escalations"))["escalations"]
            error = None
        except ServiceError as exc:
            held, escalated, error = [], [], str(exc)
        return {
            "held": held,
            "escalations": escalated,
            "service_error": error,
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    @app.get("/centre-15")
    async def desk(request: Request) -> HTMLResponse:
        actor = await actor_of(request, Role.CENTRE_15)
        return page(request, "centre15.html", actor, **await desk_context(actor))

    @app.get("/centre-15/fragment")
    async def desk_fragment(request: Request) -> HTMLResponse:
        actor = await actor_of(request, Role.CENTRE_15)
        return page(request, "_centre15.html", actor, **await desk_context(actor))

    @app.post("/centre-15/dossiers/{referral_id}/decision")
    async def decide(request: Request, referral_id: str) -> Response:
        actor = await actor_of(request, Role.CENTRE_15)
        form = await _form(request)
        body = {
            "decision": form.get("decision"),
            "priority": form.get("priorite") or None,
            "comment": form.get("commentaire", ""),
        }
        try:
            await console.call(
                actor, "POST", "regulation", f"/referrals/{referral_id}/decision", body
            )
        except ServiceError as exc:
            if exc.code == OUTSIDE_TERRITORY:
                raise Refused(exc.detail) from exc  # 403, said in French
            return _back("/centre-15", str(exc), False)
        await record(request, "regulation.decision", json.dumps(body), referral_id=referral_id)
        return _back("/centre-15", f"Décision enregistrée pour le dossier {referral_id[:8]}.")

    # -- the referrers, and the patient's link (issue 17) -----------------------------
    add_referrer_routes(
        app, settings=settings, console=console, actor_of=actor_of, page=page, record=record
    )

    # -- the audit trail (ARS) ----------------------------------------------------------

    @app.get("/audit")
    async def audit_page(request: Request) -> HTMLResponse:
        actor = await actor_of(request, Role.ARS)
        entries: list[AuditEntry] = await store.audit_of_region(actor.acts_for)
        return page(
            request,
            "audit.html",
            actor,
            entries=entries,
            actions=ACTION_LABELS,
            region_name=region_codes().get(actor.acts_for, actor.acts_for),
        )

    return app


def _decision_call(payload: EventPayload) -> tuple[str, dict[str, Any]]:
    """The scheduler's route and body for an ARS's decision."""
    body = payload.model_dump(mode="json", exclude_none=True)
    if isinstance(payload, CentreActivated):
        return "/centres", body
    centre_id = body.pop("centre_id")
    if isinstance(payload, CentreCapacityChanged):
        return f"/centres/{quote(centre_id, safe='')}/capacity", body
    return f"/centres/{quote(centre_id, safe='')}/suspend", body


def _in_french(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconde{'s' if seconds > 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])} : {e['msg']}" for e in exc.errors()[:3]
        )
    return str(exc)
